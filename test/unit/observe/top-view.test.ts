// lb top's view from two status reports: rates over the interval, runtime state per backend, the screen.
import { describe, expect, it } from 'vitest';
import { topText, topView } from '../../../src/cli/top-view.js';
import type { StatusReport } from '../../../src/report/types.js';

const latency = { count: 10, mean: 0.01, p50: 0.008, p95: 0.02, p99: 0.03 };
function report(opened: number, bytes: number): StatusReport {
  return {
    timestamps: { generatedAt: '2026-12-07T00:40:00.000Z', lastAttemptedAt: null, lastAppliedAt: null },
    runtime: {
      algorithm: 'weighted-random', drains: [], circuits: [], dns: [],
      targets: [{
        proxy: 'web', group: 'default', targetId: '10.0.0.1:8080', configuredWeight: 100, effectiveWeight: 0, draining: true, failOpen: false,
        backends: [{ backend: '10.0.0.1:8080', health: 'healthy', recoveryStep: 0, lastError: null, lastLatencyMs: 1, circuit: 'closed' }],
      }],
    },
    traffic: {
      events: { streaming: true, consumed: 5, droppedRing: 0, droppedAccessLog: 0, swept: 0 },
      accessLog: { enabled: false, path: null, format: 'json', written: 0, dropped: 0, rotations: 0 },
      metrics: { enabled: false, address: '0.0.0.0', port: 9090, path: '/metrics', listening: null },
      backends: [{ proxy: 'web', backend: '10.0.0.1:8080', active: 3, opened, closed: opened - 3, bytesIn: bytes, bytesOut: bytes, latency, closeReasons: {} }],
      recentCloses: [{ time: '2026-12-07T00:39:59.500Z', proxy: 'web', client: '172.16.0.1:40000', backend: '10.0.0.1:8080', reason: 'fin', durationSec: 0.012, bytesIn: 100, bytesOut: 2000 }],
    },
  } as unknown as StatusReport;
}

describe('lb top view', () => {
  it('rates from two reports, the runtime state of each backend, the recent closes', () => {
    const v = topView('edge', report(10, 1000), report(30, 3000), 2);
    expect(v.rows).toEqual([{
      proxy: 'web', backend: '10.0.0.1:8080', connPerSec: 10, active: 3, bytesPerSec: 2000, health: 'healthy', circuit: 'closed', draining: true, weight: 0,
      p50: 0.008, p99: 0.03,
    }]);
    const text = topText(v);
    expect(text).toContain('web    10.0.0.1:8080    10.0       3     2.0k  healthy   closed    yes       0  8.00ms  30.0ms');
    expect(text).toContain('00:39:59.500  web  172.16.0.1:40000 -> 10.0.0.1:8080  fin  12.0ms  in 100 out 2.0k');
  });
});
