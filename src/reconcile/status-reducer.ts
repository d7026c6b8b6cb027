// The status the reconcile loop keeps (revisions, result, conditions, plan, errors, drift) as a
// pure reducer: (state, event, now) -> state. The loop turns what happened into an event and
// reports the state it gets back; every condition, reason and message is decided here, so a
// table of events tests them (test/unit/reconcile/status-reducer.test.ts).
//
// Conditions follow Flux: Ready (True / False / Unknown), Reconciling while a retry is pending,
// Stalled when a human must act, Degraded when part of the applied state cannot be served.
// setCondition keeps a condition's lastTransitionTime unless its status changes.

import type { PlanSummary } from '../core/plan/plan.js';
import { removeCondition, setCondition } from '../report/conditions.js';
import type { Condition, DataPlaneSummary, DriftSummary, StatusReport } from '../report/types.js';
import type { StepFailure, StepName } from './failure.js';

/** The report's own fields the loop keeps between reconciles (the report is built from them). */
export type StatusState = Pick<StatusReport, 'desiredRevision' | 'lastAppliedRevision' | 'lastAttemptedRevision' | 'result'
  | 'conditions' | 'plan' | 'errors' | 'dataPlane'> & {
  drift: DriftSummary | null;
  lastAttemptedAt: string | null;
  lastAppliedAt: string | null;
};

/** What the data plane says was applied before this process started (the apply inventory). */
export interface InitialStatus {
  lastAppliedRevision: string | null;
  lastAppliedAt: string | null;
  dataPlane: DataPlaneSummary | null;
}

/** The failure of a step, as much of it as the status shows. */
export type FailureFacts = Pick<StepFailure, 'step' | 'disposition' | 'reason' | 'message' | 'errors'>;

/**
 * What happened. `label` is the revision as messages name it (revisionLabel); `serving` is the
 * label of the applied revision that stays live through a failure (null when none is).
 */
export type StatusEvent =
  /** The source named the revision it points at (fetched, or named by a refusal). */
  | { type: 'desired'; revision: string }
  /** A run applied a revision (`applied`) or found the data plane already matching it (`noop`). */
  | { type: 'applied' | 'noop'; revision: string; label: string; plan: PlanSummary; dataPlane: DataPlaneSummary }
  /** A run stopped at "unchanged": nothing to do, or the same stalled revision or refusal again. */
  | { type: 'unchanged'; revision: string | null; because: 'applied' | 'stalled'; label: string }
  /** A run failed in a way a human must fix: not retried until the source moves. */
  | { type: 'stalled'; revision: string | null; label: string; failure: FailureFacts; serving: string | null }
  /** A run failed and is retried in retryInMs. */
  | { type: 'failed'; revision: string | null; label: string; failure: FailureFacts; serving: string | null; retryInMs: number }
  /** A drift check found the live data plane matching the applied state. */
  | { type: 'drift-none'; label: string }
  /** Drift found while self-heal is off. `fresh`: other differences than at the last check. */
  | { type: 'drift-found'; entries: number; differences: readonly string[]; fresh: boolean; label: string; dataPlane: DataPlaneSummary }
  /** Drift found and healed by re-applying the applied state. */
  | { type: 'drift-healed'; entries: number; fresh: boolean; label: string; dataPlane: DataPlaneSummary }
  /**
   * Healing failed. `drift`: the drift found, null when the check itself failed. `missing`: the
   * interfaces of the applied state that are gone. `repeated`: set once the same failure repeated
   * often enough to be Stalled, with the step it failed at and when the drift timer tries again.
   */
  | {
    type: 'heal-failed'; entries: number | null; message: string; label: string; missing: readonly string[];
    repeated: { count: number; step: StepName; retryAt: number } | null;
  };

export function initialStatus(initial: InitialStatus | undefined, now: Date): StatusState {
  const at = now.toISOString();
  return {
    desiredRevision: null,
    lastAppliedRevision: initial?.lastAppliedRevision ?? null,
    lastAttemptedRevision: null,
    result: 'progressing',
    conditions: [
      { type: 'Ready', status: 'Unknown', reason: 'Progressing', message: 'the first reconcile has not completed', lastTransitionTime: at },
      { type: 'Reconciling', status: 'True', reason: 'Progressing', message: 'reconciling', lastTransitionTime: at },
    ],
    plan: null,
    errors: [],
    dataPlane: initial?.dataPlane ?? null,
    drift: null,
    lastAttemptedAt: null,
    lastAppliedAt: initial?.lastAppliedAt ?? null,
  };
}

/**
 * The state after `event`. Returns `state` itself when the event changes nothing worth reporting
 * (an "unchanged" run of a revision already reported live), so the caller can tell.
 */
