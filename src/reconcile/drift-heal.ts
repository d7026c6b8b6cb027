// Drift checks and heals. A check compares the live maps with the last applied state (drift.ts);
// with self-heal on, drift is healed by re-applying that state through the same apply-and-verify
// step a reconcile uses, encoded anew for the host as it is now.
//
// A heal failing the same way twice in a row is no passing fault: the status says Stalled, and
// the drift timer's checks back off (doubling from 30 s to 10 min). A link event or a check asked
// for by hand heals at once, whatever the backoff.

import { isLbError } from '../core/errors.js';
import type { Logger } from '../log.js';
import type { ListenerNameTable } from '../observe/events/listener-names.js';
import { applyAndVerify } from './apply-verify.js';
import type { Clock } from './clock.js';
import type { DriftFinding } from './drift.js';
import type { ReconcileEngine } from './engine.js';
import { classifyFailure, StepError, type StepName } from './failure.js';
import type { StatusEvent, StatusState } from './status-reducer.js';
import type { AppliedState, DriftCheckResult, ReconcileMetricsSink } from './types.js';

/** A heal failing the same way this often is Stalled, and the drift timer backs off. */
export const HEAL_STALL_AFTER = 2;
export const HEAL_BACKOFF_BASE_MS = 30_000;
export const HEAL_BACKOFF_MAX_MS = 600_000;

/** Where the healer reports: the loop's status, and its publishing. */
export interface StatusPort {
  readonly status: StatusState;
  dispatch(event: StatusEvent): void;
  publish(): void;
  /** The listener names of the generation a heal applied and read back. */
  names(table: ListenerNameTable): void;
}

export interface DriftHealerOptions {
  engine: ReconcileEngine;
  selfHeal: boolean;
  clock: Clock;
  log: Logger;
  metrics?: ReconcileMetricsSink | undefined;
  port: StatusPort;
}

export class DriftHealer {
  private readonly o: DriftHealerOptions;
  /** The differences of the last drift found: the same drift again is not counted or logged again. */
  private lastKey: string | null = null;
  /** The last failed heal: its failure, how often in a row, and when the drift timer may retry. */
  private failure: { key: string; count: number; retryAt: number } | null = null;

  constructor(opts: DriftHealerOptions) {
    this.o = opts;
  }

  /** A new state was applied: drift found from now on is new. */
  forget(): void {
    this.lastKey = null;
  }

  /**
   * Checks the live maps against `applied` under the instance lock, and heals. `label` names the
   * applied revision in messages. `urgent`: heal even while failed heals back off.
   */
  async check(applied: AppliedState, label: string, urgent: boolean): Promise<DriftCheckResult> {
    const { engine, port, log } = this.o;
    let finding: DriftFinding | null = null;
    try {
      return await engine.withLock(async () => {
        const read = await engine.readDrift(applied.request, applied.desired);
        finding = read.finding;
        if (!finding) {
          const gone = port.status.drift !== null && !port.status.drift.healed;
          port.dispatch({ type: 'drift-none', label });
          if (gone) {
            this.lastKey = null;
            log.info({ component: 'drift', revision: applied.revision }, 'the drift is gone');
            port.publish();
          }
          this.failure = null;
          return { finding: null, healed: false };
        }
        // The live state is not the applied one any more: plans read the maps until an apply is verified.
        delete applied.mark;
        const key = finding.differences.join('\n');
        const fresh = key !== this.lastKey;
        this.lastKey = key;
        if (fresh) {
          this.o.metrics?.driftDetected();
          log.warn({ component: 'drift', revision: applied.revision, entries: finding.entries, differences: finding.differences, selfHeal: this.o.selfHeal },
            `drift detected: ${finding.entries} live entr${finding.entries === 1 ? 'y differs' : 'ies differ'} from revision ${label}`);
        }
        if (!this.o.selfHeal) {
          port.dispatch({ type: 'drift-found', entries: finding.entries, differences: finding.differences, fresh, label, dataPlane: read.dataPlane });
          if (fresh) port.publish();
          return { finding, healed: false };
        }
        const backoff = this.failure;
        if (!urgent && backoff && backoff.count >= HEAL_STALL_AFTER && this.o.clock.now() < backoff.retryAt) {
          return { finding, healed: false, note: `healing failed ${backoff.count} times the same way; next attempt at ${new Date(backoff.retryAt).toISOString()}` };
        }
        const recovered = engine.recover();
        if (recovered) log.warn({ component: 'drift', outcome: recovered.outcome }, recovered.message);
        // Encoded anew: the applied bytes name interfaces by ifindex, and an interface deleted
        // and created again (a container or VM restart) has a new one. Re-applying the old bytes
        // would fail its read-back on every tick, forever.
        const { readBack, mark } = await applyAndVerify(engine, applied.request, applied.desired, {
          reencode: true,
          message: (left) => `after re-applying revision ${label}, ${left.entries} entries still differ: ${left.differences.slice(0, 3).join('; ')}`,
          // What is live from here on is the request encoded anew, even when its read-back fails.
          onApplied: (request) => { applied.request = request; },
        });
        if (mark !== null) applied.mark = mark;
        port.dispatch({ type: 'drift-healed', entries: finding.entries, fresh, label, dataPlane: readBack.dataPlane });
        if (readBack.names) port.names(readBack.names);
        this.lastKey = null;
        this.failure = null;
        log.info({ component: 'drift', revision: applied.revision, entries: finding.entries }, `drift healed: re-applied revision ${label}`);
        port.publish();
        return { finding, healed: true };
      });
    } catch (err) {
      const cause = err instanceof StepError ? err.cause : err;
      if (isLbError(cause, 'LB_APPLY_LOCKED')) {
        return { finding, healed: false, note: 'the instance lock is held by another lb process; checking again at the next tick' };
      }
      return this.failed(cause, finding, label);
    }
  }

  private failed(cause: unknown, found: DriftFinding | null, label: string): DriftCheckResult {
    const f = classifyFailure(cause);
    this.o.log.error({ component: 'drift', reason: f.reason, code: f.code, errors: f.errors }, `healing the drift failed: ${f.message}`);
    const missing = isLbError(cause, 'LB_COMPILE_IFACE') ? ((cause.data as { interfaces?: string[] }).interfaces ?? []) : [];
    // A heal is an apply and its read-back: the step is one of those, whatever classifyFailure's default.
    const step: StepName = isLbError(cause, 'LB_APPLY_VERIFY') ? 'verify' : 'apply';
    const failKey = `${step}|${f.reason}|${f.message}`;
    const count = this.failure?.key === failKey ? this.failure.count + 1 : 1;
    const retryAt = this.o.clock.now() + Math.min(HEAL_BACKOFF_MAX_MS, HEAL_BACKOFF_BASE_MS * 2 ** Math.max(0, count - HEAL_STALL_AFTER));
    this.failure = { key: failKey, count, retryAt };
    this.o.port.dispatch({
      type: 'heal-failed', entries: found?.entries ?? null, message: f.message, label, missing,
      repeated: count >= HEAL_STALL_AFTER ? { count, step, retryAt } : null,
    });
    this.o.port.publish();
    return { finding: found, healed: false, note: f.message };
  }
}
