// The reconcile loop's decisions, against a fake source and a fake kernel engine (the real engine
// is exercised by test/e2e/daemon-*.test.ts): steps and dispositions, the unchanged no-op,
// Stalled revisions not retried, backoff, single flight, webhook settling, runtime inputs, drift.
// Time is a FakeClock moved by hand: retries and settle windows fire when the test says, not after sleeps.
import { afterAll, describe, expect, it } from 'vitest';
import { encodeGeneration } from '../../../src/dataplane/index.js';
import { DEFAULT_SETTLE_MS, Reconciler, type ReconcileMetricsSink, type RuntimeProvider } from '../../../src/reconcile/index.js';
import type { StatusReport } from '../../../src/report/types.js';
import { SourceError } from '../../../src/source/disposition.js';
import { LbError } from '../../../src/core/errors.js';
import { FakeClock, until } from './fake-clock.js';
import { config, FakeEngine, FakeSource, liveOf, removeRevisions, revision } from './fakes.js';

afterAll(removeRevisions);

class Metrics implements ReconcileMetricsSink {
  results: string[] = [];
  triggers?: ReconcileMetricsSink['triggers'];
  revision: string | null = null;
  drift = 0;
  reconcile(result: string): void { this.results.push(result); }
  appliedRevision(r: string | null): void { this.revision = r; }
  driftDetected(): void { this.drift += 1; }
}

function setup(opts: { selfHeal?: boolean; runtime?: RuntimeProvider; settleMs?: Record<string, number>; retryMs?: number } = {}) {
  const source = new FakeSource();
  const engine = new FakeEngine();
  const metrics = new Metrics();
  const reports: StatusReport[] = [];
  const significant: boolean[] = [];
  const clock = new FakeClock();
  const settle: Record<string, number> = opts.settleMs ?? DEFAULT_SETTLE_MS;
  const r = new Reconciler({
    clock,
    instance: 'unit', node: 'n1', source, sourceInfo: { kind: 'git', url: 'http://x/repo.git', ref: 'main', path: '' },
    engine, metrics, onReport: (x, sig) => { reports.push(x); significant.push(sig); }, retry: { initialMs: opts.retryMs ?? 20, maxMs: 2000, jitter: 0 },
    ...(opts.selfHeal !== undefined ? { selfHeal: opts.selfHeal } : {}),
    ...(opts.runtime ? { runtime: opts.runtime } : {}),
    ...(opts.settleMs ? { settleMs: opts.settleMs } : {}),
  });
  /** One trigger of `kind`, its settle window closed, and the run it made. */
  const run = async (kind: Parameters<Reconciler['trigger']>[0] = 'poll'): Promise<void> => {
    r.trigger(kind);
    clock.advance(settle[kind] ?? 0);
    await r.whenIdle();
  };
  /** Fires the pending retry and waits for its run; false when no retry was pending. */
  const retry = async (): Promise<boolean> => {
    if (!clock.runNext()) return false;
    await r.whenIdle();
    return true;
  };
  return { source, engine, metrics, reports, significant, r, run, retry, clock };
}

const cond = (rep: StatusReport, type: string) => rep.conditions.find((c) => c.type === type);

