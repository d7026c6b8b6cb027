// The per-instance runtime directory /run/lb/<instance>: the apply inventory, the apply journal and
// the instance lock live there. /run is a tmpfs: like the pinned maps in bpffs, it is gone after a
// reboot, and so is everything it describes.

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { validateInstanceName } from '../dataplane/index.js';

export const LB_RUN_ROOT = '/run/lb';

/** /run/lb/<instance> (not created). */
export function runDir(instance: string): string {
  return join(LB_RUN_ROOT, validateInstanceName(instance));
}

/** Creates the directory (mode 0700) if needed and returns it. */
export function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** fsync of a directory: makes a rename or unlink in it durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a file so that readers (and a crash at any instant) see either the old content or the
 * new, never a part: write a temporary file beside it, fsync it, rename it over the target, fsync
 * the directory.
 */
export function writeFileAtomic(path: string, content: string): void {
  const dir = join(path, '..');
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

/** Removes a file durably; false when it was not there. */
export function removeFileDurably(path: string): boolean {
  try {
    rmSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  fsyncDir(join(path, '..'));
  return true;
}
