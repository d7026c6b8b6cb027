// The reconcile loop (docs/design.md §5, after Flux). A run is a linear list of steps
// (run-steps.ts: fetch, validate, compile, plan, apply, verify), then the report: status
// (conditions, revisions, plan, errors), metrics, logs.
//
// Every trigger (poll, webhook, SIGHUP, file change, retry, control socket, drift timer) goes
// through the trigger gate (trigger-gate.ts: bursts settle, triggers naming the applied revision
// start no run) and one TriggerCoalescer: one run at a time, and any number of triggers during a
// run make exactly one more. Drift checks (drift-heal.ts) run through the same gate, so they
// never race an apply.
//
// What a failure does is decided here, from its disposition (failure.ts): stalling marks the
// revision Stalled and does not retry it until the source moves to another revision; transient
// retries with exponential backoff (polls are held back while a retry is pending); waiting retries
// after a fixed delay. The last applied revision stays live through every failure. What the
// status says of it all is the pure reducer's (status-reducer.ts). All time comes from the
// injected clock (clock.ts).

import type { ListenerNameTable } from '../observe/events/listener-names.js';
import type { Readiness } from '../observe/ops-server.js';
import type { StatusReport } from '../report/types.js';
import type { RuntimeStatus } from '../runtime/status.js';
import { Backoff, type BackoffOptions } from '../source/backoff.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { TriggerCoalescer, type Trigger, type TriggerKind } from '../source/triggers.js';
import type { Source } from '../source/types.js';
import { REAL_CLOCK, type Clock, type TimerHandle } from './clock.js';
import { DriftHealer } from './drift-heal.js';
import { yieldToEventLoop } from './transfer.js';
import type { ReconcileEngine } from './engine.js';
import { NO_RUNTIME, type RuntimeProvider } from './runtime.js';
import { failureKey, runSteps, type StalledAttempt } from './run-steps.js';
import { buildReport, readinessOf, revisionLabel, significanceKey } from './status.js';
import { formatMs, initialStatus, reduceStatus, type InitialStatus, type StatusEvent, type StatusState } from './status-reducer.js';
import { DEFAULT_SETTLE_MS, onlyNamesApplied, SettleWindows } from './trigger-gate.js';
import type { AppliedState, DriftCheckResult, ReconcileMetricsSink, ReconcileOutcome } from './types.js';

export { DEFAULT_SETTLE_MS } from './trigger-gate.js';
export type { AppliedState, DriftCheckResult, ReconcileMetricsSink, ReconcileOutcome } from './types.js';

export interface ReconcilerOptions {
  instance: string;
  node: string;
  source: Source & { retain?(revision: string | undefined): void };
  /** The source as the status report names it (URL without credentials). */
  sourceInfo: StatusReport['source'];
  engine: ReconcileEngine;
  runtime?: RuntimeProvider;
  /** Re-apply the last applied state when drift is found (default true). */
  selfHeal?: boolean;
  /** Backoff of transient failures (default 1 s doubling to 5 min, +-20 %). */
  retry?: BackoffOptions;
  /**
   * Per trigger kind, how long to gather a burst before starting a run (default: webhook 250 ms,
   * others 0). GitHub and friends may send several deliveries for one push.
   */
  settleMs?: Partial<Record<TriggerKind, number>>;
  log?: Logger;
  metrics?: ReconcileMetricsSink;
  /**
   * Called with the new report whenever the status changed (the status file). `significant` is
   * false when only times and retry messages moved since the last significant report (the status
   * branch then needs no new commit: a failure repeating every retry does not spam it).
   */
  onReport?: (report: StatusReport, significant: boolean) => void;
  /**
   * The listener names of each generation the loop applied and read back (a reconcile, a heal):
   * the connection events name listeners from them without reading the maps again.
   */
  onNames?: (names: ListenerNameTable) => void;
  /** What the data plane says was applied before this process started (the apply inventory). */
  initial?: InitialStatus;
  version?: string;
  /** Time and timers (default: the real ones). Tests pass a fake clock and move it by hand. */
  clock?: Clock;
}