describe('Reconciler', () => {
  it('applies a revision, then treats the same revision as an explicit no-op', async () => {
    const { source, engine, metrics, r, run } = setup();
    expect(r.readiness()).toEqual({ ready: false, reason: 'the first reconcile has not completed' });
    source.current = revision(config([1, 1]));
    await run('startup');
    expect(metrics.results).toEqual(['applied']);
    expect(engine.applies).toHaveLength(1);
    const rep = r.report();
    expect(rep).toMatchObject({ result: 'applied', lastAppliedRevision: source.current.revision, lastAttemptedRevision: source.current.revision, plan: { add: 5, change: 0, destroy: 0 } });
    expect(cond(rep, 'Ready')).toMatchObject({ status: 'True', reason: 'ReconciliationSucceeded' });
    expect(cond(rep, 'Reconciling')).toBeUndefined();
    expect(metrics.revision).toBe(source.current.revision);
    expect(r.readiness().ready).toBe(true);

    await run('poll');
    expect(metrics.results).toEqual(['applied', 'unchanged']);
    expect(engine.applies).toHaveLength(1);
    expect(r.lastOutcome).toMatchObject({ result: 'unchanged', because: 'applied' });
  });

  it('a revision whose plan is empty is a noop (an adopted data plane)', async () => {
    const { source, engine, metrics, run } = setup();
    source.current = revision(config([2, 1]));
    await run();
    // A second reconciler (a restarted daemon) over the same live state.
    const again = new Reconciler({ instance: 'unit', node: 'n1', source, sourceInfo: { kind: 'git', url: 'u', ref: 'main', path: '' }, engine, metrics });
    again.trigger('startup');
    await again.whenIdle();
    expect(metrics.results).toEqual(['applied', 'noop']);
    expect(again.report()).toMatchObject({ result: 'unchanged', plan: { add: 0, change: 0, destroy: 0 } });
    expect(again.readiness().ready).toBe(true);
  });

  it('a revision that fails validation is Stalled with positions, not retried, and the next revision applies', async () => {
    const { source, engine, metrics, r, run } = setup();
    const good = revision(config([1, 1]));
    source.current = good;
    await run();
    const bad = revision(config([1, 1]).replace('port: 80', 'port: eighty'));
    source.current = bad;
    await run();
    let rep = r.report();
    expect(rep.result).toBe('stalled');
    expect(rep.lastAppliedRevision).toBe(good.revision);
    expect(rep.lastAttemptedRevision).toBe(bad.revision);
    expect(rep.errors[0]).toMatchObject({ code: 'LB_CONFIG_SCHEMA', file: 'lb.yaml', line: 3, pointer: '/proxies/0/listen/port' });
    expect(rep.errors[0]!.column).toBeGreaterThan(0);
    expect(cond(rep, 'Stalled')).toMatchObject({ status: 'True', reason: 'ConfigInvalid' });
    expect(cond(rep, 'Ready')).toMatchObject({ status: 'False', reason: 'ConfigInvalid' });
    expect(cond(rep, 'Ready')!.message).toMatch(/stays live/);
    expect(r.acceptsPoll()).toBe(true); // no retry timer for a stall
    expect(r.readiness().ready).toBe(true); // the previous revision still serves

    const fetches = source.fetches;
    await run('poll');
    await run('webhook');
    expect(source.fetches).toBe(fetches + 2);
    expect(metrics.results.slice(-2)).toEqual(['unchanged', 'unchanged']);
    expect(engine.applies).toHaveLength(1);

    source.current = revision(config([3, 1]));
    await run();
    rep = r.report();
    expect(rep.result).toBe('applied');
    expect(rep.errors).toEqual([]);
    expect(cond(rep, 'Stalled')).toBeUndefined();
    expect(cond(rep, 'Ready')!.status).toBe('True');
  });

  it('transient failures retry with backoff (polls wait), keep the applied revision, then apply', async () => {
    const { source, engine, metrics, r, run, retry, clock } = setup({ retryMs: 150 });
    const first = revision(config([1, 1]));
    source.current = first;
    await run();
    source.current = revision(config([1, 5]));
    const down = () => new SourceError('LB_SOURCE_UNREACHABLE', 'connection refused', { disposition: 'transient', reason: 'RemoteUnreachable' });
    source.failNext = [down(), down(), down()];
    await run('poll');
    expect(metrics.results.at(-1)).toBe('failed');
    const rep = r.report();
    expect(rep).toMatchObject({ result: 'failed', lastAppliedRevision: first.revision });
    expect(cond(rep, 'Ready')).toMatchObject({ status: 'False', reason: 'RemoteUnreachable' });
    expect(cond(rep, 'Reconciling')).toMatchObject({ status: 'True', reason: 'ProgressingWithRetry', message: 'retrying in 150ms (transient)' });
    expect(r.acceptsPoll()).toBe(false);
    clock.advance(149);
    expect(r.acceptsPoll(), 'the backoff holds polls until the retry is due').toBe(false);
    expect(metrics.results).toEqual(['applied', 'failed']);
    // Retries after 150, 300, 600 ms (no jitter): three failures, then the apply.
    for (let i = 0; i < 10 && r.report().result !== 'applied'; i++) expect(await retry()).toBe(true);
    expect(clock.fired).toEqual([150, 300, 600]);
    expect(metrics.results).toEqual(['applied', 'failed', 'failed', 'failed', 'applied']);
    expect(r.report().lastAppliedRevision).toBe(source.current.revision);
    expect(engine.applies).toHaveLength(2);
    expect(r.acceptsPoll()).toBe(true);
    expect(clock.pending, 'no retry left after the apply').toBe(0);
  });

  it('an apply that fails is transient; a held lock waits; the verify step catches a data plane that did not take the change', async () => {
    const { source, engine, r, run } = setup();
    source.current = revision(config([1, 1]));
    engine.applyError = new LbError('LB_APPLY_FAILED', 'apply failed while flipping lb_ctl; rolled back', {});
    await run();
    expect(r.lastOutcome).toMatchObject({ result: 'failed', failure: { step: 'apply', reason: 'ApplyFailed', disposition: 'transient' } });
    engine.applyError = undefined;
    engine.locked = true;
    await r.stop(); // no retry timers left behind
    const s2 = setup();
    s2.source.current = source.current;
    s2.engine.locked = true;
    await s2.run();
    expect(s2.r.lastOutcome).toMatchObject({ result: 'failed', failure: { reason: 'InstanceLocked', disposition: 'waiting', retryAfterMs: 1000 } });
    expect(cond(s2.r.report(), 'Reconciling')!.message).toMatch(/retrying in 1\.0s \(waiting\)/);
    await s2.r.stop();
    const s3 = setup();
    s3.source.current = source.current;
    s3.engine.lieOnApply = true;
    await s3.run();
    expect(s3.r.lastOutcome).toMatchObject({ result: 'failed', failure: { step: 'verify', reason: 'VerificationFailed', code: 'LB_APPLY_VERIFY' } });
    expect(s3.r.readiness().ready).toBe(false);
    await s3.r.stop();
  });

  it('a commit refused by its signature is Stalled at fetch with its revision, and not retried', async () => {
    const { source, metrics, r, run } = setup();
    const sha = 'c'.repeat(40);
    const unsigned = () => new SourceError('LB_SOURCE_SIGNATURE', `commit ${sha} is not signed`, { disposition: 'stalling', reason: 'CommitUnsigned' }, { revision: sha });
    source.failNext = [unsigned(), unsigned()];
    await run();
    expect(r.report()).toMatchObject({ result: 'stalled', lastAttemptedRevision: sha, desiredRevision: sha, lastAppliedRevision: null });
    expect(cond(r.report(), 'Stalled')).toMatchObject({ reason: 'CommitUnsigned' });
    expect(r.readiness()).toMatchObject({ ready: false });
    expect(r.readiness().reason).toMatch(/CommitUnsigned/);
    await run();
    expect(metrics.results).toEqual(['stalled', 'unchanged']);
  });

  it('a refusal before any revision (bad credentials) stalls once; the same refusal again is unchanged; repeated retries are not significant for the status branch', async () => {
    const { source, metrics, significant, r, run, retry } = setup();
    const auth = () => new SourceError('LB_SOURCE_AUTH', 'the remote refused the credentials (401)', { disposition: 'stalling', reason: 'AuthenticationFailed' });
    source.failNext = [auth(), auth()];
    await run();
    await run();
    expect(metrics.results).toEqual(['stalled', 'unchanged']);
    expect(r.report()).toMatchObject({ result: 'stalled', lastAttemptedRevision: null });
    expect(significant).toEqual([true]);
    // Transient failures: the first report is significant, the retries' reports only move times and messages.
    const down = () => new SourceError('LB_SOURCE_UNREACHABLE', 'connection refused', { disposition: 'transient', reason: 'RemoteUnreachable' });
    source.failNext = [down(), down(), down()];
    source.current = revision(config([1, 1]));
    await run('poll');
    for (let i = 0; i < 10 && r.report().result !== 'applied'; i++) expect(await retry()).toBe(true);
    expect(metrics.results).toEqual(['stalled', 'unchanged', 'failed', 'failed', 'failed', 'applied']);
    expect(significant).toEqual([true, true, false, false, true]);
  });

  it('single flight: 200 triggers during a run make at most one more run', async () => {
    const { source, metrics, r } = setup();
    source.current = revision(config([1, 1]));
    let open!: () => void;
    source.gate = new Promise((res) => { open = res; });
    r.trigger('startup');
    await until(() => source.fetches === 1, 'the first fetch');
    for (let i = 0; i < 200; i++) r.trigger('poll', String(i));
    open();
    await r.whenIdle();
    expect(metrics.results).toEqual(['applied', 'unchanged']);
  });

  it('a burst of webhooks settles into one run', async () => {
    const { source, metrics, r, clock } = setup({ settleMs: { webhook: 300 } });
    source.current = revision(config([1, 1]));
    for (let i = 0; i < 20; i++) {
      r.trigger('webhook', `d${i}`);
      await new Promise((res) => setImmediate(res)); // each in its own turn of the event loop
      clock.advance(10);
    }
    expect(r.idle, 'the window is still open').toBe(false);
    expect(source.fetches).toBe(0);
    clock.advance(300 - 200);
    await r.whenIdle();
    expect(source.fetches).toBe(1);
    expect(metrics.results).toEqual(['applied']);
  });

  it('webhooks naming the revision already applied start no run, however long their burst lasts', async () => {
    const { source, metrics, r, clock } = setup({ settleMs: { webhook: 20 } });
    const rev = revision(config([1, 1]));
    source.current = rev;
    let open!: () => void;
    source.gate = new Promise((res) => { open = res; });
    // The first delivery starts a run; more arrive while it fetches (one pending run), and after it
    // ended, across several settle windows.
    r.trigger('webhook', 'd0', rev.revision);
    clock.advance(20);
    await until(() => source.fetches === 1, 'the first fetch');
    for (let i = 1; i < 5; i++) r.trigger('webhook', `d${i}`, rev.revision);
    clock.advance(20);
    open();
    await r.whenIdle();
    for (let i = 5; i < 10; i++) {
      r.trigger('webhook', `d${i}`, rev.revision);
      clock.advance(30);
      await r.whenIdle();
    }
    expect(metrics.results).toEqual(['applied']);
    expect(source.fetches, 'the pending run and the later windows fetched nothing').toBe(1);
    // A delivery without a revision, or naming another one, still runs.
    r.trigger('webhook', 'ping');
    clock.advance(20);
    await r.whenIdle();
    r.trigger('webhook', 'other', 'f'.repeat(40));
    clock.advance(20);
    await r.whenIdle();
    expect(metrics.results).toEqual(['applied', 'unchanged', 'unchanged']);
  });

  it('a drift tick in the same batch as a webhook naming the applied revision checks drift and starts no run', async () => {
    const { source, engine, metrics, r, run } = setup({ settleMs: {} });
    const rev = revision(config([1, 1]));
    source.current = rev;
    await run('webhook');
    const fetches = source.fetches;
    const applied = engine.live;
    engine.live = liveOf(applied.generation, [], applied.state, 9); // programs gone behind our back
    const decided: string[] = [];
    metrics.triggers = (kind, outcome) => { decided.push(`${kind}:${outcome}`); };
    r.trigger('webhook', 'redelivery', rev.revision);
    r.trigger('drift', 'timer'); // the same turn of the event loop: one batch
    await r.whenIdle();
    expect(decided).toEqual(['webhook:skipped', 'drift:run']);
    expect(metrics.results, 'no reconcile').toEqual(['applied']);
    expect(source.fetches).toBe(fetches);
    expect(engine.applies, 'the drift was healed').toHaveLength(2);
    expect(r.report().drift).toMatchObject({ healed: true });
  });

  it('new runtime inputs re-apply an unchanged revision (runtime changes are not drift)', async () => {
    let weight = 1;
    const runtime: RuntimeProvider = {
      snapshot: () => ({ inputs: { effectiveWeight: (_p, _g, t) => (t.kind === 'ip' && t.ip === '10.0.1.1' ? weight : undefined) }, fingerprint: `w=${weight}` }),
    };
    const { source, engine, metrics, r, run } = setup({ runtime });
    source.current = revision(config([5, 5]));
    await run();
    await run();
    expect(metrics.results).toEqual(['applied', 'unchanged']);
    weight = 0;
    await run('manual');
    expect(metrics.results).toEqual(['applied', 'unchanged', 'applied']);
    expect(engine.applies.at(-1)!.desired!.listeners[0]!.defaultTargets.map((t) => t.weight)).toEqual([0, 5]);
    expect((await r.checkDriftNow()).finding).toBeNull();
  });

  it('the runtime learns a new config before the snapshot it compiles with is taken; its status is in the report', async () => {
    // A provider whose answers depend on the config it was told: 0 for the config's first target.
    let known: string[] = [];
    let statusKey = 'a';
    const runtime: RuntimeProvider = {
      configure: (cfg) => { known = cfg.proxies.flatMap((p) => p.defaultTarget.targets.map((t) => t.id)); },
      snapshot: () => ({ inputs: { effectiveWeight: (_p, _g, t) => (t.id === known[0] ? 0 : undefined) }, fingerprint: known.join() }),
      status: () => ({ algorithm: 'weighted-random', targets: [], drains: [], circuits: [], dns: [] }),
      statusKey: () => statusKey,
    };
    const { source, engine, reports, significant, r, run } = setup({ runtime });
    source.current = revision(config([5, 5]));
    await run();
    expect(engine.applies.at(-1)!.desired!.listeners[0]!.defaultTargets.map((t) => t.weight)).toEqual([0, 5]);
    expect(r.appliedState!.runtimeFingerprint).toBe('10.0.1.1:8080,10.0.1.2:8080');
    expect(r.report().runtime).toMatchObject({ algorithm: 'weighted-random' });
    // A runtime change without a reconcile: publishReport(), significant only when its key moved.
    const n = reports.length;
    r.publishReport();
    statusKey = 'b';
    r.publishReport();
    expect(significant.slice(n)).toEqual([false, true]);
  });

  it('drift is detected, counted once, and healed by re-applying the last applied state', async () => {
    const { source, engine, metrics, r, run } = setup();
    source.current = revision(config([1, 1]));
    await run();
    const applied = engine.live;
    const tampered = structuredClone(applied.generation);
    tampered.groups[0]!.group.targets[0]!.weight = 9;
    engine.live = { ...applied, raw: encodeGeneration(0, tampered), generation: tampered };
    const check = await r.checkDriftNow();
    expect(check.finding).toMatchObject({ entries: 1 });
    expect(check.healed).toBe(true);
    expect(metrics.drift).toBe(1);
    expect(engine.applies).toHaveLength(2);
    expect(engine.live.raw).toEqual(applied.raw);
    const rep = r.report();
    expect(rep.drift).toMatchObject({ entries: 1, healed: true });
    expect(cond(rep, 'Ready')).toMatchObject({ status: 'True', reason: 'DriftCorrected' });
    expect((await r.checkDriftNow()).finding).toBeNull();
    expect(metrics.results).toEqual(['applied']); // drift checks are not reconciles
  });

  it('a heal failing the same way twice is Stalled; the drift timer then backs off, a link event still heals at once', async () => {
    const { source, engine, r, run } = setup();
    source.current = revision(config([1, 1]));
    await run();
    const applied = engine.live;
    engine.live = liveOf(applied.generation, [], applied.state, 9); // programs gone behind our back
    engine.applyError = new LbError('LB_APPLY_FAILED', 'apply to instance unit failed while attaching interfaces: no interface named lo', {});
    let attempts = 0;
    const apply = engine.apply.bind(engine);
    engine.apply = (req) => { attempts += 1; return apply(req); };
    const tick = async (detail: string): Promise<void> => {
      r.trigger('drift', detail);
      await r.whenIdle();
    };
    await tick('timer');
    expect(attempts).toBe(1);
    expect(cond(r.report(), 'Stalled')).toBeUndefined();
    expect(cond(r.report(), 'Ready')).toMatchObject({ status: 'False', reason: 'DriftHealFailed' });
    await tick('timer');
    expect(attempts).toBe(2);
    expect(cond(r.report(), 'Stalled')).toMatchObject({ status: 'True', reason: 'DriftHealFailing' });
    expect(cond(r.report(), 'Stalled')!.message).toMatch(/^healing the drift failed 2 times the same way, at the apply step: .*no interface named lo; the drift timer retries from /);
    await tick('timer');
    await tick('timer');
    expect(attempts, 'timer ticks back off').toBe(2);
    engine.applyError = undefined;
    await tick('link lo');
    expect(attempts, 'a link event heals at once').toBe(3);
    expect(cond(r.report(), 'Stalled')).toBeUndefined();
    expect(cond(r.report(), 'Ready')).toMatchObject({ status: 'True', reason: 'DriftCorrected' });
  });

  it('with self-heal off, drift is only reported (Ready False), and counted once while it lasts', async () => {
    const { source, engine, metrics, r, run } = setup({ selfHeal: false });
    source.current = revision(config([1, 1]));
    await run();
    const applied = engine.live;
    engine.live = liveOf(applied.generation, [], applied.state, 9); // programs detached behind our back
    const c1 = await r.checkDriftNow();
    const c2 = await r.checkDriftNow();
    expect(c1.finding!.differences).toContain("interface lo: lb's programs are not attached");
    expect(c2.healed).toBe(false);
    expect(metrics.drift).toBe(1);
    expect(engine.applies).toHaveLength(1);
    expect(cond(r.report(), 'Ready')).toMatchObject({ status: 'False', reason: 'DriftDetected' });
    engine.live = applied; // someone put it back
    await r.checkDriftNow();
    expect(r.report().drift).toBeNull();
    expect(cond(r.report(), 'Ready')!.status).toBe('True');
  });

  it('a force-pushed branch back to the applied revision reports it live again', async () => {
    const { source, r, run } = setup();
    const a = revision(config([1, 1]));
    source.current = a;
    await run();
    source.current = revision(config([1, 1]).replace('port: 80', 'port: 0'));
    await run();
    expect(r.report().result).toBe('stalled');
    source.current = a;
    await run();
    expect(r.report()).toMatchObject({ result: 'unchanged', lastAttemptedRevision: a.revision, lastAppliedRevision: a.revision, errors: [] });
    expect(cond(r.report(), 'Stalled')).toBeUndefined();
  });
});
