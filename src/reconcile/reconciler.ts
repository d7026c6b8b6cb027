// The reconcile loop (docs/design.md §5, after Flux). One run is a linear list of steps, stopping at the first error:
//
//   fetch     Source.fetch(): the revision the source points at now
//   (unchanged revision and runtime inputs: an explicit no-op, result "unchanged")
//   validate  read + parse + schema + semantic checks of the revision's config
//   --- under the instance lock ---
//   compile   recover an interrupted apply, compile with the runtime inputs, encode for this host
//   plan      diff against the live maps (compile and plan are one call: preparePlan)
//   apply     the transaction (inactive generation, one flip, read-back, rollback on failure)
//   verify    read the live maps again: they must hold exactly what was applied
//   -----------------------------
//   report    status (conditions, revisions, plan, errors), metrics, logs
//
// Every trigger (poll, webhook, SIGHUP, file change, retry, control socket, drift timer) goes
// through one TriggerCoalescer: one run at a time, and any number of triggers during a run make
// exactly one more. Drift checks run through the same gate, so they never race an apply.
//
// What a failure does is decided here, from its disposition (failure.ts): stalling marks the
// revision Stalled and does not retry it until the source moves to another revision; transient
// retries with exponential backoff (polls are held back while a retry is pending); waiting retries
// after a fixed delay. The last applied revision stays live through every failure.

import { performance } from 'node:perf_hooks';
import type { ApplyRequest, RecoveryResult } from '../apply/index.js';
import { ConfigError } from '../core/config/config-error.js';
import { formatDiagnostic } from '../core/config/diagnostics.js';
import { isLbError, LbError } from '../core/errors.js';
import type { ReconcileResultLabel } from '../observe/metrics.js';
import type { Readiness } from '../observe/ops-server.js';
import type { PlanSummary } from '../core/plan/plan.js';
import { removeCondition, setCondition } from '../report/conditions.js';
import {
  STATUS_REPORT_SCHEMA, type DataPlaneSummary, type DriftSummary, type StatusReport,
} from '../report/types.js';
import { Backoff, type BackoffOptions } from '../source/backoff.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { TriggerCoalescer, type Trigger, type TriggerKind } from '../source/triggers.js';
import type { Source, SourceRevision } from '../source/types.js';
import type { LiveState } from '../state/live.js';
import type { LogicalState } from '../core/state.js';
import { detectDrift, type DriftFinding, type ExpectedState } from './drift.js';
import { validateConfigAt, type PlannedRevision, type ReconcileEngine } from './engine.js';
import { classifyFailure, step, stepSync, type StepFailure } from './failure.js';
import { NO_RUNTIME, type RuntimeProvider } from './runtime.js';
import { dataPlaneSummary, planLines, revisionLabel } from './status.js';

export interface ReconcileMetricsSink {
  reconcile(result: ReconcileResultLabel, seconds: number): void;
  /** Arrivals of one kind, once decided: they started a run, or named what was already applied. */
  triggers?(kind: TriggerKind, outcome: 'run' | 'skipped', count: number): void;
  appliedRevision(revision: string | null): void;
  driftDetected(): void;
}

/** What the loop applied last: the drift reference and the heal request. */
export interface AppliedState {
  revision: string;
  runtimeFingerprint: string;
  request: ApplyRequest;
  desired: LogicalState;
  configDigest: string;
  appliedAt: string;
}

export type ReconcileOutcome =
  | { result: 'applied' | 'noop'; revision: string; ref: string; plan: PlanSummary; changes: string[]; warnings: string[]; live: LiveState; recovered: RecoveryResult | null }
  | { result: 'unchanged'; revision: string | null; because: 'applied' | 'stalled' }
  | { result: 'stalled' | 'failed'; revision: string | null; failure: StepFailure };

