// TypeScript mirror of bpf/include/lb_abi.h: constants, struct layouts and codecs.
// test/privileged/abi-btf.test.ts checks every layout here against the BTF of the compiled
// objects and every constant against the header's text, so a drift fails the build.

export const LB_MAX_TARGETS = 64;
export const LB_MAX_GROUPS = 16384;
export const LB_MAX_LISTENERS = 16384;
export const LB_MAX_SRC_ROUTES = 262144;
export const LB_MAX_TARGET_IDS = 16384;
export const LB_MAX_FLOWS = 524288;
export const LB_MAX_HALFOPEN = 65536;
export const LB_MAX_TX_PORTS = 256;
export const LB_MAX_MAGLEV_GROUPS = 1024;
export const LB_MAX_RL_SOURCES = 65536;
export const LB_MAX_NEXTHOPS = 65536;
export const LB_NEXTHOP_TTL_MS = 1000;
export const LB_MAX_FRAGS = 8192;
export const LB_FRAG_TTL_MS = 30000;
export const LB_GENERATIONS = 2;
export const LB_EVENTS_RING_BYTES = 4194304;
export const LB_DST_SEEN_BITS = 65536;
export const LB_MAGLEV_SIZE = 16381;
/** Source-route operations in one lb_route_stage batch (run in the kernel by lb_route_batch). */
export const LB_ROUTE_STAGE_OPS = 16384;
/** What lb_route_batch does with a batch. */
export const LB_ROUTE_PUT = 1;
export const LB_ROUTE_DELETE = 2;
export const LB_ROUTE_VERIFY = 3;

export const LB_MAP_CTL = 'lb_ctl';
export const LB_MAP_SETTINGS = 'lb_settings';
export const LB_MAP_LISTENERS = 'lb_listeners';
export const LB_MAP_SRC_ROUTES = 'lb_src_routes';
export const LB_MAP_GROUPS = 'lb_groups';
export const LB_MAP_FLOWS = 'lb_flows';
export const LB_MAP_TSTATS = 'lb_tstats';
export const LB_MAP_HALFOPEN = 'lb_halfopen';
export const LB_MAP_STATS = 'lb_stats_v4';
export const LB_MAP_TX_PORTS = 'lb_tx_ports';
export const LB_MAP_MAGLEV = 'lb_maglev';
export const LB_MAP_IFACES = 'lb_ifaces';
export const LB_MAP_TP_SEEN = 'lb_tp_seen';
export const LB_MAP_DST_SEEN = 'lb_dst_seen';
export const LB_MAP_NEXTHOPS = 'lb_nexthops';
export const LB_MAP_ROUTE_STAGE = 'lb_route_stage';
export const LB_MAP_FRAGS = 'lb_frags';
export const LB_MAP_RL_SRC = 'lb_rl_src';
export const LB_MAP_RL_BACKEND = 'lb_rl_backend';
export const LB_MAP_RL_STATS = 'lb_rl_stats';

/** Rate-limit buckets hold tokens x LB_RL_SCALE. */
export const LB_RL_SCALE = 1000;
export const LB_RL_STAT_SOURCE = 0;
export const LB_RL_STAT_SPILLED = 1;
export const LB_RL_STAT_BACKEND = 2;
export const LB_RL_STAT_MAX = 4;
/** Names of the lb_rl_stats slots in use, in index order. */
export const RL_STAT_NAMES = ['source_limited', 'backend_spilled', 'backend_limited'] as const;
export const LB_MAP_EVENTS = 'lb_events';
export const LB_MAP_EV_STATS = 'lb_ev_stats';

export const LB_LF_SRC_ROUTES = 0x1;
export const LB_LF_PERSIST = 0x2;

export const LB_DIR_FORWARD = 1;
export const LB_DIR_REVERSE = 2;

export const LB_CT_FIN_CLIENT = 0x1;
export const LB_CT_FIN_BACKEND = 0x2;
export const LB_CT_REPLIED = 0x4;

export const LB_CT_EV_CLOSED = 0x1;

export const LB_EV_OPEN = 1;
export const LB_EV_CLOSE = 2;

export const LB_CLOSE_FIN = 1;
export const LB_CLOSE_RST_CLIENT = 2;
export const LB_CLOSE_RST_BACKEND = 3;
export const LB_CLOSE_IDLE = 4;
export const LB_CLOSE_EVICTED = 5;
export const LB_CLOSE_DRAIN = 6;

