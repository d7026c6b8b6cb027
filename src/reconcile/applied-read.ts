// What an apply and its read-back come to, as the loop needs it: the ApplyResult, what the live
// maps still differ in from the request (the verify step decides on it), and the small summaries
// the status and the event hub take from the live state read (not the live state itself: with
// 10,000 listeners it is megabytes, and the daemon's apply worker would have to send it across).
//
// inProcess*() are the engine's functions on the calling thread (tools, tests, the daemon with
// its workers turned off); the daemon's apply worker (apply-work.ts) calls the same.

import type { ApplyRequest, ApplyResult } from '../apply/index.js';
import type { LogicalState } from '../core/state.js';
import { listenerNamesOf, type ListenerNameTable } from '../observe/events/listener-names.js';
import type { LiveMark } from '../state/known-live.js';
import type { LiveState } from '../state/live.js';
import { detectDrift, type DriftFinding, type ExpectedState } from './drift.js';
import { dataPlaneSummary, type DataPlaneSummary } from './status.js';

/** The live maps read back, compared with what was applied. */
export interface ReadBack {
  /** What still differs from the applied state; null: nothing. */
  left: DriftFinding | null;
  dataPlane: DataPlaneSummary;
  /** The names of the generation read, for the connection events; null when nothing is pinned. */
  names: ListenerNameTable | null;
}

export interface AppliedRead {
  /** The request as applied: encoded anew for the host's interface indexes when that was asked. */
  request: ApplyRequest;
  result: ApplyResult;
  /** The read-back right after the apply, or why it could not be made (the verify step fails). */
  readBack: ReadBack | { error: unknown };
  /**
   * Where the maps stood right after the transaction (src/state/known-live.ts): a later plan
   * trusts the applied state instead of reading the maps while they still stand there. Null when
   * not known (the instance is gone, or lb_ctl moved between the transaction and this read).
   */
  mark: LiveMark | null;
}

/** A drift check's read: what differs from the applied state, and the data plane as read. */
export interface DriftRead {
  finding: DriftFinding | null;
  dataPlane: DataPlaneSummary;
}

/** What an apply of `request` must leave live. */
export function expectedOf(request: ApplyRequest, desired: LogicalState): ExpectedState {
  return { generation: request.generation, interfaces: request.interfaces, desired };
}

export function readBackOf(live: LiveState, request: ApplyRequest, desired: LogicalState): ReadBack {
  return { left: detectDrift(expectedOf(request, desired), live), dataPlane: dataPlaneSummary(live), names: live.exists ? listenerNamesOf(live) : null };
}

/** The engine's synchronous parts an in-process apply and read uses. */
export interface SyncEngineParts {
  apply(req: ApplyRequest): ApplyResult;
  readLive(): LiveState;
  reencode(req: ApplyRequest): ApplyRequest;
  /** Where the maps stand now (readLiveMark); absent: never known. */
  mark?(): LiveMark | null;
}

/** Applies (encoded anew first with `reencode`), then reads the live maps back, on this thread. */
export function inProcessApplyAndRead(parts: SyncEngineParts, request: ApplyRequest, desired: LogicalState, reencode: boolean): AppliedRead {
  const req = reencode ? parts.reencode(request) : request;
  const result = parts.apply({ ...req });
  // Taken before the read-back, which is the verify step's business: a plan trusts the applied
  // state only once the run (or heal) that applied it passed its verify.
  const now = parts.mark?.() ?? null;
  const mark = now !== null && now.activeGen === result.activeGen && now.serial === result.serial ? now : null;
  let readBack: AppliedRead['readBack'];
  try {
    readBack = readBackOf(parts.readLive(), req, desired);
  } catch (error) {
    readBack = { error };
  }
  return { request: req, result, readBack, mark };
}

export function inProcessReadDrift(parts: Pick<SyncEngineParts, 'readLive'>, request: ApplyRequest, desired: LogicalState): DriftRead {
  const live = parts.readLive();
  return { finding: detectDrift(expectedOf(request, desired), live), dataPlane: dataPlaneSummary(live) };
}