export class Reconciler {
  readonly instance: string;
  private readonly opts: ReconcilerOptions;
  private readonly log: Logger;
  private readonly runtime: RuntimeProvider;
  private readonly clock: Clock;
  private readonly coalescer: TriggerCoalescer;
  private readonly windows: SettleWindows;
  private readonly backoff: Backoff;
  private readonly healer: DriftHealer;
  private readonly abort = new AbortController();
  private applied: AppliedState | null = null;
  private stalled: StalledAttempt | null = null;
  private publishedKey: string | undefined;
  private lastRef: string | undefined;
  private retryTimer: TimerHandle | undefined;
  private retryAt = 0;
  private forceNext = false;
  private stopped = false;
  private lastOutcomeValue: ReconcileOutcome | undefined;
  private lastDrift: DriftCheckResult | undefined;
  private reconcileCount = 0;
  private st: StatusState;

  constructor(opts: ReconcilerOptions) {
    this.opts = opts;
    this.instance = opts.instance;
    this.log = opts.log ?? silentLogger;
    this.runtime = opts.runtime ?? NO_RUNTIME;
    this.clock = opts.clock ?? REAL_CLOCK;
    this.backoff = new Backoff({ initialMs: 1000, maxMs: 300_000, ...opts.retry });
    this.coalescer = new TriggerCoalescer((triggers) => this.run(triggers), {
      onError: (err) => this.log.error({ component: 'reconcile', ...errFields(err) }, 'reconcile run failed unexpectedly'),
    });
    this.windows = new SettleWindows(this.clock, opts.settleMs ?? DEFAULT_SETTLE_MS,
      (kind, detail, revisions, count) => this.coalescer.trigger(kind, detail, revisions, count));
    const self = this;
    this.healer = new DriftHealer({
      engine: opts.engine, selfHeal: opts.selfHeal ?? true, clock: this.clock, log: this.log, metrics: opts.metrics,
      port: { get status() { return self.st; }, dispatch: (e) => this.dispatch(e), publish: () => this.publish(), names: (n) => this.opts.onNames?.(n) },
    });
    this.st = initialStatus(opts.initial, this.now());
  }

  // ---- triggers ----------------------------------------------------------------------------

  /**
   * Asks for a run. Never blocks; bursts of one kind settle first (settleMs). `revision` is the
   * revision the trigger names (a push webhook's after-sha): a run asked for only by triggers
   * naming the revision already fetched and applied is skipped, so a burst of deliveries for one
   * push makes one run however long the burst lasts.
   */
  trigger(kind: TriggerKind, detail?: string, revision?: string): void {
    if (!this.stopped) this.windows.add(kind, detail, revision);
  }

  /** A reconcile that does not stop at "unchanged": re-plans and re-applies the current revision. */
  forceReconcile(detail = 'forced'): void {
    this.forceNext = true;
    this.trigger('manual', detail);
  }

  /** False while a retry is pending: polls then wait for it (the backoff holds). */
  acceptsPoll(): boolean {
    return this.clock.now() >= this.retryAt;
  }

  /** Resolves when no run is in progress, due, or settling. */
  async whenIdle(): Promise<void> {
    await this.windows.whenEmpty();
    await this.coalescer.whenIdle();
  }

  get running(): boolean {
    return this.coalescer.running;
  }

  /** No trigger settling, no run in progress or due. */
  get idle(): boolean {
    return this.windows.empty && this.coalescer.idle;
  }

  /**
   * An interface appeared: when the last reconcile waits for a missing interface
   * (LB_COMPILE_IFACE, retried every few seconds), it runs again now.
   */
  interfaceAppeared(ifname: string): void {
    const last = this.lastOutcomeValue;
    if (last && 'failure' in last && last.failure.code === 'LB_COMPILE_IFACE') this.trigger('manual', `link ${ifname}`);
  }

  /** The interfaces of the applied state (empty before the first apply). */
  servedInterfaces(): readonly string[] {
    return this.applied?.request.interfaces ?? [];
  }

  /** Reconcile runs so far (drift-only runs not counted). */
  get reconciles(): number {
    return this.reconcileCount;
  }

  get lastOutcome(): ReconcileOutcome | undefined {
    return this.lastOutcomeValue;
  }

  get appliedState(): AppliedState | null {
    return this.applied;
  }

