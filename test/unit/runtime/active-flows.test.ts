// activeFlowsByBackend: which conntrack entries count as active flows of a backend.
import { describe, expect, it } from 'vitest';
import { IPPROTO_TCP, IPPROTO_UDP, LB_CT_FIN_BACKEND, LB_CT_FIN_CLIENT, LB_DIR_FORWARD, LB_DIR_REVERSE } from '../../../src/core/abi.js';
import type { ConntrackEntry } from '../../../src/dataplane/unanswered-flows.js';
import { activeFlowsByBackend } from '../../../src/runtime/active-flows.js';

const S = 1_000_000_000n;
const NOW = 10_000n * S;
const VIP = '10.100.0.1';
const TIMEOUTS = { tcpIdleSec: 300, tcpFinSec: 10, udpIdleSec: 60 };

function flow(client: string, port: number, backend: string, o: { ageS?: number; reverseAgeS?: number; state?: number; proto?: number } = {}): ConntrackEntry[] {
  const proto = o.proto ?? IPPROTO_TCP;
  return [
    { key: { saddr: client, daddr: VIP, sport: port, dport: 80, proto }, value: { lastSeenNs: NOW - BigInt(o.ageS ?? 1) * S, natAddr: backend, natPort: 8080, targetId: 0, dir: LB_DIR_FORWARD, state: o.state ?? 0 } },
    { key: { saddr: backend, daddr: client, sport: 8080, dport: port, proto }, value: { lastSeenNs: NOW - BigInt(o.reverseAgeS ?? o.ageS ?? 1) * S, natAddr: VIP, natPort: 80, targetId: 0, dir: LB_DIR_REVERSE, state: 0 } },
  ];
}

describe('activeFlowsByBackend', () => {
  it('counts forward entries per backend, not closing on both sides and not idled out', () => {
    const entries = [
      ...flow('172.16.0.1', 1000, '10.0.0.1'),
      ...flow('172.16.0.1', 1001, '10.0.0.1', { state: LB_CT_FIN_CLIENT }), // half-closed: still active
      ...flow('172.16.0.1', 1002, '10.0.0.1', { state: LB_CT_FIN_CLIENT | LB_CT_FIN_BACKEND }), // closing: done
      ...flow('172.16.0.1', 1003, '10.0.0.1', { ageS: 301 }), // idled out
      ...flow('172.16.0.1', 1004, '10.0.0.1', { ageS: 301, reverseAgeS: 5 }), // the backend talks: alive
      ...flow('172.16.0.1', 1005, '10.0.0.1', { state: LB_CT_FIN_CLIENT, ageS: 11 }), // FIN timeout passed
      ...flow('172.16.0.2', 1000, '10.0.0.2', { proto: IPPROTO_UDP, ageS: 59 }),
      ...flow('172.16.0.2', 1001, '10.0.0.2', { proto: IPPROTO_UDP, ageS: 61 }),
    ];
    expect(activeFlowsByBackend(entries, NOW, TIMEOUTS)).toEqual(new Map([['10.0.0.1:8080', 3], ['10.0.0.2:8080', 1]]));
  });

  it('is empty without flows', () => {
    expect(activeFlowsByBackend([], NOW, TIMEOUTS).size).toBe(0);
  });
});
