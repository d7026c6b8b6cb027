// Failed connection attempts, the half the data plane cannot count: SYNs nobody answered.
//
// The circuit breaker's input per backend and sample period (docs/dataplane.md, "Failed connection
// attempts"):
//   attempts = delta of lb_tstats.new_flows
//   failures = delta of lb_tstats.failed_conns      (TC saw the backend RST a flow before any reply)
//            + countUnansweredFlows(...)             (TCP flows with no reply after a bound)
// TC sets LB_CT_REPLIED on both conntrack entries of a flow when the first reply passes; a TCP
// FORWARD entry without it, idle longer than the bound, is a connection attempt the backend never
// answered. Pure: the entries come in (lb_flows and lb_halfopen, decoded), the time too.
//
// Caveats:
// - Only valid where replies pass through lb's TC egress (the NAT design requires it anyway).
// - The age is the idle time of the FORWARD entry (last_seen): a client retransmitting its SYN
//   refreshes it (at most once per second), so an attempt is seen once a retransmission gap exceeds
//   the bound (Linux backs off 1, 2, 4, 8 s...): choose the bound above the first gaps, e.g. 3 s.
// - Flows created before LB_CT_REPLIED existed, and flows found when a daemon starts, are unknown
//   attempts: take a first sample as the baseline (pass a `counted` set and discard the result).

import { IPPROTO_TCP, LB_CT_REPLIED, LB_DIR_FORWARD, LB_DIR_REVERSE, type Flow, type FlowKey } from '../core/abi.js';

export interface ConntrackEntry { key: FlowKey; value: Flow }

export interface UnansweredFlow {
  key: FlowKey;
  targetId: number;
  /** Idle time of the forward entry (ns). */
  ageNs: bigint;
}

const keyText = (k: FlowKey): string => `${k.proto} ${k.saddr}:${k.sport} ${k.daddr}:${k.dport}`;

/** Stable identity of a flow (its forward key) for the `counted` set. */
export function flowId(key: FlowKey): string {
  return keyText(key);
}

/**
 * TCP flows whose backend never answered and whose forward entry has been idle longer than
 * `boundNs`. A flow is answered when its FORWARD entry or its REVERSE entry (the one that maps back
 * to the same VIP:port) has LB_CT_REPLIED: TC sets both, and the forward entry's bit can be lost
 * to a concurrent FIN bit set by XDP (conntrack.h, ct_set_state).
 */
export function unansweredFlows(entries: Iterable<ConntrackEntry>, nowNs: bigint, boundNs: bigint): UnansweredFlow[] {
  const all = [...entries];
  const reverse = new Map<string, Flow>();
  for (const e of all) if (e.value.dir === LB_DIR_REVERSE) reverse.set(keyText(e.key), e.value);
  const out: UnansweredFlow[] = [];
  for (const { key, value } of all) {
    if (value.dir !== LB_DIR_FORWARD || key.proto !== IPPROTO_TCP || (value.state & LB_CT_REPLIED) !== 0) continue;
    const r = reverse.get(keyText({ saddr: value.natAddr, daddr: key.saddr, sport: value.natPort, dport: key.sport, proto: key.proto }));
    if (r !== undefined && r.natAddr === key.daddr && r.natPort === key.dport && (r.state & LB_CT_REPLIED) !== 0) continue;
    const ageNs = nowNs > value.lastSeenNs ? nowNs - value.lastSeenNs : 0n;
    if (ageNs > boundNs) out.push({ key, targetId: value.targetId, ageNs });
  }
  return out;
}

/**
 * Unanswered TCP flows per target id (see unansweredFlows). With `counted`, a flow is counted once
 * over successive calls: flows already in the set are skipped, new ones are added, and ids of flows
 * no longer unanswered (answered, closed, evicted) are dropped from it, so it stays bounded.
 */
export function countUnansweredFlows(entries: Iterable<ConntrackEntry>, nowNs: bigint, boundNs: bigint, counted?: Set<string>): Map<number, number> {
  const found = unansweredFlows(entries, nowNs, boundNs);
  const perTarget = new Map<number, number>();
  const still = new Set<string>();
  for (const f of found) {
    const id = flowId(f.key);
    still.add(id);
    if (counted?.has(id)) continue;
    counted?.add(id);
    perTarget.set(f.targetId, (perTarget.get(f.targetId) ?? 0) + 1);
  }
  if (counted) for (const id of counted) if (!still.has(id)) counted.delete(id);
  return perTarget;
}
