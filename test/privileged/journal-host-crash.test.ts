// The journal is not fsynced (src/apply/journal.ts): it protects BPF maps from a process that dies
// mid-apply, and whatever outlives the page cache takes the maps with it. So after a host crash on
// a host whose /run is on disk, a journal may be left torn while the instance has no pins: it is
// discarded unread, never blocking the next apply. While pins exist, a journal that cannot be read
// is still refused (which side of the flip the apply died on cannot be told). Needs root (bpffs,
// /run/lb); fails (never skips) without it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { journalPath, recoverInstance } from '../../src/apply/index.js';
import { isLbError } from '../../src/core/errors.js';
import { DataPlane } from '../../src/dataplane/index.js';
import { runDir } from '../../src/state/run-dir.js';

if (process.getuid?.() !== 0) throw new Error('journal-host-crash.test.ts must run as root: it pins BPF maps and writes /run/lb');

const instance = `t-jhc-${process.pid}-${randomBytes(3).toString('hex')}`;

/** A journal as a crash may leave one that was renamed into place but never reached the disk: zeros. */
function tornJournal(): string {
  mkdirSync(runDir(instance), { recursive: true });
  const path = journalPath(runDir(instance));
  writeFileSync(path, Buffer.alloc(4096));
  return path;
}

afterAll(() => {
  try {
    DataPlane.down(instance);
  } finally {
    rmSync(runDir(instance), { recursive: true, force: true });
  }
});

describe('a journal left by a host crash', () => {
  it('is discarded unread when the instance has no pins (they did not survive the crash either)', () => {
    const path = tornJournal();
    const r = recoverInstance(instance);
    expect(r).toMatchObject({ outcome: 'discarded', journal: null });
    expect(r!.message).toMatch(/has no pinned state any more; removed it/);
    expect(existsSync(path)).toBe(false);
    expect(recoverInstance(instance)).toBeNull();
  });

  it('is refused, not guessed at, while the instance has pins', () => {
    DataPlane.open({ instance }).close();
    const path = tornJournal();
    let error: unknown;
    try {
      recoverInstance(instance);
    } catch (err) {
      error = err;
    }
    expect(isLbError(error, 'LB_APPLY_JOURNAL')).toBe(true);
    expect(existsSync(path)).toBe(true);
  });
});
