// The apply and verify steps, as one function for both callers: a reconcile applying a new plan,
// and a drift heal re-applying the applied state. Verify reads the live maps again right after
// the apply: they must hold exactly what was applied (drift must be none), or the apply did not
// take, and LB_APPLY_VERIFY says what still differs.

import type { ApplyRequest, ApplyResult } from '../apply/index.js';
import { LbError } from '../core/errors.js';
import type { LogicalState } from '../core/state.js';
import type { LiveState } from '../state/live.js';
import { detectDrift, type DriftFinding, type ExpectedState } from './drift.js';
import type { ReconcileEngine } from './engine.js';
import { stepSync } from './failure.js';

export interface AppliedAndVerified {
  result: ApplyResult;
  /** The live state read back, matching the request. */
  live: LiveState;
}

/** What an apply of `request` must leave live. */
export function expectedOf(request: ApplyRequest, desired: LogicalState): ExpectedState {
  return { generation: request.generation, interfaces: request.interfaces, desired };
}

/** The verify error's message, from what still differs after the apply. */
export type VerifyMessage = (left: DriftFinding) => string;

export const afterApplyMessage: VerifyMessage = (d) =>
  `after the apply, ${d.entries} live entr${d.entries === 1 ? 'y differs' : 'ies differ'} from the applied state: ${d.differences.slice(0, 3).join('; ')}`;

export interface ApplyAndVerifyOptions {
  /** The verify error's message (default: afterApplyMessage). */
  message?: VerifyMessage;
  /** Called once the apply took, before the read-back: what is live now is `request`, verified or not. */
  onApplied?: (result: ApplyResult) => void;
}

/**
 * Applies `request` (the caller holds the instance lock), then verifies the live maps hold it.
 * Throws StepError of the apply or the verify step.
 */
export function applyAndVerify(engine: ReconcileEngine, request: ApplyRequest, desired: LogicalState, opts: ApplyAndVerifyOptions = {}): AppliedAndVerified {
  const message = opts.message ?? afterApplyMessage;
  const result = stepSync('apply', () => engine.apply({ ...request }));
  opts.onApplied?.(result);
  const live = stepSync('verify', () => {
    const after = engine.readLive();
    const left = detectDrift(expectedOf(request, desired), after);
    if (left) throw new LbError('LB_APPLY_VERIFY', message(left), { entries: left.entries });
    return after;
  });
  return { result, live };
}
