// Shared machinery of the BPF_PROG_TEST_RUN fixture tables (Katran style): a DataPlane on a
// unique instance, GenerationConfig builders, the TS prediction of a flow's backend, frame
// transforms for expected outputs, and runFixture(), which installs a case's set-up, runs its
// packet and checks verdict, output bytes, independently recomputed checksums, counter deltas,
// per-target counter deltas and the whole content of both conntrack tables (lb_flows, lb_halfopen).
//
// Nothing here sends a packet: BPF_PROG_TEST_RUN runs the program on a buffer and returns it.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { expect } from 'vitest';
import {
  DataPlane, IPPROTO_TCP, IPPROTO_UDP, LB_DIR_FORWARD, LB_DIR_REVERSE, STAT_NAMES, decodeFlow, decodeFlowKey, encodeFlow,
  encodeFlowKey, installConfig, instanceDir, ipv4ToU32, readCtl,
  type Flow, type FlowKey, type GenerationConfig, type GroupTarget, type Listener, type ProgKind, type StatName,
  type TargetStats,
} from '../../src/dataplane/index.js';
import { EMPTY_SETTINGS } from '../../src/core/generation.js';
import { chooseTarget, flowHash } from '../../src/core/flow-hash.js';
import { maglevTable } from '../../src/core/compile/encode.js';
import { withNetns } from '../../src/sandbox/netns.js';
import {
  TCP_ACK, TCP_SYN, buildFrame, buildUdp, diffFrames, tcpFlagBits, onesComplementSum, pseudoHeader, verifyChecksums, type FrameSpec, type L4Spec, type TcpSpec, type UdpSpec,
} from './packet.js';

export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_REDIRECT = 4;
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;

/** Loopback: exists in every namespace with ifindex 1, so XDP test runs can name it as ingress. */
export const LO_IFINDEX = 1;

if (process.getuid?.() !== 0) {
  throw new Error('the data-plane fixture tests must run as root: they load BPF programs (and some create network namespaces)');
}

// ---------------------------------------------------------------------------------------------
// Instance lifecycle
// ---------------------------------------------------------------------------------------------

