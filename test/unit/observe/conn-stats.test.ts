// ConnStats: per proxy and backend counters from connection records, the duration histogram and
// its percentiles (interpolated within buckets, as Prometheus' histogram_quantile), recent closes.
import { describe, expect, it } from 'vitest';
import { ConnStats, LATENCY_BUCKETS, quantile, summarize } from '../../../src/observe/conn-stats.js';
import type { ConnRecord } from '../../../src/observe/events/event-hub.js';
import { batchOf } from '../../lib/conn-batch.js';

function rec(type: 'open' | 'close', backend: string, durationSec = 0, port = 1): ConnRecord {
  return {
    type, tsNs: 0n, openNs: 0n, client: '172.16.0.1', clientPort: port, vip: '10.100.0.1', vipPort: 80, backend, backendPort: 8080, proto: 6,
    listenerId: 0, targetId: 0, reason: type === 'close' ? 'fin' : '', packetsIn: 2n, bytesIn: 100n, packetsOut: 3n, bytesOut: 1000n,
    proxy: 'web', listener: null, timeMs: 0, openMs: 0, durationSec,
  };
}

describe('ConnStats', () => {
  it('counts opens, closes, active and bytes per proxy and backend', () => {
    const s = new ConnStats();
    s.add(batchOf([rec('open', '10.0.0.1'), rec('open', '10.0.0.1'), rec('open', '10.0.0.2'), rec('close', '10.0.0.1', 0.02)]));
    expect(s.backends().map((b) => [b.backend, b.opened, b.closed, b.active, b.bytesIn, b.bytesOut, b.closeReasons])).toEqual([
      ['10.0.0.1:8080', 2, 1, 1, 100, 1000, { fin: 1 }],
      ['10.0.0.2:8080', 1, 0, 1, 0, 0, {}],
    ]);
    s.setActive(new Map([['web\u000010.0.0.2:8080', 5]]));
    expect(s.backends().map((b) => b.active)).toEqual([0, 5]);
    expect(s.recentCloses().map((c) => c.backend)).toEqual(['10.0.0.1:8080']);
  });

  it('percentiles of 100 durations spread over known buckets', () => {
    const s = new ConnStats();
    // 50 at 3 ms (bucket 2.5-5 ms), 45 at 40 ms (25-50 ms), 5 at 2 s (1-2.5 s).
    s.add(batchOf([...Array(50).fill(0.003), ...Array(45).fill(0.04), ...Array(5).fill(2)].map((d, i) => rec('close', '10.0.0.1', d, i))));
    const sum = summarize(s.backends()[0]!);
    expect(sum.count).toBe(100);
    expect(sum.mean).toBeCloseTo((50 * 0.003 + 45 * 0.04 + 5 * 2) / 100, 6);
    expect(sum.p50).toBeCloseTo(0.005, 6); // the 50th of 100 is the last of the first bucket: its upper bound
    expect(sum.p95).toBeCloseTo(0.05, 6);
    expect(sum.p99!).toBeGreaterThan(1);
    expect(sum.p99!).toBeLessThanOrEqual(2.5);
  });

  it('quantile of an empty histogram is null; beyond the last bound it is the last bound', () => {
    expect(quantile(0.5, new Array(LATENCY_BUCKETS.length + 1).fill(0))).toBeNull();
    const over = new Array(LATENCY_BUCKETS.length + 1).fill(0);
    over[LATENCY_BUCKETS.length] = 3;
    expect(quantile(0.5, over)).toBe(LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1]);
  });
});
