// Active flows per backend, counted from the conntrack entries (lb_flows). Pure: the entries and
// the monotonic time (the clock of bpf_ktime_get_ns) come in.
//
// A flow is one FORWARD entry (client -> VIP, nat = backend). It is active while:
// - it has not idled out: its idle time (the fresher of its FORWARD and REVERSE entries, as the
//   data plane judges it) is within the protocol's timeout (TCP idle, TCP after FIN, UDP idle);
// - and it is not closing on both sides: a TCP flow in which the client and the backend both
//   sent FIN has done its work and only waits for its last ACKs and the FIN timeout.
// A flow with one FIN is still active (a half-closed HTTP request can still be answered).
// These counts drive least-connections, drains ("done at 0 active flows") and
// lb_backend_connections.

import { IPPROTO_TCP, IPPROTO_UDP, LB_CT_FIN_BACKEND, LB_CT_FIN_CLIENT, LB_DIR_FORWARD, LB_DIR_REVERSE } from '../core/abi.js';
import type { ConntrackEntry } from '../dataplane/unanswered-flows.js';
import { backendKey } from './keys.js';

export interface FlowTimeouts {
  tcpIdleSec: number;
  tcpFinSec: number;
  udpIdleSec: number;
}

const FIN_BOTH = LB_CT_FIN_CLIENT | LB_CT_FIN_BACKEND;
const NS_PER_SEC = 1_000_000_000n;

const keyText = (saddr: string, sport: number, daddr: string, dport: number, proto: number): string => `${proto} ${saddr}:${sport} ${daddr}:${dport}`;

/** Backend "addr:port" -> active flows; backends without any are absent. */
export function activeFlowsByBackend(entries: Iterable<ConntrackEntry>, nowNs: bigint, timeouts: FlowTimeouts): Map<string, number> {
  const all = [...entries];
  const reverseSeen = new Map<string, bigint>();
  for (const { key, value } of all) {
    if (value.dir === LB_DIR_REVERSE) reverseSeen.set(keyText(key.saddr, key.sport, key.daddr, key.dport, key.proto), value.lastSeenNs);
  }
  const out = new Map<string, number>();
  for (const { key, value } of all) {
    if (value.dir !== LB_DIR_FORWARD) continue;
    const fin = value.state & FIN_BOTH;
    if (key.proto === IPPROTO_TCP && fin === FIN_BOTH) continue;
    const rev = reverseSeen.get(keyText(value.natAddr, value.natPort, key.saddr, key.sport, key.proto));
    const last = rev !== undefined && rev > value.lastSeenNs ? rev : value.lastSeenNs;
    const idleNs = nowNs > last ? nowNs - last : 0n;
    const timeoutSec = key.proto === IPPROTO_UDP ? timeouts.udpIdleSec : fin !== 0 ? timeouts.tcpFinSec : timeouts.tcpIdleSec;
    if (idleNs > BigInt(Math.max(0, Math.floor(timeoutSec))) * NS_PER_SEC) continue;
    const backend = backendKey(value.natAddr, value.natPort);
    out.set(backend, (out.get(backend) ?? 0) + 1);
  }
  return out;
}
