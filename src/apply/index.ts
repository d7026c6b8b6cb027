// The apply layer's public surface: the transaction, recovery of an interrupted apply, the
// instance lock, and the raw-op model. docs/apply.md describes the transaction.

import { runDir } from '../state/run-dir.js';
import { acquireLock } from './lock.js';
import { recoverInstance, type RecoveryResult } from './recover.js';
import { runTransaction, type ApplyRequest, type ApplyResult } from './transaction.js';

export { acquireLock, type InstanceLock } from './lock.js';
export { journalExists, journalPath, readJournal, type Journal } from './journal.js';
export {
  CONFIG_MAPS, canonicalText, describeOp, diffGeneration, firstDifference, restoreOps,
  type ConfigMapName, type RawOp, type SavedEntry,
} from '../core/ops.js';
export { executeOps } from './execute-ops.js';
export { forgetApplied } from './delta.js';
export { recoverInstance, type RecoveryOutcome, type RecoveryResult } from './recover.js';
export {
  generationDigest, parseFaultSpec, runTransaction, stableJson,
  type ApplyRequest, type ApplyResult, type FaultAction, type FaultPoint,
} from './transaction.js';

/** Runs fn holding the instance lock (LB_APPLY_LOCKED when another lb process holds it). */
export async function withInstanceLock<T>(instance: string, fn: () => T | Promise<T>): Promise<T> {
  const lock = acquireLock(runDir(instance), instance);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** Lock, recover a leftover journal, run the transaction: the whole apply for programmatic callers. */
export function applyGeneration(req: ApplyRequest): ApplyResult & { recovered: RecoveryResult | null } {
  const lock = acquireLock(runDir(req.instance), req.instance);
  try {
    const recovered = recoverInstance(req.instance);
    return { ...runTransaction(req), recovered };
  } finally {
    lock.release();
  }
}
