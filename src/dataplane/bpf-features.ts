// What this host's kernel and libbpf offer lb, for `lb version` and `lb doctor`: the libbpf
// version, BTF, and the program and map types lb uses or may use (probed with libbpf's
// libbpf_probe_bpf_prog_type/map_type, which load a minimal program or create a tiny map).
// A probe the kernel refuses for lack of privilege is reported as unknown (null), not as absent.

import { existsSync } from 'node:fs';
import koffi from 'koffi';
import { effectiveCapabilities, hasCapability } from './capabilities.js';
import { native } from './libbpf.js';

/** UAPI enum bpf_prog_type / bpf_map_type values (linux/bpf.h). */
const PROG_TYPE = { sched_cls: 3, xdp: 6, sk_lookup: 30 } as const;
const MAP_TYPE = { sockmap: 15, ringbuf: 27 } as const;
const EPERM = 1;
const EACCES = 13;

export const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

/** true supported, false not, null unknown (not allowed to probe, or the probe failed). */
export type Probe = boolean | null;

export interface BpfFeatures {
  libbpf: string | null;
  btf: boolean;
  xdp: Probe;
  tc: Probe;
  ringbuf: Probe;
  skLookup: Probe;
  sockmap: Probe;
  /** Why a probe is unknown, when one is. */
  unknownReason: string | null;
}

interface Probes {
  version(): string;
  progType(type: number, opts: null): number;
  mapType(type: number, opts: null): number;
}

let probes: Probes | undefined;

function bindings(): Probes {
  if (probes) return probes;
  native(); // loads libbpf.so.1 with lb's log printer, or throws the LbError saying how to install it
  const bpf = koffi.load('libbpf.so.1');
  probes = {
    version: bpf.func('const char *libbpf_version_string()') as () => string,
    progType: bpf.func('int libbpf_probe_bpf_prog_type(int prog_type, const void *opts)') as (t: number, o: null) => number,
    mapType: bpf.func('int libbpf_probe_bpf_map_type(int map_type, const void *opts)') as (t: number, o: null) => number,
  };
  return probes;
}

export function detectBpfFeatures(): BpfFeatures {
  const btf = existsSync(VMLINUX_BTF);
  let p: Probes;
  try {
    p = bindings();
  } catch (err) {
    return { libbpf: null, btf, xdp: null, tc: null, ringbuf: null, skLookup: null, sockmap: null, unknownReason: (err as Error).message };
  }
  // libbpf reports a probe the kernel refused (EPERM) as "not supported": without CAP_BPF the
  // answer means nothing, so it is unknown.
  const caps = effectiveCapabilities();
  let refused = !hasCapability(caps, 'BPF') && !hasCapability(caps, 'SYS_ADMIN');
  const result = (ret: number): Probe => {
    if (refused) return null;
    if (ret === 1) return true;
    if (ret === 0) return false;
    if (-ret === EPERM || -ret === EACCES) refused = true;
    return null;
  };
  const features: BpfFeatures = {
    libbpf: p.version().replace(/^v/, ''),
    btf,
    xdp: result(p.progType(PROG_TYPE.xdp, null)),
    tc: result(p.progType(PROG_TYPE.sched_cls, null)),
    ringbuf: result(p.mapType(MAP_TYPE.ringbuf, null)),
    skLookup: result(p.progType(PROG_TYPE.sk_lookup, null)),
    sockmap: result(p.mapType(MAP_TYPE.sockmap, null)),
    unknownReason: null,
  };
  const anyUnknown = [features.xdp, features.tc, features.ringbuf, features.skLookup, features.sockmap].includes(null);
  if (anyUnknown) features.unknownReason = refused ? 'the kernel refused the probe: needs root, or CAP_BPF' : 'the probe failed';
  return features;
}
