import { describe, expect, it } from 'vitest';
import { compileSpliceTable } from '../../../src/core/sni/splice-table.js';
import { compileConfig } from '../../../src/core/compile/compile.js';
import { initialCircuitState, type CircuitState } from '../../../src/runtime/circuit-breaker.js';
import { startDrain, type DrainState } from '../../../src/runtime/drain.js';
import { buildRuntimeInputs, effectiveWeights, type EndpointView, type TargetWeightInput } from '../../../src/runtime/effective-weight.js';
import { healthCheckSpecs } from '../../../src/runtime/health/specs.js';
import { initialHealthState, type HealthState } from '../../../src/runtime/health/state.js';
import { drainKey, weightKey } from '../../../src/runtime/keys.js';
import { config } from './helpers.js';

const healthy: EndpointView = { health: { status: 'healthy', recoveryStep: 0 }, circuit: undefined };
const down: EndpointView = { health: { status: 'unhealthy', recoveryStep: 0 }, circuit: undefined };
const rec = (step: number): EndpointView => ({ health: { status: 'recovering', recoveryStep: step }, circuit: undefined });
const circuit = (c: 'open' | 'half-open' | 'closed'): EndpointView => ({ health: null, circuit: c });
const t = (weight: number, endpoints: EndpointView[] = [healthy], extra: Partial<TargetWeightInput> = {}): TargetWeightInput =>
  ({ weight, draining: false, endpoints, activeFlows: 0, ...extra });
const wr = { algorithm: 'weighted-random', weighted: true } as const;
const weights = (ts: TargetWeightInput[], o: Parameters<typeof effectiveWeights>[1] = wr): number[] => effectiveWeights(ts, o).map((w) => w.weight);

describe('effectiveWeights: the rules', () => {
  it('healthy, unchecked and unknown targets keep their configured weight', () => {
    expect(weights([t(50), t(30, [{ health: null, circuit: undefined }]), t(20, [{ health: { status: 'unknown', recoveryStep: 0 }, circuit: undefined }])])).toEqual([50, 30, 20]);
  });

  it('unhealthy -> 0; recovering -> 25/50/75% of the weight', () => {
    expect(weights([t(100), t(100, [down]), t(100, [rec(1)]), t(100, [rec(2)]), t(100, [rec(3)])])).toEqual([100, 0, 25, 50, 75]);
  });

  it('drain -> 0, whatever the health', () => {
    expect(weights([t(100), t(100, [healthy], { draining: true })])).toEqual([100, 0]);
  });

  it('circuit open -> 0, half-open -> ~10% and at least 1', () => {
    expect(weights([t(100), t(100, [circuit('open')]), t(100, [circuit('half-open')]), t(3, [circuit('half-open')]), t(7, [circuit('closed')])]))
      .toEqual([100, 0, 10, 1, 7]);
  });

  it('factors multiply (recovering 50% x half-open 10% of 1000 = 50) and a positive share keeps at least 1', () => {
    expect(weights([t(1000, [{ health: { status: 'recovering', recoveryStep: 2 }, circuit: 'half-open' }]), t(1, [rec(1)])])).toEqual([50, 1]);
  });

  it('weight 0 stays 0', () => {
    expect(weights([t(0), t(10)])).toEqual([0, 10]);
  });

  it('a host target takes the mean share of its addresses', () => {
    expect(weights([t(100, [healthy, down]), t(100, [down, down, rec(2), healthy])])).toEqual([50, 38]);
  });

  it('fails open when every target is down: all non-drained targets get their configured weight back', () => {
    const r = effectiveWeights([t(100, [down]), t(50, [circuit('open')]), t(30, [down], { draining: true }), t(0, [down])], wr);
    expect(r.map((w) => w.weight)).toEqual([100, 50, 0, 0]);
    expect(r.map((w) => w.failOpen)).toEqual([true, true, false, false]);
  });

  it('does not fail open while one target still takes traffic, even at 1', () => {
    expect(weights([t(100, [down]), t(5, [circuit('half-open')])])).toEqual([0, 1]);
  });

  it('a group drained on purpose stays at 0; an all-zero config stays at 0', () => {
    expect(weights([t(100, [down], { draining: true }), t(100, [healthy], { draining: true })])).toEqual([0, 0]);
    expect(weights([t(0, [down]), t(0)])).toEqual([0, 0]);
  });

  it('least-connections rescales the weights by load', () => {
    const lc = { algorithm: 'least-connections', weighted: true } as const;
    expect(weights([t(100, [healthy], { activeFlows: 9 }), t(100, [healthy], { activeFlows: 0 }), t(100, [down], { activeFlows: 0 })], lc)).toEqual([100, 1000, 0]);
    const unweighted = { algorithm: 'least-connections', weighted: false } as const;
    expect(weights([t(500), t(10), t(0)], unweighted)).toEqual([1000, 1000, 0]);
    expect(weights([t(500, [rec(2)]), t(10)], unweighted)).toEqual([500, 1000]);
  });
});