export interface DriftCheckResult {
  finding: DriftFinding | null;
  healed: boolean;
  /** Why no check was made, or why healing failed. */
  note?: string;
}

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
  /** What the data plane says was applied before this process started (the apply inventory). */
  initial?: { lastAppliedRevision: string | null; lastAppliedAt: string | null; dataPlane: DataPlaneSummary | null };
  version?: string;
  now?: () => Date;
}

export const DEFAULT_SETTLE_MS: Partial<Record<TriggerKind, number>> = { webhook: 250 };

/** The report's own fields the loop keeps between reconciles (the report is built from them). */
type StatusState = Pick<StatusReport, 'desiredRevision' | 'lastAppliedRevision' | 'lastAttemptedRevision' | 'result'
  | 'conditions' | 'plan' | 'errors' | 'dataPlane'> & {
  drift: DriftSummary | null;
  lastAttemptedAt: string | null;
  lastAppliedAt: string | null;
};

export class Reconciler {
  readonly instance: string;
  private readonly opts: ReconcilerOptions;
  private readonly log: Logger;
  private readonly engine: ReconcileEngine;
  private readonly runtime: RuntimeProvider;
  private readonly selfHeal: boolean;
  /** The last failed heal: its failure, how often in a row, and when the drift timer may retry. */
  private healFailure: { key: string; count: number; retryAt: number } | null = null;
  private readonly settleMs: Partial<Record<TriggerKind, number>>;
  private readonly coalescer: TriggerCoalescer;
  private readonly backoff: Backoff;
  private readonly now: () => Date;
  private readonly abort = new AbortController();
  private readonly settling = new Map<TriggerKind, { timer: NodeJS.Timeout; details: string[]; revisions: Set<string>; unnamed: boolean; count: number }>();
  private applied: AppliedState | null = null;
  /** The stalled attempt: its revision (null when the source failed before naming one) and what failed. */
  private stalled: { revision: string | null; key: string } | null = null;
  private publishedKey: string | undefined;
  private lastRef: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt = 0;
  private forceNext = false;
  private stopped = false;
  private lastOutcomeValue: ReconcileOutcome | undefined;
  private lastDriftKey: string | null = null;
  private lastDrift: DriftCheckResult | undefined;
  private reconcileCount = 0;
  private st: StatusState;

  constructor(opts: ReconcilerOptions) {
    this.opts = opts;
    this.instance = opts.instance;
    this.log = opts.log ?? silentLogger;
    this.engine = opts.engine;
    this.runtime = opts.runtime ?? NO_RUNTIME;
    this.selfHeal = opts.selfHeal ?? true;
    this.settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS;
    this.backoff = new Backoff({ initialMs: 1000, maxMs: 300_000, ...opts.retry });
    this.now = opts.now ?? (() => new Date());
    this.coalescer = new TriggerCoalescer((triggers) => this.run(triggers), {
      onError: (err) => this.log.error({ component: 'reconcile', ...errFields(err) }, 'reconcile run failed unexpectedly'),
    });
    this.st = {
      desiredRevision: null,
      lastAppliedRevision: opts.initial?.lastAppliedRevision ?? null,
      lastAttemptedRevision: null,
      result: 'progressing',
      conditions: [
        { type: 'Ready', status: 'Unknown', reason: 'Progressing', message: 'the first reconcile has not completed', lastTransitionTime: this.now().toISOString() },
        { type: 'Reconciling', status: 'True', reason: 'Progressing', message: 'reconciling', lastTransitionTime: this.now().toISOString() },
      ],
      plan: null,
      errors: [],
      dataPlane: opts.initial?.dataPlane ?? null,
      drift: null,
      lastAttemptedAt: null,
      lastAppliedAt: opts.initial?.lastAppliedAt ?? null,
    };
  }

  // ---- triggers ----------------------------------------------------------------------------

