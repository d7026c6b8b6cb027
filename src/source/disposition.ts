// What a failed step tells the reconcile loop to do (docs/design.md §5, after Flux). The throw site classifies; the
// loop decides logging, events and retries.
//
//   stalling   a human must act (bad ref, missing path, bad signature, refused credentials): do not
//              retry on a timer; wait for the next trigger (new commit, webhook, poll, SIGHUP).
//   waiting    a precondition is not met yet: retry after `retryAfterMs` without counting a failure.
//   transient  the world was briefly unkind (remote down, timeout): retry with backoff.
// In every case the last applied revision stays live.

import { LbError, type ErrorCode } from '../core/errors.js';

export type Disposition = 'stalling' | 'waiting' | 'transient';

/** A CamelCase reason for the Stalled/Ready conditions, e.g. "RefNotFound". */
export type Reason = string;

export interface DispositionInfo {
  disposition: Disposition;
  reason: Reason;
  retryAfterMs?: number;
}

/** An LbError that says how the reconcile loop should treat it. */
export class SourceError extends LbError {
  readonly disposition: Disposition;
  readonly reason: Reason;
  readonly retryAfterMs: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    info: DispositionInfo,
    data: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(code, message, { ...data, disposition: info.disposition, reason: info.reason }, options);
    this.name = 'SourceError';
    this.disposition = info.disposition;
    this.reason = info.reason;
    this.retryAfterMs = info.retryAfterMs;
  }
}

/**
 * How the loop should treat any error: a SourceError says so itself; an LbError may carry
 * `data.disposition`; config errors (LB_CONFIG_*) stall; anything unknown is treated as transient
 * (retrying is the safe default for a bug in the shell, and the live state is never touched).
 */
export function dispositionOf(err: unknown): DispositionInfo {
  if (err instanceof SourceError) {
    return { disposition: err.disposition, reason: err.reason, ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}) };
  }
  if (err instanceof LbError) {
    const d = err.data['disposition'];
    const reason = typeof err.data['reason'] === 'string' ? (err.data['reason'] as string) : reasonFromCode(err.code);
    if (d === 'stalling' || d === 'waiting' || d === 'transient') return { disposition: d, reason };
    if (err.code.startsWith('LB_CONFIG_')) return { disposition: 'stalling', reason };
    return { disposition: 'transient', reason };
  }
  return { disposition: 'transient', reason: 'InternalError' };
}

/** LB_SOURCE_REF_NOT_FOUND -> SourceRefNotFound. */
export function reasonFromCode(code: string): Reason {
  return code
    .replace(/^LB_/, '')
    .toLowerCase()
    .split('_')
    .map((w) => (w === '' ? '' : w[0]!.toUpperCase() + w.slice(1)))
    .join('');
}