/** Names of the close reasons, by LB_CLOSE_* value (index 0: not a close). */
export const CLOSE_REASONS = ['', 'fin', 'rst-client', 'rst-backend', 'idle-timeout', 'lru-eviction', 'drain'] as const;
export type CloseReason = Exclude<(typeof CLOSE_REASONS)[number], ''>;

export const LB_EVS_EMITTED = 0;
export const LB_EVS_DROPPED = 1;
export const LB_EVS_MAX = 4;

export const LB_STAT_XDP_RX = 0;
export const LB_STAT_NOT_LISTENER = 1;
export const LB_STAT_NOT_IPV4 = 2;
export const LB_STAT_MALFORMED = 3;
export const LB_STAT_FRAGMENT = 4;
export const LB_STAT_NO_TARGET = 5;
export const LB_STAT_CT_HIT = 6;
export const LB_STAT_CT_NEW = 7;
export const LB_STAT_REDIRECT = 8;
export const LB_STAT_FIB_PASS = 9;
export const LB_STAT_TC_REVNAT = 10;
export const LB_STAT_CT_EXPIRED = 11;
export const LB_STAT_CT_CLOSED = 12;
export const LB_STAT_TC_RX = 13;
export const LB_STAT_REDIRECT_NEIGH = 14;
export const LB_STAT_REDIRECT_ERR = 15;
export const LB_STAT_ICMP_XLAT = 16;
export const LB_STAT_FRAG_NAT = 17;
export const LB_STAT_HO_NEW = 18;
export const LB_STAT_HO_PROMOTED = 19;
export const LB_STAT_MAX = 20;

export const LB_PATH_XDP = 1;
export const LB_PATH_TC = 2;

/** Names of lb_stats slots, in index order (for `lb show` and metrics). */
export const STAT_NAMES = [
  'xdp_rx', 'not_listener', 'not_ipv4', 'malformed', 'fragment', 'no_target', 'ct_hit', 'ct_new',
  'redirect', 'fib_pass', 'tc_revnat', 'ct_expired', 'ct_closed', 'tc_rx', 'redirect_neigh', 'redirect_err',
  'icmp_xlat', 'frag_nat', 'ho_new', 'ho_promoted',
] as const;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Byte sizes and field offsets of every shared struct (checked against BTF). */
export const LAYOUTS = {
  lb_ctl: { size: 16, fields: { active_gen: 0, serial: 4, pad: 8 } },
  lb_iface: { size: 8, fields: { path: 0, pad: 4 } },
  lb_nh_key: { size: 8, fields: { addr: 0, ifindex: 4 } },
  lb_nexthop: { size: 32, fields: { expires_ns: 0, ifindex: 8, mtu: 12, dmac: 14, smac: 20, pad: 26 } },
  lb_settings: {
    size: 32,
    fields: { tcp_idle_sec: 0, udp_idle_sec: 4, tcp_fin_sec: 8, flags: 12, src_rate: 16, src_burst: 20, backend_rate: 24, backend_burst: 28 },
  },
  lb_rl_bucket: { size: 24, fields: { tokens: 0, last_ns: 8, limited: 16 } },
  lb_listener_key: { size: 12, fields: { ifindex: 0, vip: 4, port: 8, proto: 10, gen: 11 } },
  lb_listener: { size: 16, fields: { listener_id: 0, default_group: 4, flags: 8, pad: 12 } },
  lb_src_key: { size: 12, fields: { prefixlen: 0, scope: 4, addr: 8 } },
  lb_target: { size: 12, fields: { addr: 0, target_id: 4, port: 8, pad: 10 } },
  lb_group: { size: 8 + 4 * LB_MAX_TARGETS + 12 * LB_MAX_TARGETS, fields: { count: 0, total_weight: 4, cum_weight: 8, targets: 8 + 4 * LB_MAX_TARGETS } },
  lb_flow_key: { size: 16, fields: { saddr: 0, daddr: 4, sport: 8, dport: 10, proto: 12, pad: 13 } },
  lb_flow: {
    size: 56,
    fields: { last_seen_ns: 0, nat_addr: 8, target_id: 12, nat_port: 16, dir: 18, state: 19, listener_id: 20, open_ns: 24, packets: 32, bytes: 40, ev: 48 },
  },
  lb_event: {
    size: 80,
    fields: {
      ts_ns: 0, open_ns: 8, packets_in: 16, bytes_in: 24, packets_out: 32, bytes_out: 40, client_addr: 48, vip_addr: 52,
      backend_addr: 56, listener_id: 60, target_id: 64, client_port: 68, vip_port: 70, backend_port: 72, proto: 74, type: 75, reason: 76, pad: 77,
    },
  },
  lb_target_stats: { size: 40, fields: { packets: 0, bytes: 8, new_flows: 16, closed_flows: 24, failed_conns: 32 } },
  lb_maglev: { size: LB_MAGLEV_SIZE, fields: { slots: 0 } },
  lb_route_stage: { size: 16 + 16 * LB_ROUTE_STAGE_OPS, fields: { count: 0, mode: 4, done: 8, err: 12, keys: 16, groups: 16 + 12 * LB_ROUTE_STAGE_OPS } },
  lb_frag_key: { size: 12, fields: { saddr: 0, daddr: 4, id: 8, proto: 10, pad: 11 } },
  lb_frag: { size: 24, fields: { expires_ns: 0, nat_addr: 8, target_id: 12, dir: 16, pad: 17 } },
} as const;

