// The live state of an instance, read from the kernel: lb_ctl, the active generation of the config
// maps (raw bytes and decoded), the interfaces lb's programs are attached to, and the apply
// inventory for proxy names. Reading never creates anything: an instance with no pins reads as the
// empty state.
//
// The digest identifies exactly this live state (the active generation's canonical bytes, lb_ctl's
// generation and serial, the attachments): a plan saved with `--out` records it, and `lb apply
// PLANFILE` refuses the plan when the digest has moved since.

import { createHash } from 'node:crypto';
import { canonicalText } from '../core/ops.js';
import { decodeGeneration as decodeLogical } from '../core/compile/decode.js';
import {
  DataPlane, decodeGeneration as decodeRaw, instanceDir, interfaceNamer, listPins, readCtl, readGenerationRaw, routeLocalnet,
  EMPTY_SETTINGS, encodeGeneration, type Attachment, type Ctl, type EncodedGeneration, type GenerationConfig,
} from '../dataplane/index.js';
import { readInventory, type Inventory } from './inventory.js';
import { runDir } from './run-dir.js';
import { EMPTY_STATE, targetLabel, type InterfacePath, type LogicalState } from '../core/state.js';

export interface LiveState {
  instance: string;
  /** False when the instance has no pinned state at all (never applied, or taken down). */
  exists: boolean;
  ctl: Ctl;
  /** The active generation's entries as they are in the maps. */
  raw: EncodedGeneration;
  generation: GenerationConfig;
  /** Interfaces running any of this instance's programs (current or an older version). */
  attachments: Attachment[];
  /** Names of the attached interfaces, sorted. */
  interfaces: string[];
  inventory: Inventory | null;
  /** The active generation in operator terms. */
  state: LogicalState;
  /** "addr:port" -> target id of the backends in the active generation (and the inventory's). */
  targetIds: Map<string, number>;
  /** sha256 hex of the canonical raw entries, lb_ctl and attachments. */
  digest: string;
}

export interface ReadLiveOptions {
  /** An open handle to use instead of opening (and closing) one. */
  dp?: DataPlane;
  /** Collects non-fatal problems (an unreadable inventory). */
  warn?: (message: string) => void;
}

/** Whether the instance has pinned state. */
export function instanceExists(instance: string): boolean {
  return listPins(instanceDir(instance)).length > 0;
}

export function readLive(instance: string, options: ReadLiveOptions = {}): LiveState {
  const inventory = readInventory(runDir(instance), options.warn);
  if (options.dp === undefined && !instanceExists(instance)) return emptyLive(instance, inventory);
  const dp = options.dp ?? DataPlane.open({ instance });
  try {
    const ctl = readCtl(dp);
    const raw = readGenerationRaw(dp, ctl.activeGen);
    const attachments = dp.attachments().filter(isAttached);
    const localnet = new Set(attachments.map((a) => a.ifname).filter(routeLocalnet));
    return liveFrom(instance, ctl, raw, attachments, inventory, localnet);
  } finally {
    if (options.dp === undefined) dp.close();
  }
}

/** Any program of this instance on the interface, whole path or part of one. */
export function isAttached(a: Attachment): boolean {
  return a.path !== null || a.xdp !== null || a.tc || a.tcIngress || a.stale;
}

function emptyLive(instance: string, inventory: Inventory | null): LiveState {
  const ctl = { activeGen: 0, serial: 0 };
  const raw = encodeGeneration(0, { settings: EMPTY_SETTINGS, listeners: [], groups: [], srcRoutes: [] });
  const live = liveFrom(instance, ctl, raw, [], inventory);
  return { ...live, exists: false, state: structuredClone(EMPTY_STATE) };
}

function liveFrom(instance: string, ctl: Ctl, raw: EncodedGeneration, attachments: Attachment[], inventory: Inventory | null,
  localnet: ReadonlySet<string> = new Set()): LiveState {
  const generation = decodeRaw(ctl.activeGen, raw);
  const host = hostInterfacesOf(attachments, inventory, localnet);
  const proxies = inventory?.listeners ?? {};
  const state = decodeLogical(generation, {
    ifname: host.ifname,
    proxyOf: (key) => proxies[key] ?? null,
    interfaces: host.interfaces,
    paths: host.paths,
  });
  const targetIds = new Map<string, number>(Object.entries(inventory?.targetIds ?? {}));
  for (const { group } of generation.groups) for (const t of group.targets) targetIds.set(targetLabel(t), t.targetId);
  // The digest hashes the canonical text of every entry (~100 ms of 10,000 proxies): made when
  // read. Only a saved plan and its apply read it, not the daemon's plans, verify and drift checks.
  let digest: string | undefined;
  return {
    instance, exists: true, ctl, raw, generation, attachments, interfaces: attachments.map((a) => a.ifname).sort(), inventory, state, targetIds,
    get digest(): string {
      return (digest ??= liveDigest(ctl, raw, attachments));
    },
  };
}

/** The interfaces of a live state as the host shows them: what readLive reads beside the generation. */
export interface HostInterfaces {
  /** Attached interfaces and the applied ones deleted since, sorted (LogicalState.interfaces). */
  interfaces: string[];
  paths: Record<string, InterfacePath>;
  /** The name of a listener key's ifindex: the host's, or the one an applied interface deleted since had. */
  ifname(index: number): string | undefined;
}

/** The interfaces, their data paths and the names of ifindexes, from the attachments and the apply inventory. */
export function hostInterfacesOf(attachments: readonly Attachment[], inventory: Inventory | null, localnet: ReadonlySet<string>,
  namer: (index: number) => string | undefined = interfaceNamer()): HostInterfaces {
  const paths: Record<string, InterfacePath> = Object.fromEntries(attachments.filter((a) => a.path !== null)
    .map((a) => [a.ifname, { path: a.path!, ifindex: a.ifindex, ...(localnet.has(a.ifname) ? { routeLocalnet: true } : {}) }]));
  // An applied interface whose recorded ifindex names nothing now was deleted (and maybe created
  // again with another): its listeners keep their name, and it shows as what it was.
  const gone = Object.entries(inventory?.ifindexes ?? {}).filter(([name, index]) => !(name in paths) && namer(index) === undefined);
  const goneNames = new Map(gone.map(([name, index]) => [index, name]));
  for (const [name, index] of gone) paths[name] = { path: (inventory?.paths?.[name]?.path as InterfacePath['path'] | undefined) ?? 'auto', ifindex: index };
  return {
    interfaces: [...attachments.map((a) => a.ifname), ...gone.map(([name]) => name)].sort(),
    paths,
    ifname: (index) => namer(index) ?? goneNames.get(index),
  };
}

/** The digest of a live state: canonical active-generation bytes + lb_ctl + attachments. */
export function liveDigest(ctl: Ctl, raw: EncodedGeneration, attachments: readonly Attachment[]): string {
  const h = createHash('sha256');
  h.update(`lb-live-v1\nctl ${ctl.activeGen} ${ctl.serial}\n`);
  h.update(canonicalText(raw));
  for (const a of [...attachments].sort((x, y) => x.ifname.localeCompare(y.ifname))) {
    h.update(`\nattach ${a.ifname} ${a.ifindex} path=${a.path ?? '-'} xdp=${a.xdp ?? '-'} tc=${a.tc} tcIngress=${a.tcIngress} stale=${a.stale}`);
  }
  return h.digest('hex');
}