export function reduceStatus(state: StatusState, event: StatusEvent, now: Date): StatusState {
  const at = now.toISOString();
  switch (event.type) {
    case 'desired':
      return state.desiredRevision === event.revision ? state : { ...state, desiredRevision: event.revision };

    case 'applied':
    case 'noop': {
      const applied = event.type === 'applied';
      return {
        ...state,
        lastAppliedAt: applied || state.lastAppliedRevision !== event.revision ? at : state.lastAppliedAt,
        lastAppliedRevision: event.revision,
        lastAttemptedRevision: event.revision,
        lastAttemptedAt: at,
        result: applied ? 'applied' : 'unchanged',
        plan: event.plan,
        errors: [],
        dataPlane: event.dataPlane,
        drift: null,
        conditions: succeeded(state.conditions, applied
          ? `Applied revision ${event.label}: ${event.plan.add} added, ${event.plan.change} changed, ${event.plan.destroy} destroyed`
          : `Revision ${event.label} is live: the data plane already matched it (no changes)`, now),
      };
    }

    case 'unchanged':
      // A revision equal to the applied one after other attempts (a reverted or force-pushed
      // branch): it is live, so the status says so again. Otherwise there is nothing to report.
      if (event.because !== 'applied' || event.revision === null) return state;
      if (state.result !== 'failed' && state.result !== 'stalled' && state.lastAttemptedRevision === event.revision) return state;
      return {
        ...state,
        lastAttemptedRevision: event.revision,
        lastAttemptedAt: at,
        result: 'unchanged',
        errors: [],
        conditions: succeeded(state.conditions, `Revision ${event.label} is live (unchanged)`, now),
      };

    case 'stalled': {
      const f = event.failure;
      const message = `${capitalize(stepPhrase(f.step))} of revision ${event.label} failed: ${f.message}`;
      let conditions = setCondition(state.conditions, { type: 'Stalled', status: 'True', reason: f.reason, message }, now);
      conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason: f.reason, message: servingNote(message, event.serving) }, now);
      return { ...attempted(state, event.revision, f, at), result: 'stalled', conditions: removeCondition(conditions, 'Reconciling') };
    }

    case 'failed': {
      const f = event.failure;
      const message = `${capitalize(stepPhrase(f.step))}${event.revision !== null ? ` of revision ${event.label}` : ''} failed: ${f.message}`;
      let conditions = setCondition(state.conditions, { type: 'Ready', status: 'False', reason: f.reason, message: servingNote(message, event.serving) }, now);
      conditions = setCondition(conditions, {
        type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', message: `retrying in ${formatMs(event.retryInMs)} (${f.disposition})`,
      }, now);
      return { ...attempted(state, event.revision, f, at), result: 'failed', conditions: removeCondition(conditions, 'Stalled') };
    }

    case 'drift-none': {
      const conditions = removeCondition(state.conditions, 'Degraded');
      if (!state.drift || state.drift.healed) return { ...state, conditions };
      return { ...state, drift: null, conditions: succeeded(conditions, `Revision ${event.label} is live: the drift is gone`, now) };
    }

    case 'drift-found': {
      const n = event.entries;
      return {
        ...state,
        drift: { entries: n, healed: false, detectedAt: detectedAt(state, event.fresh, at) },
        dataPlane: event.dataPlane,
        conditions: setCondition(state.conditions, {
          type: 'Ready', status: 'False', reason: 'DriftDetected',
          message: `${n} live entr${n === 1 ? 'y differs' : 'ies differ'} from revision ${event.label} (self-heal is off): ${event.differences.slice(0, 3).join('; ')}`,
        }, now),
      };
    }

    case 'drift-healed': {
      const n = event.entries;
      return {
        ...state,
        drift: { entries: n, healed: true, detectedAt: detectedAt(state, event.fresh, at) },
        dataPlane: event.dataPlane,
        conditions: setCondition(removeCondition(removeCondition(state.conditions, 'Stalled'), 'Degraded'), {
          type: 'Ready', status: 'True', reason: 'DriftCorrected',
          message: `${n} live entr${n === 1 ? 'y' : 'ies'} had drifted from revision ${event.label}; re-applied it`,
        }, now),
      };
    }

    case 'heal-failed': {
      const { missing, repeated } = event;
      let conditions: Condition[];
      if (missing.length > 0) {
        // An interface the config names is gone (a container or VM restart in progress): the rest
        // of the applied state still serves; the link event of its return heals it.
        conditions = setCondition(state.conditions, {
          type: 'Degraded', status: 'True', reason: 'InterfaceMissing',
          message: `interface${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of revision ${event.label} ${missing.length > 1 ? 'are' : 'is'} missing; ` +
            'everything else keeps serving, and lb re-attaches when it appears',
        }, now);
      } else {
        conditions = setCondition(state.conditions, { type: 'Ready', status: 'False', reason: 'DriftHealFailed', message: event.message }, now);
        if (repeated) {
          conditions = setCondition(conditions, {
            type: 'Stalled', status: 'True', reason: 'DriftHealFailing',
            message: `healing the drift failed ${repeated.count} times the same way, at the ${stepPhrase(repeated.step)} step: ${event.message}; ` +
              `the drift timer retries from ${new Date(repeated.retryAt).toISOString()}; a link event or a drift check on the control socket heals at once`,
          }, now);
        }
      }
      const drift = event.entries !== null ? { entries: event.entries, healed: false, detectedAt: state.drift?.detectedAt ?? at } : state.drift;
      return { ...state, drift, conditions };
    }
  }
}

/** Ready True with `message`; nothing is reconciling, stalled or degraded any more. */
function succeeded(conditions: readonly Condition[], message: string, now: Date): Condition[] {
  const ready = setCondition(conditions, { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message }, now);
  return removeCondition(removeCondition(removeCondition(ready, 'Reconciling'), 'Stalled'), 'Degraded');
}

/** The fields every failed attempt sets. */
function attempted(state: StatusState, revision: string | null, f: FailureFacts, at: string): StatusState {
  return {
    ...state,
    lastAttemptedRevision: revision ?? state.lastAttemptedRevision,
    lastAttemptedAt: at,
    errors: f.errors,
    plan: null,
  };
}

function detectedAt(state: StatusState, fresh: boolean, at: string): string {
  return !fresh && state.drift ? state.drift.detectedAt : at;
}

function servingNote(message: string, serving: string | null): string {
  return serving !== null ? `${message}; revision ${serving} stays live` : message;
}

export function stepPhrase(s: StepName): string {
  return { fetch: 'fetch', validate: 'validation', compile: 'compilation', plan: 'planning', apply: 'apply', verify: 'verification' }[s];
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 60_000)}m`;
}
