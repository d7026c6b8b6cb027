// The data plane's public surface: the DataPlane handle, maps, bpffs and interface helpers, and
// the ABI mirror. Everything else in this folder is internal.

export {
  DataPlane, MAP_NAMES,
  type AttachOptions, type AttachResult, type DataPath, type Attachment, type DetachResult, type DownResult, type MapName, type OpenOptions,
  type ProgKind, type ProgramHandle, type StatName, type TestRunOptions, type TestRunResult, type TxPortsResult,
  type XdpMode, type XdpModeRequest,
} from './data-plane.js';
export { BpfMap, parseCpuList, perCpuStride, possibleCpus } from './bpf-map.js';
export { BPFFS_ROOT, LB_PIN_ROOT, ensureBpffs, instanceDir, listPins, validateInstanceName } from './bpffs.js';
export { interfaceIndex, interfaceName, interfaceNamer, listInterfaces, type NetInterface } from './interfaces.js';
export { enableRouteLocalnet, routeLocalnet } from './route-localnet.js';
export { BPF_ANY, BPF_EXIST, BPF_NOEXIST, errnoName } from './libbpf.js';
export * from '../core/abi.js';
export * from './generation.js';
export * from '../core/generation.js';
export * from './unanswered-flows.js';
export * from './rate-limits.js';
export * from './target-counters.js';
export { IDLE_CLOSE_MS, PinnedDataPlane, STAMP_SETTLE_MS, instanceComplete, pinnedDataPlane } from './pinned-reader.js';
