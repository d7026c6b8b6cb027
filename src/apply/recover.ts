// Recovery of an interrupted apply: a journal left in /run/lb/<instance> means an apply died
// between writing it and removing it. lb_ctl tells which side of the flip it died on:
//
// - lb_ctl = (target generation, the journal's post-flip serial): the flip happened, packets use the
//   new configuration. If that generation's bytes match the journal's digest, finish the apply
//   (detach what it scheduled for removal, write its inventory). If they do not, the apply died
//   after the flip but the read-back would have failed: flip back and restore, as a failed apply.
// - lb_ctl's active generation is the old one: the flip never happened, or was undone. Restore the
//   inactive generation to the saved bytes and detach the interfaces the apply had attached.
// - anything else: someone else wrote lb_ctl since; refuse to guess (LB_APPLY_JOURNAL).
//
// Either way the journal is removed and the live state is exactly the old or the new configuration.
// The caller holds the instance lock.

import { existsSync } from 'node:fs';
import { DataPlane, readCtl, readGenerationRaw } from '../dataplane/index.js';
import { LbError } from '../core/errors.js';
import { instanceExists } from '../state/live.js';
import { runDir } from '../state/run-dir.js';
import { journalExists, journalPath, legacyJournalPath, readJournal, removeJournal, type Journal } from './journal.js';
import { currentNetns, finish, generationDigest, undoJournal } from './transaction.js';

export type RecoveryOutcome = 'completed' | 'rolled-back' | 'discarded';

export interface RecoveryResult {
  outcome: RecoveryOutcome;
  /** Null when it was discarded unread (its instance has no pins). */
  journal: Journal | null;
  /** One sentence for the operator. */
  message: string;
  warnings: string[];
}

/** Resolves a leftover journal of the instance; null when there is none. */
export function recoverInstance(instance: string): RecoveryResult | null {
  const dir = runDir(instance);
  // An instance without pins has nothing a journal could restore (a reboot, \`lb down\`): discarded
  // unread, so a journal torn by a host crash (it is not fsynced: journal.ts) never blocks an apply.
  if (!instanceExists(instance)) {
    if (!journalExists(dir)) return null;
    removeJournal(dir);
    return { outcome: 'discarded', journal: null, warnings: [], message: `found the journal of an interrupted apply, but instance ${instance} has no pinned state any more; removed it` };
  }
  const journal = readJournal(dir);
  if (journal === null) return null;
  const who = `an interrupted apply (pid ${journal.pid}, started ${journal.startedAt})`;
  const netns = currentNetns();
  if (journal.netns !== netns && journal.attach.length + journal.detach.length > 0) {
    throw new LbError('LB_APPLY_JOURNAL',
      `${who} of instance ${instance} ran in network namespace ${journal.netns} and changed interfaces there (${[...journal.attach, ...journal.detach].join(', ')}); ` +
      `this process runs in ${netns}. Run \`lb plan\` or \`lb apply\` in that namespace (nsenter --net=...) to recover it`,
      { instance, journalNetns: journal.netns, netns });
  }

  const dp = DataPlane.open({ instance });
  try {
    const ctl = readCtl(dp);
    if (ctl.activeGen === journal.targetGen && ctl.serial === journal.postFlipSerial) {
      const digest = generationDigest(readGenerationRaw(dp, journal.targetGen));
      if (digest === journal.desiredDigest) {
        const warnings = finish(dp, dir, journal);
        return { outcome: 'completed', journal, warnings,
          message: `recovered ${who}: it had flipped to generation ${journal.targetGen} and the new configuration verifies; finished it (the new configuration is live)` };
      }
      undoJournal(dp, journal, true);
      removeJournal(dir);
      return { outcome: 'rolled-back', journal, warnings: [],
        message: `recovered ${who}: it had flipped, but generation ${journal.targetGen} does not hold what it meant to write; flipped back and restored (the previous configuration is live)` };
    }
    if (ctl.activeGen === journal.oldCtl.activeGen) {
      undoJournal(dp, journal, false);
      removeJournal(dir);
      return { outcome: 'rolled-back', journal, warnings: [],
        message: `recovered ${who}: it had not flipped; restored the inactive generation${journal.attach.length > 0 ? ` and detached ${journal.attach.join(', ')}` : ''} (the previous configuration is live)` };
    }
    throw new LbError('LB_APPLY_JOURNAL',
      `${who} of instance ${instance} expected lb_ctl at generation ${journal.oldCtl.activeGen} (before) or generation ${journal.targetGen} serial ${journal.postFlipSerial} (after its flip), ` +
      `but lb_ctl is at generation ${ctl.activeGen} serial ${ctl.serial}: something else changed the data plane. Check it with \`lb show maps\`, then remove ${existsSync(journalPath(dir)) ? journalPath(dir) : legacyJournalPath(dir)}`,
      { instance, ctl, journal: { targetGen: journal.targetGen, postFlipSerial: journal.postFlipSerial } });
  } finally {
    dp.close();
  }
}
