// The typed errors of the reconcile steps and what each tells the loop (docs/design.md §5, after Flux). A step that
// fails throws a StepError naming the step; classifyFailure() turns it into a disposition, a
// CamelCase reason, a one-line message and the report's errors. The loop, not the throw site,
// decides logging, retries and status.
//
//   stalling   a human must act: the revision is not retried; a new revision (or a forced
//              reconcile) tries again
//   waiting    a precondition is not met yet (the instance lock is held, an interface is missing):
//              retried after retryAfterMs, not counted as a failure
//   transient  retried with exponential backoff
// The last applied revision stays live in every case: nothing reaches the maps before the apply
// step, and a failed apply is rolled back by the transaction.

import { ConfigError } from '../core/config/config-error.js';
import { isLbError } from '../core/errors.js';
import { reportErrorsFrom } from '../report/report-errors.js';
import type { ReportError } from '../report/types.js';
import { dispositionOf, type Disposition } from '../source/disposition.js';

export type StepName = 'fetch' | 'validate' | 'compile' | 'plan' | 'apply' | 'verify';

export class StepError extends Error {
  readonly step: StepName;
  constructor(step: StepName, cause: unknown) {
    super(`${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StepError';
    this.step = step;
  }
}

export interface StepFailure {
  step: StepName;
  disposition: Disposition;
  /** CamelCase, for the Ready / Stalled conditions. */
  reason: string;
  /** One line (the first error, with its position when it has one). */
  message: string;
  errors: ReportError[];
  retryAfterMs?: number;
  /** The revision the failure concerns when the error names it (e.g. an unsigned commit). */
  revision?: string;
  /** LbError code, or LB_INTERNAL. */
  code: string;
  cause: unknown;
}

/** How long to wait before retrying when the instance lock is held by another lb process. */
export const LOCKED_RETRY_MS = 1000;
/** How long to wait for a missing network interface to appear. */
export const IFACE_RETRY_MS = 5000;

interface Rule { disposition: Disposition; reason: string; retryAfterMs?: number }

const RULES: Partial<Record<string, Rule>> = {
  LB_APPLY_LOCKED: { disposition: 'waiting', reason: 'InstanceLocked', retryAfterMs: LOCKED_RETRY_MS },
  LB_COMPILE_IFACE: { disposition: 'waiting', reason: 'InterfaceMissing', retryAfterMs: IFACE_RETRY_MS },
  LB_COMPILE_LIMIT: { disposition: 'stalling', reason: 'CompileFailed' },
  LB_COMPILE_INVALID: { disposition: 'stalling', reason: 'CompileFailed' },
  LB_BPF_ABI: { disposition: 'stalling', reason: 'CompileFailed' },
  LB_APPLY_JOURNAL: { disposition: 'stalling', reason: 'ApplyJournalConflict' },
  LB_APPLY_FAILED: { disposition: 'transient', reason: 'ApplyFailed' },
  LB_APPLY_ROLLBACK: { disposition: 'transient', reason: 'RollbackFailed' },
  LB_APPLY_VERIFY: { disposition: 'transient', reason: 'VerificationFailed' },
  LB_BPF_LOAD: { disposition: 'stalling', reason: 'DataPlaneLoadFailed' },
  // A deadline missed on a busy host may pass next time; a config too big for the worker fails
  // again at every retry, spaced by the backoff (up to 5 min).
  LB_DAEMON_PREPARE: { disposition: 'transient', reason: 'PrepareWorkerFailed' },
};

export function classifyFailure(err: unknown, rootDir?: string): StepFailure {
  const step = err instanceof StepError ? err.step : 'fetch';
  const cause = err instanceof StepError ? err.cause : err;
  const errors = reportErrorsFrom(cause, rootDir);
  const code = isLbError(cause) ? cause.code : 'LB_INTERNAL';
  let rule: Rule;
  if (cause instanceof ConfigError) {
    const stage = cause.data['stage'];
    rule = { disposition: 'stalling', reason: stage === 'compile' ? 'CompileFailed' : stage === 'io' ? 'ConfigUnreadable' : 'ConfigInvalid' };
  } else {
    rule = (isLbError(cause) ? RULES[cause.code] : undefined) ?? dispositionOf(cause);
  }
  const revision = isLbError(cause) && typeof cause.data['revision'] === 'string' && /^[0-9a-f]{40}$/.test(cause.data['revision'] as string)
    ? (cause.data['revision'] as string) : undefined;
  return {
    step,
    disposition: rule.disposition,
    reason: rule.reason,
    message: oneLine(errors),
    errors,
    ...(rule.retryAfterMs !== undefined ? { retryAfterMs: rule.retryAfterMs } : {}),
    ...(revision !== undefined ? { revision } : {}),
    code,
    cause,
  };
}

function oneLine(errors: readonly ReportError[]): string {
  const first = errors[0];
  if (!first) return 'unknown error';
  const where = first.file ? `${first.file}${first.line !== undefined ? `:${first.line}:${first.column ?? 0}` : ''}: ` : '';
  const pointer = first.pointer ? `${first.pointer}: ` : '';
  // A ConfigError message starts with a summary line; the diagnostic itself is what helps.
  const text = first.message.split('\n')[0]!;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length === 2 ? '' : 's'})` : '';
  return `${where}${pointer}${text}${more}`;
}

/** Runs fn as the named step: any error becomes a StepError of that step (an inner StepError passes). */
export async function step<T>(name: StepName | ((err: unknown) => StepName), fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StepError) throw err;
    throw new StepError(typeof name === 'function' ? name(err) : name, err);
  }
}

/** The same for synchronous steps. */
export function stepSync<T>(name: StepName, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StepError) throw err;
    throw new StepError(name, err);
  }
}
