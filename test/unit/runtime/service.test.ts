// RuntimeService: the shell over the runtime services, with a fake data plane, probe and resolver.
// What it hands the reconciler (inputs, fingerprint), when it asks for a reconcile, how the
// breaker is fed from counter deltas, least-connections, drains (kept in a file), manual circuits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compileConfig } from '../../../src/core/compile/compile.js';
import { isLbError } from '../../../src/core/errors.js';
import type { ProbeTarget } from '../../../src/runtime/health/checkers.js';
import type { BackendCounters, RuntimeSample, RuntimeSampleRequest, RuntimeSampler } from '../../../src/runtime/dataplane-sampler.js';
import { RECOMPUTE_SETTLE_MS, RuntimeService } from '../../../src/runtime/service.js';
import { config } from './helpers.js';

const text = (extra = '', settings = ''): string => `proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 100}
      - {ip: 10.0.0.2, port: 8080, weight: 100}
    source-routes:
      - {source: 192.168.0.0/16, target: {ip: 10.0.0.1, port: 8080, weight: 100}}
${extra}settings:
  drain-check-interval-ms: 100
${settings}`;

class FakeSampler implements RuntimeSampler {
  counters = new Map<string, BackendCounters>();
  active = new Map<string, number>();
  unanswered = new Map<string, number>();
  requests: RuntimeSampleRequest[] = [];
  sample(req: RuntimeSampleRequest): RuntimeSample {
    this.requests.push(req);
    const out: RuntimeSample = { counters: new Map(this.counters), active: req.flows ? new Map(this.active) : null, unanswered: new Map(this.unanswered) };
    this.unanswered.clear();
    return out;
  }
  activeFlows(): Map<string, number> {
    return new Map(this.active);
  }
  add(backend: string, targetId: number, newFlows: number, failed: number): void {
    const c = this.counters.get(backend) ?? { targetId, newFlows: 0n, failedConns: 0n };
    this.counters.set(backend, { targetId, newFlows: c.newFlows + BigInt(newFlows), failedConns: c.failedConns + BigInt(failed) });
  }
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, RECOMPUTE_SETTLE_MS + 20));
const IDS = new Map([['10.0.0.1:8080', 0], ['10.0.0.2:8080', 1]]);

function setup(o: { sampler?: FakeSampler; down?: Set<string>; dir?: string; resolve4?: (h: string) => Promise<string[]> } = {}) {
  const triggers: string[] = [];
  const down = o.down ?? new Set<string>();
  let now = 1_000_000;
  const svc = new RuntimeService({
    instance: 'unit', sampler: o.sampler ?? null, drainFile: o.dir ? join(o.dir, 'drains.json') : null,
    probe: async (t: ProbeTarget) => (down.has(t.addr) ? { ok: false, latencyMs: 1, error: 'ECONNREFUSED' } : { ok: true, latencyMs: 1 }),
    resolve4: o.resolve4 ?? (async () => []), now: () => now,
  });
  svc.bind({ trigger: (d) => triggers.push(d), targetIds: () => IDS });
  const weights = (): Record<string, number[]> => {
    const { inputs } = svc.snapshot();
    const st = compileConfig(svc['config']!, inputs).state;
    const out: Record<string, number[]> = {};
    for (const l of st.listeners) {
      out.default = l.defaultTargets.map((t) => t.weight);
      for (const r of l.sourceRoutes) out[r.prefix] = r.targets.map((t) => t.weight);
    }
    return out;
  };
  return { svc, triggers, down, weights, advance: (ms: number) => { now += ms; } };
}

