// The data plane's content in operator terms. The desired state (compiled from a config) and the
// live state (decoded from the pinned maps) both take this form, so a plan is a pure diff of two
// LogicalStates, and a read-back after apply compares the same shape.
//
// Identity: a listener is identified by (iface, vip, port, proto); a source route by its listener
// and prefix; a target by (addr, port) within its group. Ids (listener_id, group index,
// target_id) are an encoding detail (src/core/compile/encode.ts) and never appear here.

import type { RateLimitValue } from './abi.js';
import type { PathRequest } from './data-path-choice.js';

export type L4Proto = 'tcp' | 'udp';

/** A backend in a group. Order within a group is significant: the hash choice walks it. */
export interface LogicalTarget {
  addr: string;
  port: number;
  /** Effective weight written to the data plane (0 = no new flows). */
  weight: number;
}

export interface LogicalSourceRoute {
  /** Canonical "a.b.c.d/len". */
  prefix: string;
  targets: LogicalTarget[];
}

export interface LogicalListener {
  iface: string;
  /** The VIP; "0.0.0.0" = any address on the interface. */
  vip: string;
  port: number;
  proto: L4Proto;
  /** Proxy that owns it: from the config (desired), or the apply inventory (live); null if unknown. */
  proxy: string | null;
  /** Session persistence: hash the client address only. */
  persist: boolean;
  defaultTargets: LogicalTarget[];
  /** Sorted by prefix (canonical string order). */
  sourceRoutes: LogicalSourceRoute[];
}

export interface LogicalSettings {
  tcpIdleSec: number;
  udpIdleSec: number;
  tcpFinSec: number;
  /** settings.rate-limits: token buckets on new flows (absent: no limit). */
  perSource?: RateLimitValue;
  perBackend?: RateLimitValue;
}

/** How lb runs on an interface: its data path, requested ('auto' until chosen on the host) or attached. */
export interface InterfacePath {
  path: PathRequest;
  /** Why this path (src/core/data-path-choice.ts), once chosen on the host. */
  reason?: string;
  /**
   * net.ipv4.conf.<iface>.route_localnet is (live) or must be (desired) 1: a listener on the
   * interface has a loopback target (127.0.0.0/8), which the kernel only delivers from a
   * non-loopback interface with it set (docs/dataplane.md, "Local targets").
   */
  routeLocalnet?: boolean;
  /**
   * The interface's ifindex, where the host was asked: desired, the one the encoding used; live,
   * the one lb's programs are attached to, or the one the last apply recorded for an interface
   * that has since been deleted (and maybe created again with a new one).
   */
  ifindex?: number;
}

export interface LogicalState {
  /** Interfaces with lb's programs attached, sorted. */
  interfaces: string[];
  /**
   * Data path per interface. Desired: listen.mode from the config, chosen on the host before a
   * plan (prepare); live: the path attached. Absent (or an interface missing): 'auto'.
   */
  paths?: Record<string, InterfacePath>;
  settings: LogicalSettings;
  /** Sorted by listenerKey(). */
  listeners: LogicalListener[];
}

/** Canonical identity of a listener, e.g. "eth0|10.0.0.10|80|tcp". */
export function listenerKey(l: Pick<LogicalListener, 'iface' | 'vip' | 'port' | 'proto'>): string {
  return `${l.iface}|${l.vip}|${l.port}|${l.proto}`;
}

/** Human name of a listener, e.g. "eth0 10.0.0.10:80/tcp" or "eth0 *:80/tcp". */
export function listenerLabel(l: Pick<LogicalListener, 'iface' | 'vip' | 'port' | 'proto'>): string {
  return `${l.iface} ${l.vip === '0.0.0.0' ? '*' : l.vip}:${l.port}/${l.proto}`;
}

export function targetLabel(t: Pick<LogicalTarget, 'addr' | 'port'>): string {
  return `${t.addr}:${t.port}`;
}

export const EMPTY_STATE: LogicalState = {
  interfaces: [],
  settings: { tcpIdleSec: 0, udpIdleSec: 0, tcpFinSec: 0 },
  listeners: [],
};