export type StructName = keyof typeof LAYOUTS;

// ---- IPv4 helpers: addresses travel as dotted strings in TS and as __be32 in the maps. ----

/** Parses a dotted IPv4 address to its 32-bit value (host number, e.g. 10.0.0.1 -> 0x0a000001). */
export function ipv4ToU32(addr: string): number {
  // Hand-rolled (no split, no regex): compile and apply encode every address of a config.
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i <= addr.length; i++) {
    const c = i < addr.length ? addr.charCodeAt(i) : 46; // a final '.' closes the last part
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) throw new RangeError(`not an IPv4 address: ${JSON.stringify(addr)}`);
    } else if (c === 46 && digits > 0) {
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else {
      throw new RangeError(`not an IPv4 address: ${JSON.stringify(addr)}`);
    }
  }
  if (dots !== 4) throw new RangeError(`not an IPv4 address: ${JSON.stringify(addr)}`);
  return value >>> 0;
}

export function u32ToIpv4(value: number): string {
  // A template, not Array.join: decoding a read-back formats every address of a generation.
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

// __be fields are written big-endian; host-order fields little-endian (x86-64 and arm64 hosts).
const writeBe32 = (b: Buffer, off: number, ip: string): void => { b.writeUInt32BE(ipv4ToU32(ip), off); };
const readBe32 = (b: Buffer, off: number): string => u32ToIpv4(b.readUInt32BE(off));

function checkRange(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} out of range: ${value} (expected an integer 0..${max})`);
  }
}

// ---- lb_ctl ----
export interface Ctl { activeGen: number; serial: number }
export function encodeCtl(v: Ctl): Buffer {
  const b = Buffer.alloc(LAYOUTS.lb_ctl.size);
  checkRange('active_gen', v.activeGen, 1);
  b.writeUInt32LE(v.activeGen, 0);
  b.writeUInt32LE(v.serial >>> 0, 4);
  return b;
}
export function decodeCtl(b: Buffer): Ctl {
  return { activeGen: b.readUInt32LE(0), serial: b.readUInt32LE(4) };
}

// ---- lb_settings ----
/** A token bucket's refill rate (new flows per second) and size; rate 0 = no limit. */
export interface RateLimitValue { rate: number; burst: number }
export const NO_RATE_LIMIT: RateLimitValue = { rate: 0, burst: 0 };
export interface Settings {
  tcpIdleSec: number;
  udpIdleSec: number;
  tcpFinSec: number;
  flags: number;
  /** Absent: no limit (rate 0). */
  perSource?: RateLimitValue;
  perBackend?: RateLimitValue;
}
export function encodeSettings(v: Settings): Buffer {
  const b = Buffer.alloc(LAYOUTS.lb_settings.size);
  const src = v.perSource ?? NO_RATE_LIMIT;
  const be = v.perBackend ?? NO_RATE_LIMIT;
  b.writeUInt32LE(v.tcpIdleSec, 0);
  b.writeUInt32LE(v.udpIdleSec, 4);
  b.writeUInt32LE(v.tcpFinSec, 8);
  b.writeUInt32LE(v.flags, 12);
  b.writeUInt32LE(src.rate, 16);
  b.writeUInt32LE(src.burst, 20);
  b.writeUInt32LE(be.rate, 24);
  b.writeUInt32LE(be.burst, 28);
  return b;
}
export function decodeSettings(b: Buffer): Settings {
  const limit = (off: number): RateLimitValue | undefined =>
    (b.length >= off + 8 && b.readUInt32LE(off) > 0 ? { rate: b.readUInt32LE(off), burst: b.readUInt32LE(off + 4) } : undefined);
  const perSource = limit(16);
  const perBackend = limit(24);
  return {
    tcpIdleSec: b.readUInt32LE(0), udpIdleSec: b.readUInt32LE(4), tcpFinSec: b.readUInt32LE(8), flags: b.readUInt32LE(12),
    ...(perSource ? { perSource } : {}), ...(perBackend ? { perBackend } : {}),
  };
}

// ---- lb_rl_bucket ----
export interface RateLimitBucket { tokensScaled: bigint; lastNs: bigint; limited: bigint }
export function encodeRateLimitBucket(v: RateLimitBucket): Buffer {
  const b = Buffer.alloc(LAYOUTS.lb_rl_bucket.size);
  b.writeBigUInt64LE(v.tokensScaled, 0);
  b.writeBigUInt64LE(v.lastNs, 8);
  b.writeBigUInt64LE(v.limited, 16);
  return b;
}
export function decodeRateLimitBucket(b: Buffer): RateLimitBucket {
  return { tokensScaled: b.readBigUInt64LE(0), lastNs: b.readBigUInt64LE(8), limited: b.readBigUInt64LE(16) };
}

// ---- lb_listener_key / lb_listener ----
export interface ListenerKey { ifindex: number; vip: string; port: number; proto: number; gen: number }
export function encodeListenerKey(k: ListenerKey): Buffer {
  // Every byte is written below: a pooled, unzeroed buffer (a config encodes one key per listener).
  return encodeListenerKeyInto(Buffer.allocUnsafe(LAYOUTS.lb_listener_key.size), 0, k);
}
/** Writes every byte of the key at `off` (the "Into" encoders fill one contiguous buffer of a generation). */
export function encodeListenerKeyInto(b: Buffer, off: number, k: ListenerKey): Buffer {
  checkRange('port', k.port, 65535);
  checkRange('gen', k.gen, 1);
  b.writeUInt32LE(k.ifindex, off);
  writeBe32(b, off + 4, k.vip);
  b.writeUInt16BE(k.port, off + 8);
  b.writeUInt8(k.proto, off + 10);
  b.writeUInt8(k.gen, off + 11);
  return b;
}
export function decodeListenerKey(b: Buffer): ListenerKey {
  return { ifindex: b.readUInt32LE(0), vip: readBe32(b, 4), port: b.readUInt16BE(8), proto: b.readUInt8(10), gen: b.readUInt8(11) };
}

export interface Listener { listenerId: number; defaultGroup: number; flags: number }
export function encodeListener(v: Listener): Buffer {
  return encodeListenerInto(Buffer.allocUnsafe(LAYOUTS.lb_listener.size), 0, v);
}
/** Writes every byte of the value (pad included) at `off`. */
export function encodeListenerInto(b: Buffer, off: number, v: Listener): Buffer {
  checkRange('listener_id', v.listenerId, 0x7fffffff);
  checkRange('default_group', v.defaultGroup, LB_MAX_GROUPS - 1);
  b.writeUInt32LE(v.listenerId, off);
  b.writeUInt32LE(v.defaultGroup, off + 4);
  b.writeUInt32LE(v.flags, off + 8);
  b.writeUInt32LE(0, off + 12);
  return b;
}
export function decodeListener(b: Buffer): Listener {
  return { listenerId: b.readUInt32LE(0), defaultGroup: b.readUInt32LE(4), flags: b.readUInt32LE(8) };
}

// ---- lb_src_key (LPM) / value: __u32 group ----
export interface SrcKey { gen: number; listenerId: number; addr: string; prefixLen: number }
export function srcScope(gen: number, listenerId: number): number {
  return ((gen << 31) | listenerId) >>> 0;
}
export function encodeSrcKey(k: SrcKey): Buffer {
  // Every byte is written below: a pooled, unzeroed buffer (a config encodes one key per route).
  return encodeSrcKeyInto(Buffer.allocUnsafe(LAYOUTS.lb_src_key.size), 0, k);
}
/** Writes every byte of the key at `off`. */
export function encodeSrcKeyInto(b: Buffer, off: number, k: SrcKey): Buffer {
  return encodeSrcKeyFieldsInto(b, off, k.gen, k.listenerId, k.addr, k.prefixLen);
}
/** encodeSrcKeyInto with the fields as arguments (no object per route). */
export function encodeSrcKeyFieldsInto(b: Buffer, off: number, gen: number, listenerId: number, addr: string, prefixLen: number): Buffer {
  checkRange('prefix length', prefixLen, 32);
  checkRange('gen', gen, 1);
  checkRange('listener_id', listenerId, 0x7fffffff);
  b.writeUInt32LE(32 + prefixLen, off);
  b.writeUInt32LE(srcScope(gen, listenerId), off + 4);
  // The trie ignores bits past the prefix; clearing them gives one key per prefix, so a key
  // compares equal to the entry the kernel holds for it (10.0.0.5/24 is 10.0.0.0/24).
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  b.writeUInt32BE((ipv4ToU32(addr) & mask) >>> 0, off + 8);
  return b;
}
export function decodeSrcKey(b: Buffer): SrcKey {
  const scope = b.readUInt32LE(4);
  return { prefixLen: b.readUInt32LE(0) - 32, gen: scope >>> 31, listenerId: scope & 0x7fffffff, addr: readBe32(b, 8) };
}
export function encodeU32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4); // all 4 bytes written below
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}
export function decodeU32(b: Buffer): number {
  return b.readUInt32LE(0);
}

// ---- lb_group ----
export interface GroupTarget { addr: string; port: number; weight: number; targetId: number }
export interface Group { targets: GroupTarget[] }

/** Index of a group in the lb_groups array. */
export function groupIndex(gen: number, group: number): number {
  checkRange('gen', gen, 1);
  checkRange('group', group, LB_MAX_GROUPS - 1);
  return gen * LB_MAX_GROUPS + group;
}

export function encodeGroup(g: Group): Buffer {
  return encodeGroupInto(Buffer.alloc(LAYOUTS.lb_group.size), 0, g);
}
/** Writes the group at `at`, into bytes that must be zero (the unused target slots stay zero). */
export function encodeGroupInto(b: Buffer, at: number, g: Group): Buffer {
  const { fields } = LAYOUTS.lb_group;
  if (g.targets.length > LB_MAX_TARGETS) {
    throw new RangeError(`a group holds at most ${LB_MAX_TARGETS} targets, got ${g.targets.length}`);
  }
  if (!(at >= 0 && at + LAYOUTS.lb_group.size <= b.length)) throw new RangeError(`a group at offset ${at} does not fit a buffer of ${b.length} bytes`);
  let cum = 0;
  // Byte stores, not Buffer.write* (a call with its own checks each): an apply encodes every
  // group of a generation (10,000 in the benchmark) mostly before V8 has optimized anything.
  for (let i = 0; i < g.targets.length; i++) {
    const t = g.targets[i]!;
    checkRange('weight', t.weight, 0xffff);
    checkRange('port', t.port, 65535);
    checkRange('target_id', t.targetId, LB_MAX_TARGET_IDS - 1);
    cum += t.weight;
    storeU32LE(b, at + fields.cum_weight + 4 * i, cum);
    const off = at + fields.targets + LAYOUTS.lb_target.size * i;
    const addr = ipv4ToU32(t.addr);
    b[off] = addr >>> 24;
    b[off + 1] = (addr >>> 16) & 255;
    b[off + 2] = (addr >>> 8) & 255;
    b[off + 3] = addr & 255;
    storeU32LE(b, off + 4, t.targetId);
    b[off + 8] = t.port >>> 8;
    b[off + 9] = t.port & 255;
  }
  storeU32LE(b, at + fields.count, g.targets.length);
  storeU32LE(b, at + fields.total_weight, cum);
  return b;
}

/** b.writeUInt32LE(v, off) for a v already checked to be a u32 and an offset checked to be inside b. */
function storeU32LE(b: Buffer, off: number, v: number): void {
  b[off] = v & 255;
  b[off + 1] = (v >>> 8) & 255;
  b[off + 2] = (v >>> 16) & 255;
  b[off + 3] = v >>> 24;
}

export function decodeGroup(b: Buffer): Group {
  const { fields } = LAYOUTS.lb_group;
  const count = Math.min(b.readUInt32LE(fields.count), LB_MAX_TARGETS);
  const targets: GroupTarget[] = [];
  let prev = 0;
  for (let i = 0; i < count; i++) {
    const cum = b.readUInt32LE(fields.cum_weight + 4 * i);
    const off = fields.targets + LAYOUTS.lb_target.size * i;
    targets.push({ addr: readBe32(b, off), targetId: b.readUInt32LE(off + 4), port: b.readUInt16BE(off + 8), weight: cum - prev });
    prev = cum;
  }
  return { targets };
}

// ---- lb_flow_key / lb_flow ----
export interface FlowKey { saddr: string; daddr: string; sport: number; dport: number; proto: number }
export function encodeFlowKey(k: FlowKey): Buffer {
  const b = Buffer.alloc(LAYOUTS.lb_flow_key.size);
  writeBe32(b, 0, k.saddr);
  writeBe32(b, 4, k.daddr);
  b.writeUInt16BE(k.sport, 8);
  b.writeUInt16BE(k.dport, 10);
  b.writeUInt8(k.proto, 12);
  return b;
}
export function decodeFlowKey(b: Buffer): FlowKey {
  return { saddr: readBe32(b, 0), daddr: readBe32(b, 4), sport: b.readUInt16BE(8), dport: b.readUInt16BE(10), proto: b.readUInt8(12) };
}

export interface Flow {
  lastSeenNs: bigint; natAddr: string; natPort: number; targetId: number; dir: number; state: number;
  /** The flow's listener (forward entries). */
  listenerId?: number;
  /** When the flow was created (bpf_ktime_get_ns). */
  openNs?: bigint;
  /** Packets and bytes of this entry's direction. */
  packets?: bigint;
  bytes?: bigint;
  /** LB_CT_EV_* bits. */
  ev?: bigint;
}
export function encodeFlow(v: Flow): Buffer {
  const b = Buffer.alloc(LAYOUTS.lb_flow.size);
  b.writeBigUInt64LE(v.lastSeenNs, 0);
  writeBe32(b, 8, v.natAddr);
  b.writeUInt32LE(v.targetId, 12);
  b.writeUInt16BE(v.natPort, 16);
  b.writeUInt8(v.dir, 18);
  b.writeUInt8(v.state, 19);
  b.writeUInt32LE(v.listenerId ?? 0, 20);
  b.writeBigUInt64LE(v.openNs ?? 0n, 24);
  b.writeBigUInt64LE(v.packets ?? 0n, 32);
  b.writeBigUInt64LE(v.bytes ?? 0n, 40);
  b.writeBigUInt64LE(v.ev ?? 0n, 48);
  return b;
}
export function decodeFlow(b: Buffer): Flow {
  return {
    lastSeenNs: b.readBigUInt64LE(0), natAddr: readBe32(b, 8), targetId: b.readUInt32LE(12),
    natPort: b.readUInt16BE(16), dir: b.readUInt8(18), state: b.readUInt8(19), listenerId: b.readUInt32LE(20),
    openNs: b.readBigUInt64LE(24), packets: b.readBigUInt64LE(32), bytes: b.readBigUInt64LE(40), ev: b.readBigUInt64LE(48),
  };
}

// ---- lb_event (ring buffer record) ----
export interface ConnEvent {
  type: 'open' | 'close';
  /** bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the event and of the flow's creation. */
  tsNs: bigint;
  openNs: bigint;
  client: string; clientPort: number;
  vip: string; vipPort: number;
  backend: string; backendPort: number;
  proto: number;
  listenerId: number;
  targetId: number;
  /** Close only ('' for an open). */
  reason: CloseReason | '';
  packetsIn: bigint; bytesIn: bigint; packetsOut: bigint; bytesOut: bigint;
}
/** Decodes one record at `offset` of a buffer holding records back to back (the consumer's batches). */
export function decodeEvent(b: Buffer, offset = 0): ConnEvent {
  const reason = b.readUInt8(offset + 76);
  return {
    type: b.readUInt8(offset + 75) === LB_EV_CLOSE ? 'close' : 'open',
    tsNs: b.readBigUInt64LE(offset), openNs: b.readBigUInt64LE(offset + 8),
    packetsIn: b.readBigUInt64LE(offset + 16), bytesIn: b.readBigUInt64LE(offset + 24),
    packetsOut: b.readBigUInt64LE(offset + 32), bytesOut: b.readBigUInt64LE(offset + 40),
    client: readBe32(b, offset + 48), vip: readBe32(b, offset + 52), backend: readBe32(b, offset + 56),
    listenerId: b.readUInt32LE(offset + 60), targetId: b.readUInt32LE(offset + 64),
    clientPort: b.readUInt16BE(offset + 68), vipPort: b.readUInt16BE(offset + 70), backendPort: b.readUInt16BE(offset + 72),
    proto: b.readUInt8(offset + 74), reason: CLOSE_REASONS[reason] ?? '',
  };
}
/** Encodes a record (tests, and the daemon's sweep, which emits closes the kernel cannot). */
export function encodeEvent(e: ConnEvent): Buffer {
  const b = Buffer.alloc(LAYOUTS.lb_event.size);
  b.writeBigUInt64LE(e.tsNs, 0);
  b.writeBigUInt64LE(e.openNs, 8);
  b.writeBigUInt64LE(e.packetsIn, 16);
  b.writeBigUInt64LE(e.bytesIn, 24);
  b.writeBigUInt64LE(e.packetsOut, 32);
  b.writeBigUInt64LE(e.bytesOut, 40);
  writeBe32(b, 48, e.client);
  writeBe32(b, 52, e.vip);
  writeBe32(b, 56, e.backend);
  b.writeUInt32LE(e.listenerId, 60);
  b.writeUInt32LE(e.targetId, 64);
  b.writeUInt16BE(e.clientPort, 68);
  b.writeUInt16BE(e.vipPort, 70);
  b.writeUInt16BE(e.backendPort, 72);
  b.writeUInt8(e.proto, 74);
  b.writeUInt8(e.type === 'close' ? LB_EV_CLOSE : LB_EV_OPEN, 75);
  b.writeUInt8(e.reason === '' ? 0 : CLOSE_REASONS.indexOf(e.reason), 76);
  return b;
}

// ---- lb_target_stats (one CPU's slot; per-CPU maps return one per possible CPU) ----
export interface TargetStats {
  packets: bigint;
  bytes: bigint;
  newFlows: bigint;
  closedFlows: bigint;
  /** TCP flows the backend reset before any reply passed (RST answering the SYN). */
  failedConns: bigint;
}
export function decodeTargetStats(b: Buffer, offset = 0): TargetStats {
  return {
    packets: b.readBigUInt64LE(offset), bytes: b.readBigUInt64LE(offset + 8),
    newFlows: b.readBigUInt64LE(offset + 16), closedFlows: b.readBigUInt64LE(offset + 24),
    failedConns: b.readBigUInt64LE(offset + 32),
  };
}

/** The sum of a target's per-CPU lb_tstats slots (each decoded by decodeTargetStats). */
export function sumTargetStats(slots: Iterable<TargetStats>): TargetStats {
  const total: TargetStats = { packets: 0n, bytes: 0n, newFlows: 0n, closedFlows: 0n, failedConns: 0n };
  for (const s of slots) {
    total.packets += s.packets;
    total.bytes += s.bytes;
    total.newFlows += s.newFlows;
    total.closedFlows += s.closedFlows;
    total.failedConns += s.failedConns;
  }
  return total;
}

// ---- lb_maglev: key = the lb_groups index (groupIndex), value = LB_MAGLEV_SIZE __u8 target indexes ----

/**
 * A Maglev table as the map holds it: slot -> index into the group's targets. `table` is what
 * buildMaglevTable (src/core/maglev.ts) returns; every slot must name a target (no -1: a group
 * without weight gets no table).
 */
export function encodeMaglev(table: ArrayLike<number>): Buffer {
  return encodeMaglevInto(Buffer.alloc(LB_MAGLEV_SIZE), 0, table);
}
/** Writes every slot of the table at `off`. */
export function encodeMaglevInto(b: Buffer, off: number, table: ArrayLike<number>): Buffer {
  if (table.length !== LB_MAGLEV_SIZE) throw new RangeError(`a Maglev table has ${LB_MAGLEV_SIZE} slots, got ${table.length}`);
  for (let i = 0; i < LB_MAGLEV_SIZE; i++) {
    const v = table[i]!;
    checkRange(`Maglev slot ${i}`, v, LB_MAX_TARGETS - 1);
    b[off + i] = v;
  }
  return b;
}