  /** Stops taking triggers, aborts a fetch in flight, waits for the current run to end, ends the engine's worker. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.windows.clear();
    this.clearRetry();
    this.abort.abort();
    await this.coalescer.stop();
    await this.opts.engine.close?.();
  }

  // ---- the run -----------------------------------------------------------------------------

  private async run(triggers: Trigger[]): Promise<void> {
    // Drift triggers ask for a drift check, not a reconcile: only the others decide whether one runs,
    // so a drift tick landing in the same batch as a redelivered webhook does not make it a run.
    const asking = triggers.filter((t) => t.kind !== 'drift');
    const last = this.lastOutcomeValue;
    const skip = asking.length > 0 && onlyNamesApplied(asking, {
      applied: this.applied?.revision, desired: this.st.desiredRevision, force: this.forceNext,
      lastRunSucceeded: last !== undefined && !('failure' in last),
      runtimeUnchanged: () => this.applied?.runtimeFingerprint === this.runtime.snapshot().fingerprint,
    });
    for (const t of triggers) this.opts.metrics?.triggers?.(t.kind, skip && t.kind !== 'drift' ? 'skipped' : 'run', t.count ?? 1);
    if (skip) {
      this.log.info({ component: 'reconcile', triggers: asking.map((t) => t.kind), revision: this.applied?.revision }, 'no run: the triggers name the revision already applied');
    }
    if (asking.length > 0 && !skip) {
      const force = this.forceNext;
      this.forceNext = false;
      const t0 = this.clock.monotonic();
      const { outcome, applied } = await runSteps({
        source: this.opts.source, engine: this.opts.engine, runtime: this.runtime, log: this.log, signal: this.abort.signal,
        now: () => this.now(), stalled: this.stalled, applied: this.applied,
        named: (revision, ref) => {
          if (ref !== undefined) this.lastRef = ref;
          this.dispatch({ type: 'desired', revision });
        },
      }, force);
      if (applied) this.applied = applied;
      // A fetch aborted by stop() is no outcome worth reporting.
      if (this.stopped && 'failure' in outcome) return;
      const seconds = (this.clock.monotonic() - t0) / 1000;
      // The report of the outcome shows the runtime's status of this config: built here between
      // turns of the event loop, so publishing it finds it built (10,000 proxies: a row per
      // target). A build that fails is built again by the publish, which reports the error.
      await this.runtime.statusYielding?.(yieldToEventLoop).catch(() => undefined);
      this.reconcileCount += 1;
      this.lastOutcomeValue = outcome;
      this.opts.metrics?.reconcile(outcome.result, seconds);
      this.record(outcome, asking, seconds);
    }
    const drift = triggers.filter((t) => t.kind === 'drift');
    // A link event or a request by hand is worth a heal even while failed heals back off.
    if (drift.length > 0) await this.driftCheck(drift.some((t) => t.detail !== 'timer'));
  }

  // ---- recording an outcome ----------------------------------------------------------------

  private record(outcome: ReconcileOutcome, triggers: Trigger[], seconds: number): void {
    const kinds = [...new Set(triggers.map((t) => t.kind))];
    const base = { component: 'reconcile', result: outcome.result, triggers: kinds, durationMs: Math.round(seconds * 1000) };

    if (outcome.result === 'applied' || outcome.result === 'noop') {
      const label = revisionLabel(outcome.revision, outcome.ref);
      this.dispatch({ type: outcome.result, revision: outcome.revision, label, plan: outcome.plan, dataPlane: outcome.dataPlane });
      if (outcome.names) this.opts.onNames?.(outcome.names);
      this.healer.forget();
      this.settled();
      this.opts.source.retain?.(outcome.revision);
      this.opts.metrics?.appliedRevision(outcome.revision);
      this.log.info({ ...base, revision: outcome.revision, plan: outcome.plan, ...(outcome.changes.length > 0 ? { changes: outcome.changes } : {}),
        ...(outcome.warnings.length > 0 ? { warnings: outcome.warnings } : {}) },
      outcome.result === 'applied' ? `applied revision ${label}` : `revision ${label} is live; no changes`);
      this.publish();
      return;
    }

    const label = revisionLabel(outcome.revision, this.lastRef);
    if (outcome.result === 'unchanged') {
      this.log.debug({ ...base, revision: outcome.revision, because: outcome.because }, `revision ${label} unchanged`);
      const before = this.st;
      this.dispatch({ type: 'unchanged', revision: outcome.revision, because: outcome.because, label });
      // The applied revision is live again after other attempts (a reverted or force-pushed branch).
      if (this.st !== before) {
        this.settled();
        this.publish();
      }
      return;
    }
    if (!('failure' in outcome)) return;

    const f = outcome.failure;
    const serving = this.applied ? revisionLabel(this.applied.revision, this.lastRef) : null;
    const fields = { ...base, step: f.step, reason: f.reason, code: f.code, revision: outcome.revision, errors: f.errors };
    if (outcome.result === 'stalled') {
      this.stalled = { revision: outcome.revision, key: failureKey(f) };
      this.clearRetry();
      this.backoff.reset();
      this.dispatch({ type: 'stalled', revision: outcome.revision, label, failure: f, serving });
      this.log.error(fields, `revision ${label} stalled (${f.reason}): not retried until the source moves to another revision`);
    } else {
      const delay = f.disposition === 'waiting' ? (f.retryAfterMs ?? 1000) : this.backoff.next();
      if (!this.stopped) this.scheduleRetry(delay);
      this.dispatch({ type: 'failed', revision: outcome.revision, label, failure: f, serving, retryInMs: delay });
      this.log.warn({ ...fields, disposition: f.disposition, retryInMs: delay, attempt: this.backoff.attempts },
        `${f.step} failed (${f.reason}); retrying in ${formatMs(delay)}`);
    }
    this.publish();
  }

  /** A revision is live as the source wants it: nothing stalled, no retry due. */
  private settled(): void {
    this.stalled = null;
    this.clearRetry();
    this.backoff.reset();
  }