const YAML = `
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    health-check: {type: tcp, interval-ms: 1000, timeout-ms: 500}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 60}
      - {ip: 10.0.0.2, port: 8080, weight: 40}
    source-routes:
      - {source: 192.168.0.0/16, targets: [{ip: 10.0.0.1, port: 8080, weight: 50}, {ip: 10.0.0.3, port: 8080, weight: 50}]}
    sni-routes:
      - {sni-hostname: api.example.com, targets: [{ip: 10.0.0.1, port: 8080, weight: 10}, {ip: 10.0.0.4, port: 8443, weight: 10}]}
  - name: api
    listen: {interfaces: [eth0], port: 81}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 100}
      - {host: pool.internal, port: 9000, weight: 100}
`;

function healthMap(cfg: ReturnType<typeof config>, status: Record<string, HealthState['status']>): Map<string, HealthState> {
  const m = new Map<string, HealthState>();
  for (const spec of healthCheckSpecs(cfg, () => undefined)) {
    const st = status[`${spec.addr}:${spec.targetPort}`];
    if (st) m.set(spec.key, { ...initialHealthState(), status: st });
  }
  return m;
}

describe('buildRuntimeInputs', () => {
  it('reweights a backend in EVERY group it belongs to: default, source route and SNI route', () => {
    const cfg = config(YAML);
    const built = buildRuntimeInputs({ config: cfg, health: healthMap(cfg, { '10.0.0.1:8080': 'unhealthy' }) });
    const w = (proxy: string, group: string, id: string): number | undefined => built.weights.get(weightKey(proxy, group, id))?.weight;
    expect(w('web', 'default', '10.0.0.1:8080')).toBe(0);
    expect(w('web', '192.168.0.0/16', '10.0.0.1:8080')).toBe(0);
    expect(w('web', 'sni:api.example.com', '10.0.0.1:8080')).toBe(0);
    expect(w('web', 'default', '10.0.0.2:8080')).toBe(40);
    // the api proxy has no health check: its own use of the backend is not affected
    expect(w('api', 'default', '10.0.0.1:8080')).toBe(100);

    // web has SNI routes: the acceptor serves it, with the same weights in each of its groups.
    const web = compileSpliceTable(cfg, built).listeners.find((l) => l.proxy === 'web')!;
    const plain = (bs: ReadonlyArray<{ addr: string; port: number; weight: number }>) => bs.map(({ addr, port, weight }) => ({ addr, port, weight }));
    expect(plain(web.defaultBackends)).toEqual([{ addr: '10.0.0.1', port: 8080, weight: 0 }, { addr: '10.0.0.2', port: 8080, weight: 40 }]);
    expect(plain(web.sourceRoutes[0]!.backends)).toEqual([{ addr: '10.0.0.1', port: 8080, weight: 0 }, { addr: '10.0.0.3', port: 8080, weight: 50 }]);
    expect(plain(web.sniRoutes[0]!.backends)[0]).toEqual({ addr: '10.0.0.1', port: 8080, weight: 0 });
  });

  it('applies drain per proxy to all its groups, and an open circuit per backend to every proxy', () => {
    const cfg = config(YAML.replace('settings:', '') + 'settings: {circuit-breaker: {enabled: true}}\n');
    const drains = new Map<string, DrainState>([[drainKey('web', '10.0.0.2:8080'), startDrain('web', '10.0.0.2:8080', 1000, 0)]]);
    const circuits = new Map<string, CircuitState>([['10.0.0.3:8080', { ...initialCircuitState(), status: 'open' }], ['10.0.0.1:8080', { ...initialCircuitState(), status: 'half-open' }]]);
    const built = buildRuntimeInputs({ config: cfg, drains, circuits });
    const w = (proxy: string, group: string, id: string): number | undefined => built.weights.get(weightKey(proxy, group, id))?.weight;
    expect(w('web', 'default', '10.0.0.2:8080')).toBe(0);
    expect(w('web', '192.168.0.0/16', '10.0.0.3:8080')).toBe(0);
    expect(w('web', '192.168.0.0/16', '10.0.0.1:8080')).toBe(5);
    expect(w('api', 'default', '10.0.0.1:8080')).toBe(10);
  });

  it('ignores circuit states while the breaker is disabled', () => {
    const cfg = config(YAML);
    const circuits = new Map<string, CircuitState>([['10.0.0.2:8080', { ...initialCircuitState(), status: 'open' }]]);
    expect(buildRuntimeInputs({ config: cfg, circuits }).weights.get(weightKey('web', 'default', '10.0.0.2:8080'))?.weight).toBe(40);
  });

  it('fails a whole group open when all its backends are down, and says so', () => {
    const cfg = config(YAML);
    const built = buildRuntimeInputs({ config: cfg, health: healthMap(cfg, { '10.0.0.1:8080': 'unhealthy', '10.0.0.3:8080': 'unhealthy' }) });
    const route = built.weights.get(weightKey('web', '192.168.0.0/16', '10.0.0.3:8080'))!;
    expect(route).toMatchObject({ weight: 50, failOpen: true, fraction: 0 });
    expect(built.weights.get(weightKey('web', 'default', '10.0.0.1:8080'))).toMatchObject({ weight: 0, failOpen: false });
  });

  it('DNS targets: answers come from the snapshot, a down address is left out and the weight shrinks', () => {
    const cfg = config(YAML.replace('    default-target:\n      - {ip: 10.0.0.1, port: 8080, weight: 100}\n      - {host: pool.internal, port: 9000, weight: 100}',
      '    health-check: {type: tcp, interval-ms: 1000, timeout-ms: 500}\n    default-target:\n      - {ip: 10.0.0.1, port: 8080, weight: 100}\n      - {host: pool.internal, port: 9000, weight: 100}'));
    const dns = new Map([['pool.internal', ['10.1.0.1', '10.1.0.2']]]);
    const health = new Map<string, HealthState>();
    for (const spec of healthCheckSpecs(cfg, (h) => dns.get(h))) {
      if (spec.addr === '10.1.0.2') health.set(spec.key, { ...initialHealthState(), status: 'unhealthy' });
    }
    const built = buildRuntimeInputs({ config: cfg, dns, health });
    expect(built.resolve('pool.internal')).toEqual(['10.1.0.1']);
    expect(built.resolve('other.internal')).toBeUndefined();
    const { state } = compileConfig(cfg, built);
    const api = state.listeners.find((l) => l.proxy === 'api')!;
    expect(api.defaultTargets).toEqual([{ addr: '10.0.0.1', port: 8080, weight: 100 }, { addr: '10.1.0.1', port: 9000, weight: 50 }]);

    // all addresses down: every address is returned, the target's weight (0) decides
    for (const spec of healthCheckSpecs(cfg, (h) => dns.get(h))) if (spec.host) health.set(spec.key, { ...initialHealthState(), status: 'unhealthy' });
    const allDown = buildRuntimeInputs({ config: cfg, dns, health });
    expect(allDown.resolve('pool.internal')).toEqual(['10.1.0.1', '10.1.0.2']);
    expect(allDown.weights.get(weightKey('api', 'default', 'pool.internal:9000'))?.weight).toBe(0);
  });

  it('least-connections reads active flows per backend (mean per address for a host)', () => {
    const cfg = config(YAML + 'settings: {load-balancing: {algorithm: least-connections}}\n');
    const dns = new Map([['pool.internal', ['10.1.0.1', '10.1.0.2']]]);
    const activeFlows = new Map([['10.0.0.1:8080', 9], ['10.1.0.1:9000', 0], ['10.1.0.2:9000', 0]]);
    const built = buildRuntimeInputs({ config: cfg, dns, activeFlows });
    expect(built.weights.get(weightKey('api', 'default', '10.0.0.1:8080'))?.weight).toBe(100);
    expect(built.weights.get(weightKey('api', 'default', 'pool.internal:9000'))?.weight).toBe(1000);
  });

  it('with nothing known, compiles exactly as without runtime inputs', () => {
    const cfg = config(YAML);
    const dns = new Map([['pool.internal', ['10.1.0.1']]]);
    const plain = compileConfig(cfg, { resolve: (h) => dns.get(h) });
    expect(compileConfig(cfg, buildRuntimeInputs({ config: cfg, dns })).state).toEqual(plain.state);
  });
});
