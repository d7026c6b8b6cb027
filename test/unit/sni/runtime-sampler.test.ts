// The acceptor's per-backend load added to the data plane's readings (src/acceptor/runtime-sampler.ts):
// the breaker's samples count its attempts and failed connects, least-connections its open
// connections; a backend only the acceptor reaches gets a series of its own.
import { describe, expect, it } from 'vitest';
import type { BackendLoad } from '../../../src/acceptor/acceptor.js';
import { ACCEPTOR_ONLY_SERIES, addLoad, withAcceptorLoad } from '../../../src/acceptor/runtime-sampler.js';
import { CounterDeltas } from '../../../src/runtime/circuit-breaker.js';
import type { RuntimeSample, RuntimeSampler } from '../../../src/runtime/dataplane-sampler.js';

const TIMEOUTS = { tcpIdleSec: 300, tcpFinSec: 10, udpIdleSec: 60 };
const kernel = (newFlows: bigint, failedConns: bigint, active: number | null): RuntimeSample => ({
  counters: new Map([['10.0.0.1:80', { targetId: 3, newFlows, failedConns }]]),
  active: active === null ? null : new Map([['10.0.0.1:80', active]]),
  unanswered: new Map(),
});

describe('withAcceptorLoad', () => {
  it('adds attempts, failures and open connections to the kernel\'s, per backend', () => {
    const load = new Map<string, BackendLoad>([
      ['10.0.0.1:80', { attempts: 5, failed: 2, active: 1 }],
      ['127.0.0.1:9443', { attempts: 7, failed: 7, active: 0 }],
    ]);
    const s = addLoad(kernel(10n, 1n, 4), load);
    expect(s.counters.get('10.0.0.1:80')).toEqual({ targetId: 3, newFlows: 15n, failedConns: 3n });
    expect(s.counters.get('127.0.0.1:9443')).toEqual({ targetId: ACCEPTOR_ONLY_SERIES, newFlows: 7n, failedConns: 7n });
    expect(s.active).toEqual(new Map([['10.0.0.1:80', 5]]));
    expect(addLoad(kernel(10n, 1n, null), load).active).toBeNull();
  });

  it('the breaker\'s samples see the acceptor\'s failed connects between two readings', () => {
    const load = new Map<string, BackendLoad>([['127.0.0.1:9443', { attempts: 2, failed: 0, active: 2 }]]);
    let k = kernel(0n, 0n, 0);
    const inner: RuntimeSampler = { sample: () => k, activeFlows: () => k.active };
    const sampler = withAcceptorLoad(inner, () => load);
    const req = { targetIds: new Map([['10.0.0.1:80', 3]]), flows: true, timeouts: TIMEOUTS };
    const deltas = new CounterDeltas();
    const backends = ['10.0.0.1:80', '127.0.0.1:9443'];
    deltas.samples(backends, sampler.sample(req));
    load.set('127.0.0.1:9443', { attempts: 12, failed: 9, active: 0 });
    k = kernel(4n, 0n, 1);
    expect(deltas.samples(backends, sampler.sample(req))).toEqual([
      ['10.0.0.1:80', { attempts: 4, failures: 0, lateFailures: 0 }],
      ['127.0.0.1:9443', { attempts: 10, failures: 9, lateFailures: 0 }],
    ]);
    expect(sampler.activeFlows(TIMEOUTS)).toEqual(new Map([['10.0.0.1:80', 1]]));
    expect(withAcceptorLoad(inner, () => undefined).sample(req)).toBe(k);
  });
});