  /**
   * Asks for a run. Never blocks; bursts of one kind settle first (settleMs). `revision` is the
   * revision the trigger names (a push webhook's after-sha): a run asked for only by triggers
   * naming the revision already fetched and applied is skipped, so a burst of deliveries for one
   * push makes one run however long the burst lasts.
   */
  trigger(kind: TriggerKind, detail?: string, revision?: string): void {
    if (this.stopped) return;
    const ms = this.settleMs[kind] ?? 0;
    if (ms <= 0) {
      this.coalescer.trigger(kind, detail, revision !== undefined ? [revision] : undefined);
      return;
    }
    const pending = this.settling.get(kind);
    if (pending) {
      pending.count += 1;
      if (detail !== undefined && pending.details.length < 16) pending.details.push(detail);
      if (revision === undefined) pending.unnamed = true;
      else if (pending.revisions.size < 16) pending.revisions.add(revision);
      else pending.unnamed = true;
      return;
    }
    const entry = {
      details: detail !== undefined ? [detail] : [],
      revisions: new Set(revision !== undefined ? [revision] : []),
      unnamed: revision === undefined,
      count: 1,
      timer: setTimeout(() => {
        this.settling.delete(kind);
        this.coalescer.trigger(kind, entry.details.join(' ') || undefined, entry.unnamed ? undefined : [...entry.revisions], entry.count);
      }, ms),
    };
    this.settling.set(kind, entry);
  }

  /** True when every trigger names a revision, and each is the one last fetched and applied. */
  private onlyNamesApplied(triggers: readonly Trigger[]): boolean {
    const applied = this.applied?.revision;
    if (applied === undefined || this.st.desiredRevision !== applied || this.forceNext) return false;
    const last = this.lastOutcomeValue;
    if (last === undefined || 'failure' in last || this.applied!.runtimeFingerprint !== this.runtime.snapshot().fingerprint) return false;
    return triggers.every((t) => t.kind !== 'drift' && t.revisions !== undefined && t.revisions.length > 0 && t.revisions.every((r) => r === applied));
  }

  /** A reconcile that does not stop at "unchanged": re-plans and re-applies the current revision. */
  forceReconcile(detail = 'forced'): void {
    this.forceNext = true;
    this.trigger('manual', detail);
  }

  /** False while a retry is pending: polls then wait for it (the backoff holds). */
  acceptsPoll(): boolean {
    return Date.now() >= this.retryAt;
  }

  /** Resolves when no run is in progress, due, or settling. */
  async whenIdle(): Promise<void> {
    for (let i = 0; i < 10_000 && this.settling.size > 0 && !this.stopped; i++) await new Promise((r) => setTimeout(r, 10));
    await this.coalescer.whenIdle();
  }

  get running(): boolean {
    return this.coalescer.running;
  }

