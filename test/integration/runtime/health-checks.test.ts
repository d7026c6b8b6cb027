// Health checks against real servers on 127.0.0.1: the probes, and the monitor taking a killed
// backend out and ramping it back in.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HealthCheck } from '../../../src/core/config/types.js';
import { buildRuntimeInputs } from '../../../src/runtime/effective-weight.js';
import { httpProbe, runProbe, tcpProbe } from '../../../src/runtime/health/checkers.js';
import { HealthMonitor, type HealthChangeEvent } from '../../../src/runtime/health/monitor.js';
import { healthCheckSpecs } from '../../../src/runtime/health/specs.js';
import { weightKey } from '../../../src/runtime/keys.js';
import { config } from '../../unit/runtime/helpers.js';
import { closedPort, selfSignedCert, startBackend, type TestBackend } from './servers.js';

const httpCheck = (over: Partial<HealthCheck> = {}): HealthCheck => ({
  type: 'http', path: '/health', expectedCodes: [200], intervalMs: 1000, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2, port: null, ...over,
});

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => { for (const f of cleanup.splice(0).reverse()) await f(); });

async function backend(options?: Parameters<typeof startBackend>[0]): Promise<TestBackend> {
  const b = await startBackend(options);
  cleanup.push(() => b.stop());
  return b;
}

describe('probes', () => {
  let tls: { key: string; cert: string };
  beforeAll(() => { tls = selfSignedCert(); });

  it('tcp: a listening port is healthy, a closed one fails with ECONNREFUSED', async () => {
    const b = await backend();
    expect(await tcpProbe('127.0.0.1', b.port, 500)).toMatchObject({ ok: true });
    expect(await tcpProbe('127.0.0.1', await closedPort(), 500)).toMatchObject({ ok: false, error: 'ECONNREFUSED' });
  });

  it('http: compares the status with the expected codes, on the path asked for', async () => {
    const b = await backend();
    const ok = await httpProbe({ addr: '127.0.0.1', port: b.port, check: httpCheck() });
    expect(ok).toMatchObject({ ok: true, statusCode: 200 });
    expect(ok.latencyMs).toBeGreaterThan(0);
    b.healthStatus = 503;
    expect(await httpProbe({ addr: '127.0.0.1', port: b.port, check: httpCheck() }))
      .toMatchObject({ ok: false, statusCode: 503, error: 'status 503 not in [200]' });
    expect(await httpProbe({ addr: '127.0.0.1', port: b.port, check: httpCheck({ expectedCodes: [200, 503] }) })).toMatchObject({ ok: true });
    expect(b.hits).toEqual(['/health', '/health', '/health']);
  });

  it('http: a backend that accepts but never answers fails at the timeout', async () => {
    const b = await backend();
    const r = await httpProbe({ addr: '127.0.0.1', port: b.port, check: httpCheck({ path: '/hang', timeoutMs: 150 }) });
    expect(r).toEqual({ ok: false, latencyMs: 150, error: 'timeout after 150 ms' });
  });

  it('https: a self-signed backend is healthy without verification (the default), and fails with it', async () => {
    const b = await backend({ tls });
    const check = httpCheck({ type: 'https' });
    expect(await runProbe({ addr: '127.0.0.1', port: b.port, check })).toMatchObject({ ok: true, statusCode: 200 });
    const verified = await runProbe({ addr: '127.0.0.1', port: b.port, check, verifyTls: true });
    expect(verified.ok).toBe(false);
    expect(verified.error).toMatch(/SELF_SIGNED|self.signed/i);
  });

  it('http against an https port fails cleanly', async () => {
    const b = await backend({ tls });
    expect((await runProbe({ addr: '127.0.0.1', port: b.port, check: httpCheck({ timeoutMs: 300 }) })).ok).toBe(false);
  });
});

describe('HealthMonitor with a real backend', () => {
  it('kill -> unhealthy after unhealthy-threshold failures -> restart -> 25/50/75% -> healthy, in every weight', async () => {
    const b = await backend();
    const cfg = config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    health-check: {type: http, path: /health, interval-ms: 1000, timeout-ms: 200, healthy-threshold: 2, unhealthy-threshold: 3}
    default-target: [{ip: 127.0.0.1, port: ${b.port}, weight: 100}, {ip: 127.0.0.2, port: 1, weight: 100, health-check: {type: none}}]
    source-routes: [{source: 10.0.0.0/8, targets: [{ip: 127.0.0.1, port: ${b.port}, weight: 40}, {ip: 127.0.0.2, port: 1, weight: 40, health-check: {type: none}}]}]
`);
    // The config's minimum interval is 1 s; the test runs the same checks (same keys) every 60 ms.
    const specs = healthCheckSpecs(cfg, () => undefined).map((s) => ({ ...s, check: { ...s.check, intervalMs: 60 } }));
    expect(specs).toHaveLength(1);
    const monitor = new HealthMonitor({ random: () => 0.5 });
    cleanup.push(() => monitor.stop());
    // The weights the daemon would compile after each change, in both groups.
    const trail: string[] = [];
    const weightsNow = (): string => {
      const built = buildRuntimeInputs({ config: cfg, health: monitor.snapshot() });
      return ['default', '10.0.0.0/8'].map((g) => built.weights.get(weightKey('web', g, `127.0.0.1:${b.port}`))!.weight).join('/');
    };
    monitor.on('change', (e: HealthChangeEvent) => {
      trail.push(`${e.state.status}${e.state.recoveryStep || ''}@${e.state.consecutiveFailures}f ${weightsNow()}`);
    });
    const waitFor = (status: string, ms = 3000): Promise<void> => new Promise((resolve, reject) => {
      const timer = setTimeout(() => { monitor.off('change', on); reject(new Error(`no ${status} within ${ms} ms; trail ${trail.join(', ')}`)); }, ms);
      const on = (e: HealthChangeEvent): void => {
        if (e.state.status !== status) return;
        clearTimeout(timer);
        monitor.off('change', on);
        resolve();
      };
      monitor.on('change', on);
    });

    monitor.setSpecs(specs);
    monitor.start();
    await waitFor('healthy');
    await b.stop();
    await waitFor('unhealthy');
    await b.restart();
    await waitFor('healthy');
    expect(trail).toEqual([
      'healthy@0f 100/40',
      'unhealthy@3f 0/0',
      'recovering1@0f 25/10',
      'recovering2@0f 50/20',
      'recovering3@0f 75/30',
      'healthy@0f 100/40',
    ]);
  });

  it('a /health that turns 503 takes the backend out; 200 brings it back', async () => {
    const b = await backend();
    const check = httpCheck({ intervalMs: 50, timeoutMs: 200, healthyThreshold: 1, unhealthyThreshold: 1 });
    const [spec] = healthCheckSpecs(config(`
proxies: [{name: web, listen: {interfaces: [eth0], port: 80}, default-target: {ip: 127.0.0.1, port: ${b.port}}, health-check: {type: http}}]
`), () => undefined).map((s) => ({ ...s, check }));
    const monitor = new HealthMonitor({ probe: runProbe });
    cleanup.push(() => monitor.stop());
    monitor.setSpecs([spec!]);
    await monitor.checkNow();
    expect(monitor.state(spec!.key)?.status).toBe('healthy');
    b.healthStatus = 503;
    await monitor.checkNow();
    expect(monitor.state(spec!.key)).toMatchObject({ status: 'unhealthy', lastError: 'status 503 not in [200]' });
    b.healthStatus = 200;
    await monitor.checkNow();
    expect(monitor.state(spec!.key)).toMatchObject({ status: 'recovering', recoveryStep: 1 });
  });
});
