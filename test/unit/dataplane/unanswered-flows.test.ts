// countUnansweredFlows / unansweredFlows: which conntrack entries are connection attempts the
// backend never answered (the user-space half of the circuit breaker's failure count).
import { describe, expect, it } from 'vitest';
import {
  IPPROTO_TCP, IPPROTO_UDP, LB_CT_FIN_CLIENT, LB_CT_REPLIED, LB_DIR_FORWARD, LB_DIR_REVERSE,
} from '../../../src/core/abi.js';
import { countUnansweredFlows, flowId, unansweredFlows, type ConntrackEntry } from '../../../src/dataplane/unanswered-flows.js';

const S = 1_000_000_000n;
const NOW = 1000n * S;
const VIP = '10.100.0.1';

/** Both entries of a flow client:port -> VIP:80 -> backend:8080. */
function flow(client: string, port: number, backend: string, targetId: number,
  o: { ageS?: number; state?: number; reverseState?: number; proto?: number; reverseVip?: string } = {}): ConntrackEntry[] {
  const proto = o.proto ?? IPPROTO_TCP;
  const last = NOW - BigInt(o.ageS ?? 10) * S;
  return [
    { key: { saddr: client, daddr: VIP, sport: port, dport: 80, proto }, value: { lastSeenNs: last, natAddr: backend, natPort: 8080, targetId, dir: LB_DIR_FORWARD, state: o.state ?? 0 } },
    { key: { saddr: backend, daddr: client, sport: 8080, dport: port, proto }, value: { lastSeenNs: last, natAddr: o.reverseVip ?? VIP, natPort: 80, targetId, dir: LB_DIR_REVERSE, state: o.reverseState ?? 0 } },
  ];
}

describe('unansweredFlows', () => {
  it('counts TCP forward entries without LB_CT_REPLIED idle longer than the bound, per target', () => {
    const entries = [
      ...flow('172.16.0.1', 1000, '10.0.0.1', 1),
      ...flow('172.16.0.1', 1001, '10.0.0.1', 1, { state: LB_CT_FIN_CLIENT }),
      ...flow('172.16.0.2', 1000, '10.0.0.2', 2),
      ...flow('172.16.0.3', 1000, '10.0.0.2', 2, { state: LB_CT_REPLIED, reverseState: LB_CT_REPLIED }),
    ];
    expect(countUnansweredFlows(entries, NOW, 3n * S)).toEqual(new Map([[1, 2], [2, 1]]));
    expect(unansweredFlows(entries, NOW, 3n * S).map((f) => [f.key.saddr, f.key.sport, f.targetId, f.ageNs])).toEqual([
      ['172.16.0.1', 1000, 1, 10n * S], ['172.16.0.1', 1001, 1, 10n * S], ['172.16.0.2', 1000, 2, 10n * S],
    ]);
  });

  it('a flow is answered when either entry has the bit (the forward bit can be lost to a race)', () => {
    const entries = [
      ...flow('172.16.0.1', 1000, '10.0.0.1', 1, { state: LB_CT_REPLIED }),
      ...flow('172.16.0.2', 1000, '10.0.0.1', 1, { reverseState: LB_CT_REPLIED }),
    ];
    expect(countUnansweredFlows(entries, NOW, 0n)).toEqual(new Map());
  });

  it('a REPLIED reverse entry of another VIP (a colliding reverse key) does not answer this flow', () => {
    const entries = flow('172.16.0.1', 1000, '10.0.0.1', 1, { reverseState: LB_CT_REPLIED, reverseVip: '10.100.0.9' });
    expect(countUnansweredFlows(entries, NOW, 0n)).toEqual(new Map([[1, 1]]));
  });

  it('skips UDP, reverse entries alone, flows within the bound (strictly older only), and clock skew', () => {
    const entries = [
      ...flow('172.16.0.1', 1000, '10.0.0.1', 1, { proto: IPPROTO_UDP }),
      flow('172.16.0.2', 1000, '10.0.0.1', 1)[1]!,
      ...flow('172.16.0.3', 1000, '10.0.0.1', 1, { ageS: 3 }),
      ...flow('172.16.0.4', 1000, '10.0.0.1', 1, { ageS: -5 }),
    ];
    expect(countUnansweredFlows(entries, NOW, 3n * S)).toEqual(new Map());
    expect(unansweredFlows(entries, NOW, 2n * S).map((f) => f.key.saddr)).toEqual(['172.16.0.3']);
  });

  it('with a counted set, counts each flow once and forgets flows that are answered or gone', () => {
    const counted = new Set<string>();
    const a = flow('172.16.0.1', 1000, '10.0.0.1', 1);
    const b = flow('172.16.0.2', 1000, '10.0.0.1', 1);
    expect(countUnansweredFlows([...a, ...b], NOW, 0n, counted)).toEqual(new Map([[1, 2]]));
    expect(countUnansweredFlows([...a, ...b], NOW + S, 0n, counted)).toEqual(new Map());
    const c = flow('172.16.0.3', 1000, '10.0.0.2', 2);
    expect(countUnansweredFlows([...a, ...c], NOW + 2n * S, 0n, counted)).toEqual(new Map([[2, 1]]));
    expect([...counted].sort()).toEqual([flowId(a[0]!.key), flowId(c[0]!.key)].sort());
    // A baseline sample (result discarded) keeps flows found at start-up from counting later.
    const baseline = new Set<string>();
    countUnansweredFlows([...a, ...b], NOW, 0n, baseline);
    expect(countUnansweredFlows([...a, ...b, ...c], NOW, 0n, baseline)).toEqual(new Map([[2, 1]]));
  });
});
