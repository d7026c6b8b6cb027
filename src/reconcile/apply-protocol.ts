// What the daemon's thread and its apply worker say to each other (apply-worker.ts is the
// daemon's side, apply-work.ts the worker's). Large values travel in slices (transfer.ts).
//
// The worker holds the applied state the loop asks about (its request and desired state) under an
// id, so a drift check or a heal of the same state sends only the id; a fresh worker (the first,
// or one started after a failure) is sent the state again.
//   apply  {id, state?, reencode}  -> WorkerApplied (sliced): the apply, then the read-back
//   drift  {id, state?}            -> DriftRead (sliced): the live maps compared with the state

import type { ApplyRequest, ApplyResult } from '../apply/index.js';
import type { LogicalState } from '../core/state.js';
import type { LiveMark } from '../state/known-live.js';
import type { ReadBack } from './applied-read.js';
import type { WireError } from './prepare-protocol.js';

interface Addressed {
  /** The state's id: the one sent in `state`, or one this worker holds. */
  id: number;
  /** The state (HeldState, sliced) when the worker does not hold it yet. */
  state?: ArrayBuffer[];
  instance: string;
  /** Where lb's BPF objects are (an instance not loaded yet is loaded from there). */
  objectDir?: string;
}

export type ApplyWorkerRequest =
  | (Addressed & { type: 'apply'; reencode: boolean })
  | (Addressed & { type: 'drift' });

/**
 * An applied state as sent: the request without its desired state, which travels beside it once
 * (`withDesired`: the request carried it).
 */
export interface HeldState {
  request: ApplyRequest;
  desired: LogicalState;
  withDesired: boolean;
}

export interface WorkerApplied {
  /** The generation and target ids as encoded anew, when they differ from the request's. */
  reencoded?: Pick<ApplyRequest, 'generation' | 'targetIds'>;
  result: ApplyResult;
  readBack: ReadBack | { error: WireError };
  mark: LiveMark | null;
}

/** The state to send: the desired state once, not inside the request as well. */
export function heldStateOf(request: ApplyRequest, desired: LogicalState): HeldState {
  const { desired: inRequest, ...rest } = request;
  return { request: rest, desired, withDesired: inRequest !== undefined };
}

/** The request as the loop made it, from the state received. */
export function requestOf(held: HeldState): ApplyRequest {
  return held.withDesired ? { ...held.request, desired: held.desired } : held.request;
}
