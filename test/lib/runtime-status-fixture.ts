// A RuntimeStatus as the daemon reports it: an ip target recovering, one drained, a host target
// with two addresses (one circuit forced open), a stale DNS host.

import type { RuntimeStatus } from '../../src/runtime/status.js';

export const GENERATED_AT = '2024-05-01T10:00:00.000Z';

export function sampleRuntimeStatus(): RuntimeStatus {
  const now = Date.parse(GENERATED_AT);
  return {
    algorithm: 'weighted-random',
    targets: [
      { proxy: 'web', group: 'default', targetId: '10.0.0.1:8080', configuredWeight: 100, effectiveWeight: 50, draining: false, failOpen: false,
        backends: [{ backend: '10.0.0.1:8080', health: 'recovering', recoveryStep: 2, lastError: null, lastLatencyMs: 2, circuit: 'closed' }] },
      { proxy: 'web', group: 'default', targetId: '10.0.0.2:8080', configuredWeight: 100, effectiveWeight: 0, draining: true, failOpen: false,
        backends: [{ backend: '10.0.0.2:8080', health: 'unhealthy', recoveryStep: 0, lastError: 'ECONNREFUSED', lastLatencyMs: 1, circuit: 'closed' }] },
      { proxy: 'web', group: 'default', targetId: 'api.test:8080', configuredWeight: 100, effectiveWeight: 50, draining: false, failOpen: false,
        backends: [
          { backend: '10.0.1.1:8080', health: 'unchecked', recoveryStep: 0, lastError: null, lastLatencyMs: null, circuit: 'open' },
          { backend: '10.0.1.2:8080', health: 'unchecked', recoveryStep: 0, lastError: null, lastLatencyMs: null, circuit: 'closed' },
        ] },
    ],
    drains: [{ proxy: 'web', targetId: '10.0.0.2:8080', status: 'draining', startedAt: now - 5000, timeoutMs: 30_000, deadline: now + 25_000, activeFlows: 3, lastCheckedAt: now, finishedAt: null }],
    circuits: [{ backend: '10.0.1.1:8080', status: 'open', mode: 'forced-open', errorRate: 0, attempts: 0, failures: 0, reason: 'forced open', changedAt: now }],
    dns: [{ host: 'api.test', addresses: ['10.0.1.1', '10.0.1.2'], status: 'stale', lastError: 'ESERVFAIL', lastSuccessAt: now - 60_000, lastAttemptAt: now, consecutiveFailures: 2 }],
  };
}
