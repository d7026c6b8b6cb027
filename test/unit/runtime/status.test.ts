import { describe, expect, it } from 'vitest';
import { CircuitBreakers } from '../../../src/runtime/circuit-breaker.js';
import { startDrain } from '../../../src/runtime/drain.js';
import { buildRuntimeInputs } from '../../../src/runtime/effective-weight.js';
import { configBackends, drainKey } from '../../../src/runtime/keys.js';
import { runtimeStatus } from '../../../src/runtime/status.js';
import { config } from './helpers.js';

const CFG = config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    health-check: {type: tcp, interval-ms: 1000, timeout-ms: 500}
    default-target: [{ip: 10.0.0.1, port: 80, weight: 10}, {host: pool.internal, port: 81, weight: 10}]
settings: {circuit-breaker: {enabled: true, min-requests: 2}}
`);

describe('runtimeStatus', () => {
  it('lists every target with its weights, backends, drain and circuit, JSON-ready', () => {
    const dns = new Map([['pool.internal', ['10.1.0.1', '10.1.0.2']]]);
    expect(configBackends(CFG, (h) => dns.get(h))).toEqual(['10.0.0.1:80', '10.1.0.1:81', '10.1.0.2:81']);
    const cb = new CircuitBreakers(CFG.settings.circuitBreaker);
    cb.observe('10.1.0.2:81', { attempts: 2, failures: 2 }, 1000);
    const drains = new Map([[drainKey('web', '10.0.0.1:80'), startDrain('web', '10.0.0.1:80', 1000, 0)]]);
    const snapshot = { config: CFG, dns, drains, circuits: cb.snapshot() };
    const status = runtimeStatus(snapshot, buildRuntimeInputs(snapshot), 1500);
    expect(status.targets).toEqual([
      {
        proxy: 'web', group: 'default', targetId: '10.0.0.1:80', configuredWeight: 10, effectiveWeight: 0, draining: true, failOpen: false,
        backends: [{ backend: '10.0.0.1:80', health: 'unknown', recoveryStep: 0, lastError: null, lastLatencyMs: null, circuit: 'closed' }],
      },
      {
        proxy: 'web', group: 'default', targetId: 'pool.internal:81', configuredWeight: 10, effectiveWeight: 5, draining: false, failOpen: false,
        backends: [
          { backend: '10.1.0.1:81', health: 'unknown', recoveryStep: 0, lastError: null, lastLatencyMs: null, circuit: 'closed' },
          { backend: '10.1.0.2:81', health: 'unknown', recoveryStep: 0, lastError: null, lastLatencyMs: null, circuit: 'open' },
        ],
      },
    ]);
    expect(status.circuits).toEqual([expect.objectContaining({ backend: '10.1.0.2:81', status: 'open', mode: 'auto' })]);
    expect(status.drains.map((d) => d.targetId)).toEqual(['10.0.0.1:80']);
    expect(JSON.parse(JSON.stringify(status))).toEqual(status);
  });
});