/** A per-run unique name: t-<pid>-<random>[-suffix]. */
export function uniqueName(prefix = 't', suffix = ''): string {
  return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}${suffix ? `-${suffix}` : ''}`;
}

export interface Harness {
  dp: DataPlane;
  instance: string;
}

/** Opens a fresh instance (loads both objects, pins their maps under /sys/fs/bpf/lb/<instance>). */
export function openHarness(suffix = ''): Harness {
  const instance = uniqueName('t', suffix);
  const dp = DataPlane.open({ instance, objectDir: 'build/bpf' });
  expect(dp.adopted, `instance ${instance} must be new`).toBe(false);
  return { dp, instance };
}

/** Closes the fds and removes the instance from the kernel. Safe on a half-opened harness. */
export function closeHarness(h: Harness | undefined): void {
  if (!h) return;
  try {
    h.dp.close();
  } finally {
    DataPlane.down(h.instance);
    rmSync(instanceDir(h.instance), { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Network namespaces (for the FIB / redirect cases)
// ---------------------------------------------------------------------------------------------

export const sh = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });

export function deleteNetns(name: string): void {
  if (existsSync(`/run/netns/${name}`)) sh('ip', ['netns', 'del', name]);
}

// ---------------------------------------------------------------------------------------------
// Configuration builders
// ---------------------------------------------------------------------------------------------

export const tgt = (addr: string, port: number, weight: number, targetId: number): GroupTarget => ({ addr, port, weight, targetId });

export interface ListenerSpec {
  ifindex?: number;
  vip?: string;
  port: number;
  proto?: number;
  id: number;
  group: number;
  flags?: number;
}

export interface ConfigSpec {
  listeners: ListenerSpec[];
  groups: Record<number, GroupTarget[]>;
  routes?: Array<{ listenerId: number; cidr: string; group: number }>;
  settings?: Partial<GenerationConfig['settings']>;
  /** Groups that get a Maglev table, built from their targets as encodeState builds them. */
  maglev?: number[];
}

export function config(spec: ConfigSpec): GenerationConfig {
  return {
    settings: { ...EMPTY_SETTINGS, ...spec.settings },
    listeners: spec.listeners.map((l) => ({
      key: { ifindex: l.ifindex ?? LO_IFINDEX, vip: l.vip ?? '0.0.0.0', port: l.port, proto: l.proto ?? IPPROTO_TCP },
      value: { listenerId: l.id, defaultGroup: l.group, flags: l.flags ?? 0 } satisfies Listener,
    })),
    groups: Object.entries(spec.groups).map(([id, targets]) => ({ id: Number(id), group: { targets } })),
    srcRoutes: (spec.routes ?? []).map((r) => {
      const [addr, len] = r.cidr.split('/');
      return { listenerId: r.listenerId, addr: addr!, prefixLen: Number(len), group: r.group };
    }),
    maglev: (spec.maglev ?? []).map((group) => {
      const table = maglevTable(spec.groups[group] ?? []);
      if (table === null) throw new Error(`group ${group} has no weight: encodeState would give it no Maglev table`);
      return { group, table };
    }),
  };
}

/** Every target id a config names (their per-target counters are checked by runFixture). */
export function targetIds(cfg: GenerationConfig): number[] {
  return [...new Set(cfg.groups.flatMap((g) => g.group.targets.map((t) => t.targetId)))];
}

// ---------------------------------------------------------------------------------------------
// Prediction: the TS mirror of the data plane's choice
// ---------------------------------------------------------------------------------------------

export interface Tuple { saddr: string; daddr: string; sport: number; dport: number; proto: number }

/** The target a new flow gets in a group, by flowHash + chooseTarget; undefined if none. */
export function predict(targets: readonly GroupTarget[], t: Tuple, persist = false): GroupTarget | undefined {
  const h = flowHash({ saddr: ipv4ToU32(t.saddr), daddr: ipv4ToU32(t.daddr), sport: t.sport, dport: t.dport, proto: t.proto }, persist);
  const i = chooseTarget(h, targets.map((x) => x.weight));
  return i < 0 ? undefined : targets[i];
}

/**
 * The target a new flow of a persistent listener gets from the group's Maglev table (as encodeState
 * builds it): slot flowHash(client address) % LB_MAGLEV_SIZE. Undefined when no target has weight.
 */
export function predictMaglev(targets: readonly GroupTarget[], saddr: string): GroupTarget | undefined {
  const table = maglevTable(targets);
  if (table === null) return undefined;
  const h = flowHash({ saddr: ipv4ToU32(saddr), daddr: 0, sport: 0, dport: 0, proto: 0 }, true);
  return targets[table[h % table.length]!];
}

/** The first client port >= from whose flow the predictor sends to targets[index]. */
export function portFor(targets: readonly GroupTarget[], index: number, t: Omit<Tuple, 'sport'>, from = 40000): number {
  for (let sport = from; sport < 65536; sport++) {
    if (predict(targets, { ...t, sport }) === targets[index]) return sport;
  }
  throw new Error(`no client port from ${from} reaches target ${index}`);
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

export interface Endpoint { addr: string; port: number }

/** A copy of spec with the L4 replaced (ports changed); the checksums are recomputed by buildFrame. */
function withPorts(l4: L4Spec | undefined, sport?: number, dport?: number): L4Spec | undefined {
  if (!l4 || (l4.kind !== 'tcp' && l4.kind !== 'udp')) return l4;
  return { ...l4, ...(sport !== undefined ? { sport } : {}), ...(dport !== undefined ? { dport } : {}) };
}

/** The frame spec after DNAT to `to`: destination address and port replaced, nothing else. */
export function dnatSpec(spec: FrameSpec, to: Endpoint): FrameSpec {
  const out: FrameSpec = { ...spec, ipv4: { ...spec.ipv4!, dst: to.addr } };
  const l4 = withPorts(spec.l4, undefined, to.port);
  if (l4) out.l4 = l4;
  return out;
}

/** The frame spec after reverse NAT to `from`: source address and port replaced. */
export function snatSpec(spec: FrameSpec, from: Endpoint): FrameSpec {
  const out: FrameSpec = { ...spec, ipv4: { ...spec.ipv4!, src: from.addr } };
  const l4 = withPorts(spec.l4, from.port, undefined);
  if (l4) out.l4 = l4;
  return out;
}

export function tcpSpec(src: Endpoint, dst: Endpoint, flags: number, extra: Partial<FrameSpec> & { ttl?: number } = {}): FrameSpec {
  const { ttl, ...rest } = extra;
  return {
    ipv4: { src: src.addr, dst: dst.addr, id: 0x1234, ...(ttl !== undefined ? { ttl } : {}) },
    l4: { kind: 'tcp', sport: src.port, dport: dst.port, seq: 1000, ack: flags & 0x10 ? 2000 : 0, flags, payload: Buffer.from('lb-fixture') },
    ...rest,
  };
}

export function udpSpec(src: Endpoint, dst: Endpoint, payload: Uint8Array = Buffer.from('lb-udp-fixture'), checksum?: 'zero'): FrameSpec {
  return {
    ipv4: { src: src.addr, dst: dst.addr, id: 0x4321 },
    l4: { kind: 'udp', sport: src.port, dport: dst.port, payload, ...(checksum ? { checksum } : {}) },
  };
}

/**
 * A 2-byte UDP payload that makes the checksum of the datagram from src to dst compute to 0, which
 * RFC 768 sends as 0xffff: the case where a NAT's incremental update must not leave 0 ("none").
 */
export function zeroingPayload(src: Endpoint, dst: Endpoint): Buffer {
  const probe = buildUdp({ kind: 'udp', sport: src.port, dport: dst.port, payload: Buffer.alloc(2), checksum: 0 }, src.addr, dst.addr);
  const s0 = onesComplementSum(Buffer.concat([pseudoHeader(src.addr, dst.addr, IPPROTO_UDP, probe.length), probe]));
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(0xffff - s0, 0);
  return payload;
}

/** IPv4 total length of a built frame (the per-target byte counter counts it). */
export function totLen(frame: Buffer, vlans = 0): number {
  return frame.readUInt16BE(14 + 4 * vlans + 2);
}

// ---------------------------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------------------------

/** CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns(). */
export const monoNow = (): bigint => process.hrtime.bigint();
/**
 * The clock s seconds ago, or just after boot (the clock's zero) on a machine up for less: a CI
 * machine is often fresh, and the clock cannot go below zero (an entry's u64 time would not encode).
 */
export const secondsAgo = (s: number): bigint => {
  const now = monoNow();
  const back = BigInt(Math.round(s * 1e9));
  return now > back ? now - back : 1n;
};

export interface FlowEntry { key: FlowKey; value: Flow }

/** The two entries of a flow client -> vip, DNATed to backend. */
export function flowPair(client: Endpoint, vip: Endpoint, backend: Endpoint, proto: number, targetId: number,
  opts: { state?: number; reverseState?: number; lastSeenNs?: bigint; reverseLastSeenNs?: bigint } = {}): [FlowEntry, FlowEntry] {
  const last = opts.lastSeenNs ?? monoNow();
  return [
    {
      key: { saddr: client.addr, daddr: vip.addr, sport: client.port, dport: vip.port, proto },
      value: { lastSeenNs: last, natAddr: backend.addr, natPort: backend.port, targetId, dir: LB_DIR_FORWARD, state: opts.state ?? 0 },
    },
    {
      key: { saddr: backend.addr, daddr: client.addr, sport: backend.port, dport: client.port, proto },
      value: { lastSeenNs: opts.reverseLastSeenNs ?? last, natAddr: vip.addr, natPort: vip.port, targetId, dir: LB_DIR_REVERSE, state: opts.reverseState ?? 0 },
    },
  ];
}

/** Empties both conntrack tables (lb_flows and the half-open flows of lb_halfopen). */
export function clearFlows(dp: DataPlane): void {
  for (const map of [dp.maps.lb_flows, dp.maps.lb_halfopen]) {
    const keys = [...map.keys()];
    if (keys.length > 0) map.deleteBatch(keys);
    expect([...map.keys()]).toEqual([]);
  }
}

export function putFlows(dp: DataPlane, flows: readonly FlowEntry[]): void {
  for (const f of flows) dp.maps.lb_flows.update(encodeFlowKey(f.key), encodeFlow(f.value));
  dp.markFlowDestinations(flows.filter((f) => f.value.dir === LB_DIR_FORWARD).map((f) => f.key));
}

/** The conntrack table an entry lives in: lb_flows, or lb_halfopen for a TCP flow that sent only its SYN. */
export type FlowTable = 'flows' | 'halfopen';

export function readFlows(dp: DataPlane, table: FlowTable = 'flows'): FlowEntry[] {
  const map = table === 'flows' ? dp.maps.lb_flows : dp.maps.lb_halfopen;
  return [...map.entries()].map(([k, v]) => ({ key: decodeFlowKey(k), value: decodeFlow(v) }));
}

/** Both conntrack tables, as the daemon's sampler reads them (src/runtime/dataplane-sampler.ts). */
export function readConntrack(dp: DataPlane): FlowEntry[] {
  return [...readFlows(dp), ...readFlows(dp, 'halfopen')];
}

const flowKeyText = (k: FlowKey, table: FlowTable = 'flows'): string =>
  `${table === 'halfopen' ? 'half-open ' : ''}${k.proto === IPPROTO_TCP ? 'tcp' : k.proto} ${k.saddr}:${k.sport} > ${k.daddr}:${k.dport}`;

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

export type StatDeltas = Partial<Record<StatName, number>>;
export type TargetDeltas = Partial<Record<keyof TargetStats, number>>;

export function statDelta(before: Record<StatName, bigint>, after: Record<StatName, bigint>): Record<StatName, number> {
  const out = {} as Record<StatName, number>;
  for (const name of STAT_NAMES) out[name] = Number(after[name] - before[name]);
  return out;
}

function targetDelta(before: TargetStats, after: TargetStats): Required<TargetDeltas> {
  return {
    packets: Number(after.packets - before.packets), bytes: Number(after.bytes - before.bytes),
    newFlows: Number(after.newFlows - before.newFlows), closedFlows: Number(after.closedFlows - before.closedFlows),
    failedConns: Number(after.failedConns - before.failedConns),
  };
}

// ---------------------------------------------------------------------------------------------
// Fixture cases
// ---------------------------------------------------------------------------------------------

/** An expected lb_flows entry: exact fields, and when its last_seen must have been written. */
export interface ExpectedFlow {
  key: FlowKey;
  value: Omit<Flow, 'lastSeenNs'>;
  /** fresh: written during this case; kept: the set-up entry's value. Default fresh. */
  lastSeen?: 'fresh' | 'kept';
  /** The table holding it. Default flows. */
  table?: FlowTable;
}

export interface FixtureCase {
  description: string;
  /** Default xdp. */
  prog?: ProgKind;
  setup: {
    /** Installed with installConfig (inactive generation, then flip). Omitted: config left as is. */
    config?: GenerationConfig;
    /** Pre-existing lb_flows entries (the table is emptied first); built when the case runs, so times are current. */
    flows?: () => FlowEntry[];
    /** Anything else to do before the packet: earlier packets, a new generation, ... */
    before?: (dp: DataPlane) => void;
  };
  input: Buffer;
  /** XDP ingress ifindex / TC skb ifindex. Default lo. */
  ifindex?: number;
  /** Run the packet with this thread inside that network namespace (its FIB and interfaces). */
  netns?: string;
  verdict: number;
  /** The exact output frame, or 'input' for "byte-identical to the input". */
  output: Buffer | 'input';
  /** lb_stats deltas; every counter not named must stay unchanged. */
  counters: StatDeltas;
  /** lb_tstats deltas by target id; every target of the config not named must stay unchanged. */
  targets?: Record<number, TargetDeltas>;
  /** The whole content of lb_flows and lb_halfopen after the packet, or 'unchanged' (exactly the set-up's flows). */
  flows: ExpectedFlow[] | 'unchanged';
}

const installed = new WeakMap<DataPlane, { json: string; serial: number }>();

/**
 * installConfig, skipped when this exact config is what the harness installed last and nothing
 * flipped since (writeGeneration reads back the whole of lb_groups, ~33 MB, on every write).
 */
export function install(dp: DataPlane, cfg: GenerationConfig): void {
  const json = JSON.stringify(cfg);
  const last = installed.get(dp);
  if (last && last.json === json && last.serial === readCtl(dp).serial) return;
  installConfig(dp, cfg);
  installed.set(dp, { json, serial: readCtl(dp).serial });
}

/** Slack for comparing bpf_ktime_get_ns() with process.hrtime (same clock, read at different times). */
const CLOCK_SLACK_NS = 5_000_000n;

export function runFixture(h: Harness, c: FixtureCase): void {
  const { dp } = h;
  const prog = c.prog ?? 'xdp';
  clearFlows(dp);
  if (c.setup.config) install(dp, c.setup.config);
  const setupFlows = c.setup.flows?.() ?? [];
  putFlows(dp, setupFlows);
  const t0 = monoNow();
  if (c.setup.before) {
    installed.delete(dp); // the hook may change the maps behind the cache's back
    c.setup.before(dp);
  }

  const ids = new Set<number>([
    ...(c.setup.config ? targetIds(c.setup.config) : []),
    ...setupFlows.map((f) => f.value.targetId),
    ...Object.keys(c.targets ?? {}).map(Number),
  ]);
  const statsBefore = dp.readStats();
  const tBefore = new Map([...ids].map((id) => [id, dp.readTargetStats(id)]));

  const run = (): ReturnType<DataPlane['testRun']> => dp.testRun(prog, c.input, { ifindex: c.ifindex ?? LO_IFINDEX });
  const res = c.netns !== undefined ? withNetns(c.netns, run) : run();
  const t1 = monoNow();

  // verdict and output bytes
  expect(res.retval, `${c.description}: verdict`).toBe(c.verdict);
  const want = c.output === 'input' ? c.input : c.output;
  expect(diffFrames(res.data, want), `${c.description}: output frame`).toBeNull();
  if (c.output !== 'input') {
    const report = verifyChecksums(res.data);
    expect(report.wrong, `${c.description}: checksums recomputed from scratch`).toEqual([]);
    expect(report.ok).toBe(true);
  }

  // counters
  const deltas = statDelta(statsBefore, dp.readStats());
  const wantStats = Object.fromEntries(STAT_NAMES.map((n) => [n, c.counters[n] ?? 0]));
  expect(deltas, `${c.description}: lb_stats deltas`).toEqual(wantStats);
  for (const id of ids) {
    const got = targetDelta(tBefore.get(id)!, dp.readTargetStats(id));
    const exp = { packets: 0, bytes: 0, newFlows: 0, closedFlows: 0, failedConns: 0, ...c.targets?.[id] };
    expect(got, `${c.description}: lb_tstats[${id}] deltas`).toEqual(exp);
  }

  // the whole conntrack: both tables
  const after = [...readFlows(dp).map((f) => ({ ...f, table: 'flows' as const })), ...readFlows(dp, 'halfopen').map((f) => ({ ...f, table: 'halfopen' as const }))];
  const expected: ExpectedFlow[] = c.flows === 'unchanged'
    ? setupFlows.map((f) => ({ key: f.key, value: { natAddr: f.value.natAddr, natPort: f.value.natPort, targetId: f.value.targetId, dir: f.value.dir, state: f.value.state }, lastSeen: 'kept' as const }))
    : c.flows;
  const setupByKey = new Map(setupFlows.map((f) => [flowKeyText(f.key), f.value]));
  const byKey = new Map(after.map((f) => [flowKeyText(f.key, f.table), f]));
  expect([...byKey.keys()].sort(), `${c.description}: conntrack keys`).toEqual(expected.map((e) => flowKeyText(e.key, e.table)).sort());
  for (const e of expected) {
    const got = byKey.get(flowKeyText(e.key, e.table))!;
    // The flow's accounting (counters, open time, listener, event bits) is events-fixtures.test.ts's.
    const { lastSeenNs, listenerId: _l, openNs: _o, packets: _p, bytes: _b, ev: _e, ...rest } = got.value;
    expect(rest, `${c.description}: conntrack[${flowKeyText(e.key, e.table)}]`).toEqual(e.value);
    const ls = e.lastSeen ?? 'fresh';
    if (ls === 'fresh') {
      expect(lastSeenNs >= t0 - CLOCK_SLACK_NS && lastSeenNs <= t1 + CLOCK_SLACK_NS,
        `${c.description}: conntrack[${flowKeyText(e.key, e.table)}].last_seen ${lastSeenNs} written during the case [${t0}, ${t1}]`).toBe(true);
    } else {
      const orig = setupByKey.get(flowKeyText(e.key));
      expect(orig, `${c.description}: ${flowKeyText(e.key)} kept, so it must be a set-up entry`).toBeDefined();
      expect(lastSeenNs, `${c.description}: conntrack[${flowKeyText(e.key, e.table)}].last_seen kept`).toBe(orig!.lastSeenNs);
    }
  }
}

/** ExpectedFlow entries from a flowPair (last_seen fresh unless given), in lb_flows unless told. */
export function expectPair(pair: [FlowEntry, FlowEntry], lastSeen: Array<'fresh' | 'kept'> = ['fresh', 'fresh'], table: FlowTable = 'flows'): ExpectedFlow[] {
  return pair.map((f, i) => {
    const { lastSeenNs: _ls, ...value } = f.value;
    return { key: f.key, value, lastSeen: lastSeen[i] ?? 'fresh', table };
  });
}

/** The two entries a TCP SYN creates: a half-open flow in lb_halfopen (bpf/lib/halfopen.h). */
export function expectHalfOpen(pair: [FlowEntry, FlowEntry]): ExpectedFlow[] {
  return expectPair(pair, ['fresh', 'fresh'], 'halfopen');
}

/**
 * The entries a new flow's first packet creates, and the counter that goes with them: a TCP SYN
 * starts a half-open flow (lb_halfopen, ho_new), anything else goes to lb_flows at once.
 */
export function expectCreated(spec: FrameSpec, to: GroupTarget): { flows: ExpectedFlow[]; counters: StatDeltas } {
  const l4 = spec.l4 as TcpSpec | UdpSpec;
  const ip = spec.ipv4!;
  const pair = flowPair({ addr: ip.src, port: l4.sport }, { addr: ip.dst, port: l4.dport }, to, l4.kind === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, to.targetId);
  return l4.kind === 'tcp' && (tcpFlagBits(l4.flags) & (TCP_SYN | TCP_ACK)) === TCP_SYN
    ? { flows: expectHalfOpen(pair), counters: { ho_new: 1 } }
    : { flows: expectPair(pair), counters: {} };
}

/** Builds the input frame and the expected DNAT output of a spec. */
export function dnatFrames(spec: FrameSpec, to: Endpoint): { input: Buffer; output: Buffer } {
  return { input: buildFrame(spec), output: buildFrame(dnatSpec(spec, to)) };
}

/** Runs one XDP packet outside of a fixture (warm-up packets of a set-up), checking its verdict. */
export function xdpRun(dp: DataPlane, frame: Buffer, verdict = XDP_PASS, ifindex = LO_IFINDEX): Buffer {
  const res = dp.testRun('xdp', frame, { ifindex });
  expect(res.retval, 'warm-up packet verdict').toBe(verdict);
  return res.data;
}
