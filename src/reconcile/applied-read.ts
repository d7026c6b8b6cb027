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
import type { KnownLive, KnownLiveRead, LiveMark } from '../state/known-live.js';
import type { LiveState } from '../state/live.js';
import { attachmentDrift, detectDrift, explainDrift, type DriftFinding, type ExpectedState } from './drift.js';
import { dataPlaneSummary, type DataPlaneSummary } from './status.js';

/** The live maps read back, compared with what was applied. */
export interface ReadBack {
  /**
   * 'memory': the apply's own read-back verified what it wrote, lb_ctl and the maps stood where it
   * left them, and the host's side (attachments, data paths, route_localnet) was read; 'maps': the
   * whole active generation was read and compared.
   */
  from: 'memory' | 'maps';
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
  return { from: 'maps', left: detectDrift(expectedOf(request, desired), live), dataPlane: dataPlaneSummary(live), names: live.exists ? listenerNamesOf(live) : null };
}

/**
 * The verify step from what the apply just wrote. The transaction read back every entry it wrote
 * (a full apply: the whole generation; a delta: the part its change reaches, docs/apply.md) and
 * refused the apply otherwise; the rest of the generation is the one it remembered, unchanged
 * while lb_ctl and the maps stand where the apply left them (readKnownLive checks that, and each
 * interface's ifindex). What the transaction does not check is read here: the attachments. So
 * the verify of a 1% change costs what the change costs, not a read of 10,000 proxies; writes
 * behind lb's back that do not move lb_ctl are the drift checks' to find, which read the maps.
 */
export function readBackKnown(view: KnownLiveRead, request: ApplyRequest, desired: LogicalState): ReadBack {
  const issues = attachmentDrift(expectedOf(request, desired), view.attachments, view.state.paths);
  const interfaces = view.attachments.map((a) => a.ifname).sort();
  return {
    from: 'memory',
    left: issues.length === 0 ? null : explainDrift(desired, view.state, true, [], issues),
    dataPlane: dataPlaneSummary({ attachments: view.attachments, interfaces, state: view.state }),
    names: listenerNamesOf({ ctl: view.ctl, state: view.state, generation: request.generation }),
  };
}

/** The engine's synchronous parts an in-process apply and read uses. */
export interface SyncEngineParts {
  apply(req: ApplyRequest): ApplyResult;
  readLive(): LiveState;
  /** The live state from what was just applied, or null when the maps moved (readKnownLive). */
  readKnown?(known: KnownLive): KnownLiveRead | null;
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
    const view = mark !== null && parts.readKnown ? parts.readKnown({ desired, targetIds: req.targetIds ?? new Map(), mark }) : null;
    readBack = view !== null ? readBackKnown(view, req, desired) : readBackOf(parts.readLive(), req, desired);
  } catch (error) {
    readBack = { error };
  }
  return { request: req, result, readBack, mark };
}

export function inProcessReadDrift(parts: Pick<SyncEngineParts, 'readLive'>, request: ApplyRequest, desired: LogicalState): DriftRead {
  const live = parts.readLive();
  return { finding: detectDrift(expectedOf(request, desired), live), dataPlane: dataPlaneSummary(live) };
}
