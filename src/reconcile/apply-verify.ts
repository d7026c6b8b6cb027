// The apply and verify steps, as one function for both callers: a reconcile applying a new plan,
// and a drift heal re-applying the applied state. Verify reads the live maps again right after
// the apply: they must hold exactly what was applied (drift must be none), or the apply did not
// take, and LB_APPLY_VERIFY says what still differs. The engine applies and reads back where it
// runs them (the daemon: its apply worker, off the event loop); the verdict is made here.

import type { ApplyRequest, ApplyResult } from '../apply/index.js';
import { LbError } from '../core/errors.js';
import type { LogicalState } from '../core/state.js';
import type { LiveMark } from '../state/known-live.js';
import type { ReadBack } from './applied-read.js';
import type { DriftFinding } from './drift.js';
import type { ReconcileEngine } from './engine.js';
import { step, stepSync } from './failure.js';

export { expectedOf } from './applied-read.js';

export interface AppliedAndVerified {
  /** The request as applied (encoded anew when asked). */
  request: ApplyRequest;
  result: ApplyResult;
  /** The live state read back, matching the request: its summaries. */
  readBack: ReadBack;
  /** Where the maps stood right after the apply (AppliedRead.mark). */
  mark: LiveMark | null;
}

/** The verify error's message, from what still differs after the apply. */
export type VerifyMessage = (left: DriftFinding) => string;

export const afterApplyMessage: VerifyMessage = (d) =>
  `after the apply, ${d.entries} live entr${d.entries === 1 ? 'y differs' : 'ies differ'} from the applied state: ${d.differences.slice(0, 3).join('; ')}`;

export interface ApplyAndVerifyOptions {
  /** The verify error's message (default: afterApplyMessage). */
  message?: VerifyMessage;
  /** Encode the request anew for the host's interface indexes first (a heal). */
  reencode?: boolean;
  /** Called once the apply took, before the verdict: what is live now is `request`, verified or not. */
  onApplied?: (request: ApplyRequest, result: ApplyResult) => void;
}

/**
 * Applies `request` (the caller holds the instance lock), then verifies the live maps hold it.
 * Throws StepError of the apply or the verify step.
 */
export async function applyAndVerify(engine: ReconcileEngine, request: ApplyRequest, desired: LogicalState, opts: ApplyAndVerifyOptions = {}): Promise<AppliedAndVerified> {
  const message = opts.message ?? afterApplyMessage;
  const applied = await step('apply', () => engine.applyAndRead(request, desired, { reencode: opts.reencode ?? false }));
  opts.onApplied?.(applied.request, applied.result);
  const got = applied.readBack;
  const readBack = stepSync('verify', () => {
    if ('error' in got) throw got.error;
    if (got.left) throw new LbError('LB_APPLY_VERIFY', message(got.left), { entries: got.left.entries });
    return got;
  });
  return { request: applied.request, result: applied.result, readBack, mark: applied.mark };
}