  /** No trigger settling, no run in progress or due. */
  get idle(): boolean {
    return this.settling.size === 0 && this.coalescer.idle;
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

  /** Stops taking triggers, aborts a fetch in flight, waits for the current run to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.settling.values()) clearTimeout(s.timer);
    this.settling.clear();
    this.clearRetry();
    this.abort.abort();
    await this.coalescer.stop();
  }

  // ---- the run -----------------------------------------------------------------------------

  private async run(triggers: Trigger[]): Promise<void> {
    const skip = this.onlyNamesApplied(triggers);
    for (const t of triggers) this.opts.metrics?.triggers?.(t.kind, skip ? 'skipped' : 'run', t.count ?? 1);
    if (skip) {
      this.log.info({ component: 'reconcile', triggers: triggers.map((t) => t.kind), revision: this.applied?.revision }, 'no run: the triggers name the revision already applied');
      return;
    }
    const driftOnly = triggers.every((t) => t.kind === 'drift');
    if (!driftOnly) {
      const force = this.forceNext;
      this.forceNext = false;
      const t0 = performance.now();
      const outcome = await this.reconcileOnce(force);
      // A fetch aborted by stop() is no outcome worth reporting.
      if (this.stopped && 'failure' in outcome) return;
      const seconds = (performance.now() - t0) / 1000;
      this.reconcileCount += 1;
      this.lastOutcomeValue = outcome;
      this.opts.metrics?.reconcile(outcome.result, seconds);
      this.record(outcome, triggers, seconds);
    }
    const drift = triggers.filter((t) => t.kind === 'drift');
    // A link event or a request by hand is worth a heal even while failed heals back off.
    if (drift.length > 0) await this.driftCheck(drift.some((t) => t.detail !== 'timer'));
  }

  private async reconcileOnce(force: boolean): Promise<ReconcileOutcome> {
    let rev: SourceRevision | undefined;
    try {
      const fetched = await step('fetch', () => this.opts.source.fetch({ signal: this.abort.signal }));
      rev = fetched;
      this.lastRef = fetched.ref;
      this.st.desiredRevision = fetched.revision;
      const current = this.runtime.snapshot();
      if (!force && this.stalled?.revision === fetched.revision) return { result: 'unchanged', revision: fetched.revision, because: 'stalled' };
      if (!force && this.applied?.revision === fetched.revision && this.applied.runtimeFingerprint === current.fingerprint) {
        return { result: 'unchanged', revision: fetched.revision, because: 'applied' };
      }

      const validated = await step('validate', () => validateConfigAt(fetched.configPath));
      // The runtime learns the config first (targets to check, names to resolve), so the inputs
      // compiled with it are its answers for this config, not the previous one's.
      let runtime = current;
      if (this.runtime.configure) {
        this.runtime.configure(validated.config, fetched.revision);
        runtime = this.runtime.snapshot();
      }

      return await step('apply', () => this.engine.withLock(async () => {
        const recovered = stepSync('apply', () => this.engine.recover());
        if (recovered) this.log.warn({ component: 'reconcile', outcome: recovered.outcome, warnings: recovered.warnings }, recovered.message);
        const warnings: string[] = [];
        const planned = await step(
          (err) => (err instanceof ConfigError || (isLbError(err) && err.code.startsWith('LB_COMPILE_')) ? 'compile' : 'plan'),
          () => this.engine.prepare({ configPath: fetched.configPath, revision: fetched.revision, inputs: runtime.inputs, warn: (m) => warnings.push(m) }),
        );
        const result = stepSync('apply', () => this.engine.apply(planned.request));
        const live = stepSync('verify', () => this.verify(planned));
        this.applied = {
          revision: fetched.revision,
          runtimeFingerprint: runtime.fingerprint,
          request: planned.request,
          desired: planned.desired,
          configDigest: planned.configDigest,
          appliedAt: this.now().toISOString(),
        };
        return {
          result: result.changed ? 'applied' : 'noop',
          revision: fetched.revision,
          ref: fetched.ref,
          plan: planned.plan.summary,
          changes: planLines(planned.plan),
          warnings: [...validated.warnings.map(formatDiagnostic), ...planned.warnings.filter((d) => d.stage === 'compile').map(formatDiagnostic), ...warnings, ...result.warnings],
          live,
          recovered,
        } as const;
      }));
    } catch (err) {
      const failure = classifyFailure(err, rev?.rootDir);
      const revision = rev?.revision ?? failure.revision ?? null;
      if (revision !== null && rev === undefined) this.st.desiredRevision = revision;
      // The same refusal again (the same revision, or the same error before any revision): not a new attempt.
      if (!force && failure.disposition === 'stalling' && this.stalled
        && (revision !== null ? this.stalled.revision === revision : this.stalled.revision === null && this.stalled.key === failureKey(failure))) {
        return { result: 'unchanged', revision, because: 'stalled' };
      }
      return { result: failure.disposition === 'stalling' ? 'stalled' : 'failed', revision, failure };
    }
  }

  /** The verify step: the live maps hold exactly the planned generation and attachments. */
  private verify(planned: PlannedRevision): LiveState {
    const live = this.engine.readLive();
    const drift = detectDrift(expectedOf(planned.request, planned.desired), live);
    if (drift) {
      throw new LbError('LB_APPLY_VERIFY', `after the apply, ${drift.entries} live entr${drift.entries === 1 ? 'y differs' : 'ies differ'} from the applied state: ${drift.differences.slice(0, 3).join('; ')}`,
        { entries: drift.entries });
    }
    return live;
  }

  // ---- recording an outcome ----------------------------------------------------------------

  private record(outcome: ReconcileOutcome, triggers: Trigger[], seconds: number): void {
    const now = this.now().toISOString();
    const kinds = [...new Set(triggers.map((t) => t.kind))];
    const base = { component: 'reconcile', result: outcome.result, triggers: kinds, durationMs: Math.round(seconds * 1000) };
    const st = this.st;

    if (outcome.result === 'applied' || outcome.result === 'noop') {
      const label = revisionLabel(outcome.revision, outcome.ref);
      if (outcome.result === 'applied' || st.lastAppliedRevision !== outcome.revision) st.lastAppliedAt = now;
      st.lastAppliedRevision = outcome.revision;
      st.lastAttemptedRevision = outcome.revision;
      st.lastAttemptedAt = now;
      st.result = outcome.result === 'applied' ? 'applied' : 'unchanged';
      st.plan = outcome.plan;
      st.errors = [];
      st.dataPlane = dataPlaneSummary(outcome.live);
      st.drift = null;
      this.lastDriftKey = null;
      this.succeed(outcome.result === 'applied'
        ? `Applied revision ${label}: ${outcome.plan.add} added, ${outcome.plan.change} changed, ${outcome.plan.destroy} destroyed`
        : `Revision ${label} is live: the data plane already matched it (no changes)`);
      this.stalled = null;
      this.clearRetry();
      this.backoff.reset();
      this.opts.source.retain?.(outcome.revision);
      this.opts.metrics?.appliedRevision(outcome.revision);
      this.log.info({ ...base, revision: outcome.revision, plan: outcome.plan, ...(outcome.changes.length > 0 ? { changes: outcome.changes } : {}),
        ...(outcome.warnings.length > 0 ? { warnings: outcome.warnings } : {}) },
      outcome.result === 'applied' ? `applied revision ${label}` : `revision ${label} is live; no changes`);
      this.publish();
      return;
    }

    if (outcome.result === 'unchanged') {
      this.log.debug({ ...base, revision: outcome.revision, because: outcome.because }, `revision ${revisionLabel(outcome.revision, this.lastRef)} unchanged`);
      // A revision equal to the applied one after other attempts (a reverted or force-pushed
      // branch): it is live, so the status says so again.
      if (outcome.because === 'applied' && outcome.revision !== null && (st.result === 'failed' || st.result === 'stalled' || st.lastAttemptedRevision !== outcome.revision)) {
        st.lastAttemptedRevision = outcome.revision;
        st.lastAttemptedAt = now;
        st.result = 'unchanged';
        st.errors = [];
        this.stalled = null;
        this.clearRetry();
        this.backoff.reset();
        this.succeed(`Revision ${revisionLabel(outcome.revision, this.lastRef)} is live (unchanged)`);
        this.publish();
      }
      return;
    }
    if (!('failure' in outcome)) return;

    const f = outcome.failure;
    const label = revisionLabel(outcome.revision, this.lastRef);
    if (outcome.revision !== null) st.lastAttemptedRevision = outcome.revision;
    st.lastAttemptedAt = now;
    st.errors = f.errors;
    st.plan = null;
    const fields = { ...base, step: f.step, reason: f.reason, code: f.code, revision: outcome.revision, errors: f.errors };
    if (outcome.result === 'stalled') {
      st.result = 'stalled';
      this.stalled = { revision: outcome.revision, key: failureKey(f) };
      this.clearRetry();
      this.backoff.reset();
      const message = `${capitalize(stepPhrase(f.step))} of revision ${label} failed: ${f.message}`;
      st.conditions = setCondition(st.conditions, { type: 'Stalled', status: 'True', reason: f.reason, message }, this.now());
      st.conditions = setCondition(st.conditions, { type: 'Ready', status: 'False', reason: f.reason, message: this.servingNote(message) }, this.now());
      st.conditions = removeCondition(st.conditions, 'Reconciling');
      this.log.error(fields, `revision ${label} stalled (${f.reason}): not retried until the source moves to another revision`);
    } else {
      st.result = 'failed';
      const delay = f.disposition === 'waiting' ? (f.retryAfterMs ?? 1000) : this.backoff.next();
      if (!this.stopped) this.scheduleRetry(delay);
      const message = `${capitalize(stepPhrase(f.step))}${outcome.revision !== null ? ` of revision ${label}` : ''} failed: ${f.message}`;
      st.conditions = setCondition(st.conditions, { type: 'Ready', status: 'False', reason: f.reason, message: this.servingNote(message) }, this.now());
      st.conditions = setCondition(st.conditions, {
        type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', message: `retrying in ${formatMs(delay)} (${f.disposition})`,
      }, this.now());
      st.conditions = removeCondition(st.conditions, 'Stalled');
      this.log.warn({ ...fields, disposition: f.disposition, retryInMs: delay, attempt: this.backoff.attempts },
        `${f.step} failed (${f.reason}); retrying in ${formatMs(delay)}`);
    }
    this.publish();
  }

  private succeed(message: string): void {
    const st = this.st;
    st.conditions = setCondition(st.conditions, { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message }, this.now());
    st.conditions = removeCondition(removeCondition(removeCondition(st.conditions, 'Reconciling'), 'Stalled'), 'Degraded');
  }

  private servingNote(message: string): string {
    return this.applied ? `${message}; revision ${revisionLabel(this.applied.revision, this.lastRef)} stays live` : message;
  }

  private scheduleRetry(delay: number): void {
    this.clearRetry();
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retryAt = 0;
      this.trigger('retry', `after ${delay} ms`);
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
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

  private async driftCheck(urgent = true): Promise<void> {
    const applied = this.applied;
    if (!applied || this.stopped) {
      this.lastDrift = { finding: null, healed: false, note: applied ? 'stopping' : 'nothing applied yet' };
      return;
    }
    const expected = expectedOf(applied.request, applied.desired);
    const st = this.st;
    const label = revisionLabel(applied.revision, this.lastRef);
    let finding: DriftFinding | null = null;
    try {
      this.lastDrift = await this.engine.withLock(async () => {
        const live = this.engine.readLive();
        finding = detectDrift(expected, live);
        if (!finding) {
          st.conditions = removeCondition(st.conditions, 'Degraded');
          if (st.drift && !st.drift.healed) {
            st.drift = null;
            this.lastDriftKey = null;
            this.succeed(`Revision ${label} is live: the drift is gone`);
            this.log.info({ component: 'drift', revision: applied.revision }, 'the drift is gone');
            this.publish();
          }
          this.healFailure = null;
          return { finding: null, healed: false };
        }
        const key = finding.differences.join('\n');
        const fresh = key !== this.lastDriftKey;
        this.lastDriftKey = key;
        const detectedAt = !fresh && st.drift ? st.drift.detectedAt : this.now().toISOString();
        if (fresh) {
          this.opts.metrics?.driftDetected();
          this.log.warn({ component: 'drift', revision: applied.revision, entries: finding.entries, differences: finding.differences, selfHeal: this.selfHeal },
            `drift detected: ${finding.entries} live entr${finding.entries === 1 ? 'y differs' : 'ies differ'} from revision ${label}`);
        }
        if (!this.selfHeal) {
          st.drift = { entries: finding.entries, healed: false, detectedAt };
          st.conditions = setCondition(st.conditions, {
            type: 'Ready', status: 'False', reason: 'DriftDetected',
            message: `${finding.entries} live entr${finding.entries === 1 ? 'y differs' : 'ies differ'} from revision ${label} (self-heal is off): ${finding.differences.slice(0, 3).join('; ')}`,
          }, this.now());
          st.dataPlane = dataPlaneSummary(live);
          if (fresh) this.publish();
          return { finding, healed: false };
        }
        const backoff = this.healFailure;
        if (!urgent && backoff && backoff.count >= HEAL_STALL_AFTER && this.now().getTime() < backoff.retryAt) {
          return { finding, healed: false, note: `healing failed ${backoff.count} times the same way; next attempt at ${new Date(backoff.retryAt).toISOString()}` };
        }
        const recovered = this.engine.recover();
        if (recovered) this.log.warn({ component: 'drift', outcome: recovered.outcome }, recovered.message);
        // Encoded anew: the applied bytes name interfaces by ifindex, and an interface deleted
        // and created again (a container or VM restart) has a new one. Re-applying the old bytes
        // would fail its read-back on every tick, forever.
        const request = this.engine.reencode(applied.request);
        this.engine.apply({ ...request });
        applied.request = request;
        const after = this.engine.readLive();
        const left = detectDrift(expectedOf(request, expected.desired), after);
        if (left) {
          throw new LbError('LB_APPLY_VERIFY', `after re-applying revision ${label}, ${left.entries} entries still differ: ${left.differences.slice(0, 3).join('; ')}`, { entries: left.entries });
        }
        st.drift = { entries: finding.entries, healed: true, detectedAt };
        st.dataPlane = dataPlaneSummary(after);
        this.lastDriftKey = null;
        this.healFailure = null;
        st.conditions = removeCondition(removeCondition(st.conditions, 'Stalled'), 'Degraded');
        st.conditions = setCondition(st.conditions, {
          type: 'Ready', status: 'True', reason: 'DriftCorrected',
          message: `${finding.entries} live entr${finding.entries === 1 ? 'y' : 'ies'} had drifted from revision ${label}; re-applied it`,
        }, this.now());
        this.log.info({ component: 'drift', revision: applied.revision, entries: finding.entries }, `drift healed: re-applied revision ${label}`);
        this.publish();
        return { finding, healed: true };
      });
    } catch (err) {
      if (isLbError(err, 'LB_APPLY_LOCKED')) {
        this.lastDrift = { finding, healed: false, note: 'the instance lock is held by another lb process; checking again at the next tick' };
        return;
      }
      const f = classifyFailure(err);
      this.log.error({ component: 'drift', reason: f.reason, code: f.code, errors: f.errors }, `healing the drift failed: ${f.message}`);
      const found = finding as DriftFinding | null;
      if (found) st.drift = { entries: found.entries, healed: false, detectedAt: st.drift?.detectedAt ?? this.now().toISOString() };
      const missing = isLbError(err, 'LB_COMPILE_IFACE') ? ((err.data as { interfaces?: string[] }).interfaces ?? []) : [];
      if (missing.length > 0) {
        // An interface the config names is gone (a container or VM restart in progress): the rest
        // of the applied state still serves; the link event of its return heals it.
        st.conditions = setCondition(st.conditions, {
          type: 'Degraded', status: 'True', reason: 'InterfaceMissing',
          message: `interface${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of revision ${label} ${missing.length > 1 ? 'are' : 'is'} missing; ` +
            'everything else keeps serving, and lb re-attaches when it appears',
        }, this.now());
      } else {
        st.conditions = setCondition(st.conditions, { type: 'Ready', status: 'False', reason: 'DriftHealFailed', message: f.message }, this.now());
      }
      // The same failure twice is no passing fault: Stalled, and timer ticks back off (doubling).
      // A heal is an apply and its read-back: the step is one of those, whatever classifyFailure's default.
      const step: StepFailure['step'] = isLbError(err, 'LB_APPLY_VERIFY') ? 'verify' : 'apply';
      const failKey = `${step}|${f.reason}|${f.message}`;
      const count = this.healFailure?.key === failKey ? this.healFailure.count + 1 : 1;
      const retryAt = this.now().getTime() + Math.min(HEAL_BACKOFF_MAX_MS, HEAL_BACKOFF_BASE_MS * 2 ** Math.max(0, count - HEAL_STALL_AFTER));
      this.healFailure = { key: failKey, count, retryAt };
      if (count >= HEAL_STALL_AFTER && missing.length === 0) {
        st.conditions = setCondition(st.conditions, {
          type: 'Stalled', status: 'True', reason: 'DriftHealFailing',
          message: `healing the drift failed ${count} times the same way, at the ${stepPhrase(step)} step: ${f.message}; ` +
            `the drift timer retries from ${new Date(retryAt).toISOString()}; a link event or a drift check on the control socket heals at once`,
        }, this.now());
      }
      this.publish();
      this.lastDrift = { finding: found, healed: false, note: f.message };
    }
  }

  // ---- status ------------------------------------------------------------------------------

  /** The current status report. */
  report(): StatusReport {
    const st = this.st;
    return {
      schema: STATUS_REPORT_SCHEMA,
      node: this.opts.node,
      instance: this.instance,
      source: this.opts.sourceInfo,
      desiredRevision: st.desiredRevision,
      lastAppliedRevision: st.lastAppliedRevision,
      lastAttemptedRevision: st.lastAttemptedRevision,
      result: st.result,
      conditions: st.conditions.map((c) => ({ ...c })),
      plan: st.plan,
      errors: st.errors,
      dataPlane: st.dataPlane,
      drift: st.drift,
      ...(this.runtime.status ? { runtime: this.runtime.status() } : {}),
      timestamps: { lastAttemptedAt: st.lastAttemptedAt, lastAppliedAt: st.lastAppliedAt, generatedAt: this.now().toISOString() },
      ...(this.opts.version !== undefined ? { version: this.opts.version } : {}),
    };
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
    if (this.applied) {
      const live = revisionLabel(this.applied.revision, this.lastRef);
      const stalled = this.st.conditions.find((c) => c.type === 'Stalled' && c.status === 'True');
      if (stalled) return { ready: true, reason: `revision ${live} is live; revision ${revisionLabel(this.st.lastAttemptedRevision, this.lastRef)} is stalled (${stalled.reason})` };
      return { ready: true, reason: `revision ${live} is live` };
    }
    if (!this.lastOutcomeValue) return { ready: false, reason: 'the first reconcile has not completed' };
    const stalled = this.st.conditions.find((c) => c.type === 'Stalled' && c.status === 'True');
    if (stalled) return { ready: false, reason: `stalled (${stalled.reason}): ${stalled.message}` };
    const ready = this.st.conditions.find((c) => c.type === 'Ready' && c.status === 'False');
    if (ready) return { ready: false, reason: `failed (${ready.reason}): ${ready.message}` };
    return { ready: false, reason: 'no revision has been applied yet' };
  }

  private publish(): void {
    const report = this.report();
    const key = JSON.stringify([report.desiredRevision, report.lastAppliedRevision, report.lastAttemptedRevision, report.result,
      report.conditions.map((c) => [c.type, c.status, c.reason]), report.plan, report.errors, report.drift, report.dataPlane, this.runtime.statusKey?.() ?? null]);
    const significant = key !== this.publishedKey;
    this.publishedKey = key;
    try {
      this.opts.onReport?.(report, significant);
    } catch (err) {
      this.log.error({ component: 'report', ...errFields(err) }, 'status report handler failed');
    }
  }
}

/** A heal failing the same way this often is Stalled, and the drift timer backs off. */
const HEAL_STALL_AFTER = 2;
const HEAL_BACKOFF_BASE_MS = 30_000;
const HEAL_BACKOFF_MAX_MS = 600_000;

function failureKey(f: StepFailure): string {
  return `${f.step}|${f.reason}|${f.message}`;
}

function expectedOf(request: ApplyRequest, desired: LogicalState): ExpectedState {
  return { generation: request.generation, interfaces: request.interfaces, desired };
}

function stepPhrase(s: StepFailure['step']): string {
  return { fetch: 'fetch', validate: 'validation', compile: 'compilation', plan: 'planning', apply: 'apply', verify: 'verification' }[s];
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 60_000)}m`;
}