describe('RuntimeService', () => {
  const services: RuntimeService[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.stop()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const track = <T extends { svc: RuntimeService }>(x: T): T => { services.push(x.svc); return x; };

  it('before a config: no inputs, fingerprint "none"; with one: the config\'s weights and a stable fingerprint', () => {
    const { svc, weights } = track(setup());
    expect(svc.snapshot()).toEqual({ inputs: {}, fingerprint: 'none' });
    expect(svc.status()).toBeNull();
    svc.configure(config(text()));
    const a = svc.snapshot();
    expect(a.fingerprint).not.toBe('none');
    expect(svc.snapshot().fingerprint).toBe(a.fingerprint);
    expect(weights()).toEqual({ default: [100, 100], '192.168.0.0/16': [100] });
  });

  it('status() is built once while nothing it reads moves: a drain, a check or 5 s of the clock builds it again', async () => {
    const { svc, advance } = track(setup());
    svc.configure(config(text('    health-check: {type: tcp, interval-ms: 1000, timeout-ms: 500, unhealthy-threshold: 1, healthy-threshold: 1}\n')));
    const first = svc.status()!;
    expect(svc.status()).toBe(first);
    svc.drain('web', '10.0.0.2:8080');
    const drained = svc.status()!;
    expect(drained).not.toBe(first);
    expect(drained.targets.find((t) => t.targetId === '10.0.0.2:8080')).toMatchObject({ draining: true });
    expect(svc.status()).toBe(drained);
    await svc.health.checkNow();
    const checked = svc.status()!;
    expect(checked).not.toBe(drained);
    expect(checked.targets[0]!.backends[0]).toMatchObject({ health: 'healthy', lastLatencyMs: 1 });
    const fingerprint = svc.fingerprint();
    expect(svc.snapshot().fingerprint).toBe(fingerprint);
    advance(4999);
    expect(svc.status()).toBe(checked);
    advance(1);
    expect(svc.status()).not.toBe(checked);
  });

  it('configureYielding(), snapshotYielding() and statusYielding() pause between slices of a large config and hand in what configure(), snapshot() and status() would', async () => {
    const proxies = Array.from({ length: 2500 }, (_, i) => `  - name: p${i}
    listen: {interfaces: [eth0], port: ${1 + i}}
    default-target:
      - {ip: 10.0.${Math.floor(i / 250)}.${1 + (i % 250)}, port: 8080, weight: 100}
      - {ip: 10.1.${Math.floor(i / 250)}.${1 + (i % 250)}, port: 8080, weight: 50}
`).join('');
    const cfg = config(`proxies:\n${proxies}`);
    const whole = track(setup());
    whole.svc.configure(cfg);
    const sliced = track(setup());
    let pauses = 0;
    const pause = async (): Promise<void> => { pauses++; };
    await sliced.svc.configureYielding(cfg, 'r1', pause);
    expect(pauses, 'pauses between the walks of configure').toBe(3);
    // How often the builds pause depends on the time they take (slices.ts; test/unit/runtime/slices.test.ts).
    const snap = await sliced.svc.snapshotYielding(pause);
    expect(snap.fingerprint).toBe(whole.svc.snapshot().fingerprint);
    const t = cfg.proxies[7]!.defaultTarget.targets[1]!;
    expect(snap.inputs.effectiveWeight!('p7', 'default', t)).toBe(50);
    // The build is kept: snapshot() hands in the same inputs without building them again.
    expect(sliced.svc.snapshot().inputs.effectiveWeight).toBe(snap.inputs.effectiveWeight);
    const status = await sliced.svc.statusYielding(pause);
    expect(status).toEqual(whole.svc.status());
    expect(sliced.svc.status(), 'status() finds the sliced build').toBe(status);
    expect(sliced.svc.statusKey(), 'the status key made in slices').toBe(whole.svc.statusKey());
  });

  it('statusYielding({stale}) answers with the status built last when only its 5 s ran out, and builds the next one meanwhile', async () => {
    const { svc, advance } = track(setup());
    svc.configure(config(text()));
    const pause = async (): Promise<void> => {};
    const first = (await svc.statusYielding(pause))!;
    expect(await svc.statusYielding(pause, { stale: true })).toBe(first);
    advance(5000);
    expect(await svc.statusYielding(pause, { stale: true }), 'only the clock moved: the last status at once').toBe(first);
    const next = (await svc.statusYielding(pause))!;
    expect(next, 'without stale: the status built since').not.toBe(first);
    expect(svc.status()).toBe(next);
    // Inputs that moved are never answered stale.
    svc.drain('web', '10.0.0.2:8080');
    const drained = (await svc.statusYielding(pause, { stale: true }))!;
    expect(drained.targets.find((t) => t.targetId === '10.0.0.2:8080')).toMatchObject({ draining: true });
  });

  it('statusYielding({previous}) (a run in progress) answers with the status built last though its inputs moved; the build goes on for the next asker', async () => {
    const { svc } = track(setup());
    svc.configure(config(text()));
    const pause = async (): Promise<void> => {};
    expect(await svc.statusYielding(pause, { previous: true }), 'nothing built yet: built now').not.toBeNull();
    const first = (await svc.statusYielding(pause))!;
    svc.drain('web', '10.0.0.2:8080');
    expect(await svc.statusYielding(pause, { stale: true, previous: true }), 'moved, but a run is in progress: the last status').toBe(first);
    const next = (await svc.statusYielding(pause))!;
    expect(next.targets.find((t) => t.targetId === '10.0.0.2:8080')).toMatchObject({ draining: true });
    expect(await svc.statusYielding(pause, { previous: true }), 'built since: that one').toBe(next);
  });

  it('a health transition reweights every group and asks for one reconcile; the same answers ask for none', async () => {
    const { svc, triggers, down, weights } = track(setup());
    svc.configure(config(text('    health-check: {type: tcp, interval-ms: 1000, timeout-ms: 500, unhealthy-threshold: 1, healthy-threshold: 1}\n')));
    await svc.health.checkNow();
    await settle();
    svc.snapshot();
    triggers.length = 0;
    down.add('10.0.0.1');
    await svc.health.checkNow();
    await settle();
    expect(triggers).toHaveLength(1);
    expect(triggers[0]).toMatch(/^runtime: health 10\.0\.0\.1:8080 healthy -> unhealthy/);
    // The source route's only target is down: its group fails open (docs/runtime.md).
    expect(weights()).toEqual({ default: [0, 100], '192.168.0.0/16': [100] });
    await svc.health.checkNow();
    await settle();
    expect(triggers).toHaveLength(1);
    const st = svc.status()!;
    expect(st.targets.filter((t) => t.targetId === '10.0.0.1:8080').map((t) => [t.group, t.effectiveWeight, t.failOpen])).toEqual([['default', 0, false], ['192.168.0.0/16', 100, true]]);
  });

  it('feeds the breaker with counter deltas (new flows, failed connections + unanswered attempts) and reweights on a transition', async () => {
    const sampler = new FakeSampler();
    const { svc, triggers, weights, advance } = track(setup({ sampler }));
    svc.configure(config(text('', '  circuit-breaker: {enabled: true, error-threshold-pct: 60, min-requests: 4, open-duration-ms: 1000, half-open-requests: 2}\n')));
    svc.snapshot();
    sampler.add('10.0.0.2:8080', 1, 1000, 0); // before the daemon: the baseline, not a sample
    svc.sampleNow();
    expect(svc.status()!.circuits.find((c) => c.backend === '10.0.0.2:8080')).toMatchObject({ status: 'closed', attempts: 0 });
    advance(200);
    sampler.add('10.0.0.2:8080', 1, 4, 1);
    sampler.unanswered.set('10.0.0.2:8080', 1);
    svc.sampleNow();
    expect(sampler.requests.at(-1)).toMatchObject({ flows: true, targetIds: IDS });
    expect(svc.status()!.circuits.find((c) => c.backend === '10.0.0.2:8080')).toMatchObject({ status: 'closed', attempts: 4, failures: 2 });
    advance(200);
    sampler.add('10.0.0.2:8080', 1, 2, 2);
    svc.sampleNow();
    await settle();
    expect(svc.status()!.circuits.find((c) => c.backend === '10.0.0.2:8080')).toMatchObject({ status: 'open' });
    expect(triggers).toEqual([expect.stringMatching(/^runtime: circuit 10\.0\.0\.2:8080 closed -> open/)]);
    expect(weights().default).toEqual([100, 0]);
    advance(1000);
    svc.sampleNow(); // no traffic: the clock still moves it to half-open
    expect(weights().default).toEqual([100, 10]);
    advance(200);
    sampler.add('10.0.0.2:8080', 1, 2, 0);
    svc.sampleNow();
    expect(weights().default).toEqual([100, 100]);
    // A new lb_tstats slot is a new series: no delta across it.
    sampler.counters.set('10.0.0.2:8080', { targetId: 7, newFlows: 0n, failedConns: 0n });
    advance(200);
    svc.sampleNow();
    expect(svc.status()!.circuits.find((c) => c.backend === '10.0.0.2:8080')).toMatchObject({ status: 'closed', attempts: 0, failures: 0 });
  });

  it('least-connections: active flows from the data plane reweight at each sample', async () => {
    const sampler = new FakeSampler();
    const { svc, triggers, weights } = track(setup({ sampler }));
    svc.configure(config(text('', '  load-balancing: {algorithm: least-connections, update-interval-ms: 200}\n')));
    svc.snapshot();
    sampler.active.set('10.0.0.1:8080', 19);
    svc.sampleNow();
    await settle();
    expect(triggers).toEqual(['runtime: least-connections']);
    expect(weights().default).toEqual([50, 1000]);
    expect(svc.metricsInput()!.activeFlows).toEqual(new Map([['10.0.0.1:8080', 19]]));
    const key = svc.statusKey();
    sampler.active.set('10.0.0.1:8080', 3);
    svc.sampleNow();
    expect(svc.statusKey()).toBe(key); // counts and weights are not worth a status commit
  });

  it('drains: weight 0 in every group of the proxy, drained at 0 active flows, kept in a file for the next daemon', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lb-runtime-svc-'));
    dirs.push(dir);
    const sampler = new FakeSampler();
    sampler.active.set('10.0.0.1:8080', 2);
    const { svc, triggers, weights } = track(setup({ sampler, dir }));
    const cfg = config(text());
    svc.configure(cfg);
    svc.snapshot();
    expect(svc.drain('web', '10.0.0.1:8080', { timeoutMs: 60_000 })).toMatchObject({ status: 'draining' });
    await settle();
    expect(triggers).toEqual([expect.stringMatching(/^runtime: drain web 10\.0\.0\.1:8080 started/)]);
    expect(weights()).toEqual({ default: [0, 100], '192.168.0.0/16': [0] });
    expect(svc.drainState('web', '10.0.0.1:8080')).toMatchObject({ status: 'draining', activeFlows: 2 });
    sampler.active.clear();
    expect(await svc.whenDrained('web', '10.0.0.1:8080')).toMatchObject({ status: 'drained', activeFlows: 0 });
    expect(() => svc.drain('web', '10.9.9.9:80')).toThrow(/proxy "web" has no target "10\.9\.9\.9:80"/);

    const next = track(setup({ dir }));
    next.svc.configure(cfg);
    expect(next.svc.status()!.drains).toMatchObject([{ proxy: 'web', targetId: '10.0.0.1:8080', status: 'drained' }]);
    expect(next.weights().default).toEqual([0, 100]);
    expect(next.svc.undrain('web', '10.0.0.1:8080')).toMatchObject({ status: 'drained' });
    expect(next.svc.undrain('web', '10.0.0.1:8080')).toBeUndefined();
    expect(next.weights().default).toEqual([100, 100]);
  });

  it('manual circuits: a backend or a DNS target by name; unknown names and a disabled breaker refused', async () => {
    const { svc, weights } = track(setup({ resolve4: async () => ['10.0.1.1', '10.0.1.2'] }));
    svc.configure(config(text('', '  circuit-breaker: {enabled: true}\n').replace('      - {ip: 10.0.0.2, port: 8080, weight: 100}', '      - {host: api.test, port: 8080, weight: 100}')));
    await svc.dns.refresh();
    expect(svc.breaker('open', '10.0.0.1:8080').backends).toMatchObject([{ backend: '10.0.0.1:8080', state: { status: 'open', mode: 'forced-open' } }]);
    expect(weights().default).toEqual([0, 50, 50]);
    expect(svc.breaker('open', 'api.test:8080').backends.map((b) => b.backend)).toEqual(['10.0.1.1:8080', '10.0.1.2:8080']);
    expect(weights().default).toEqual([100, 50, 50]); // every target down: the group fails open
    expect(svc.breaker('reset', '10.0.0.1:8080').transitions).toMatchObject([{ from: 'open', to: 'closed', reason: 'reset' }]);
    let err: unknown;
    try { svc.breaker('open', '10.0.0.9:8080'); } catch (e) { err = e; }
    expect(isLbError(err, 'LB_RUNTIME_UNKNOWN_TARGET')).toBe(true);
    svc.configure(config(text()));
    expect(() => svc.breaker('open', '10.0.0.1:8080')).toThrow(/circuit breaker is disabled/);
  });
});