  private scheduleRetry(delay: number): void {
    this.clearRetry();
    this.retryAt = this.clock.now() + delay;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.retryAt = 0;
      this.trigger('retry', `after ${delay} ms`);
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryAt = 0;
  }

  // ---- drift -------------------------------------------------------------------------------

  /** Asks for a drift check (through the single-flight gate); resolves when it ran. */
  async checkDriftNow(): Promise<DriftCheckResult> {
    this.trigger('drift', 'requested');
    await this.whenIdle();
    return this.lastDrift ?? { finding: null, healed: false, note: 'no check was made' };
  }

  private async driftCheck(urgent: boolean): Promise<void> {
    const applied = this.applied;
    if (!applied || this.stopped) {
      this.lastDrift = { finding: null, healed: false, note: applied ? 'stopping' : 'nothing applied yet' };
      return;
    }
    this.lastDrift = await this.healer.check(applied, revisionLabel(applied.revision, this.lastRef), urgent);
  }

  // ---- status ------------------------------------------------------------------------------

  private now(): Date {
    return new Date(this.clock.now());
  }

  private dispatch(event: StatusEvent): void {
    this.st = reduceStatus(this.st, event, this.now());
  }

  /** The current status report. */
  report(): StatusReport {
    return this.reportWith(this.runtime.status?.());
  }

  /**
   * The current status report, its runtime section built with `pause` between slices when it must
   * be built anew (the control socket's answers: a new config of 10,000 proxies must not hold the
   * event loop for a row per target), or the one built last when only its time bound ran out.
   */
  async reportYielding(pause: () => Promise<void>): Promise<StatusReport> {
    // While a run is in progress, the runtime's status built last answers at once: the run builds
    // the new config's before it ends (its report shows it), and a `status` asked meanwhile would
    // wait for 20,000 rows built in slices between the run's own work (0.15-0.8 s at 10,000 proxies).
    const runtime = this.runtime.statusYielding ? await this.runtime.statusYielding(pause, { stale: true, previous: this.running }) : this.runtime.status?.();
    return this.reportWith(runtime);
  }

  private reportWith(runtime: RuntimeStatus | null | undefined): StatusReport {
    return buildReport(this.st, {
      node: this.opts.node, instance: this.instance, source: this.opts.sourceInfo, version: this.opts.version,
      runtime, generatedAt: this.now(),
    });
  }

  /**
   * Publishes the report now (status file; the status branch when significant): the runtime
   * calls it when health, drain, circuit or DNS state changed without a reconcile.
   */
  publishReport(): void {
    if (!this.stopped) this.publish();
  }

  /** /readyz: ready once a state matching the desired one was applied or adopted. */
  readiness(): Readiness {
    return readinessOf(this.st, {
      live: this.applied ? revisionLabel(this.applied.revision, this.lastRef) : null,
      attempted: revisionLabel(this.st.lastAttemptedRevision, this.lastRef),
      completedARun: this.lastOutcomeValue !== undefined,
    });
  }

  private publish(): void {
    const report = this.report();
    const key = significanceKey(report, this.runtime.statusKey?.() ?? null);
    const significant = key !== this.publishedKey;
    this.publishedKey = key;
    try {
      this.opts.onReport?.(report, significant);
    } catch (err) {
      this.log.error({ component: 'report', ...errFields(err) }, 'status report handler failed');
    }
  }
}
