// The bpffs side of an instance: the mount at /sys/fs/bpf and the per-instance pin directory
// /sys/fs/bpf/lb/<instance> that holds the instance's maps (pinned by name) and programs.

import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { LbError } from '../core/errors.js';
import { bpfError, native } from './libbpf.js';

export const BPFFS_ROOT = '/sys/fs/bpf';
/** Parent of every instance directory. */
export const LB_PIN_ROOT = `${BPFFS_ROOT}/lb`;
const BPF_FS_MAGIC = 0xcafe4a11;

const INSTANCE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * Checks that an instance name is safe as one bpffs path component (and in socket names):
 * 1-64 characters of letters, digits, `_`, `-`, starting with a letter or digit. No dots: bpffs
 * refuses names containing '.' (EPERM).
 */
export function validateInstanceName(instance: string): string {
  if (typeof instance !== 'string' || !INSTANCE_RE.test(instance)) {
    throw new LbError('LB_INSTANCE_NAME',
      `invalid instance name ${JSON.stringify(instance)}: use 1-64 letters, digits, '_', '-', starting with a letter or digit`,
      { instance });
  }
  return instance;
}

/** The pin directory of an instance (not created). */
export function instanceDir(instance: string): string {
  return join(LB_PIN_ROOT, validateInstanceName(instance));
}

/** Whether a bpffs is mounted at `path`. */
export function isBpffs(path: string): boolean {
  return isMountOf(path, BPF_FS_MAGIC);
}

/** Mounts bpffs at /sys/fs/bpf unless it is mounted already. */
export function ensureBpffs(): void {
  if (isBpffs(BPFFS_ROOT)) return;
  try {
    mkdirSync(BPFFS_ROOT, { recursive: true });
  } catch (err) {
    throw new LbError('LB_BPF_FS', `cannot create ${BPFFS_ROOT}: ${(err as Error).message}`, { path: BPFFS_ROOT }, { cause: err });
  }
  if (native().mount('bpf', BPFFS_ROOT, 'bpf', 0, null) !== 0) {
    const errno = native().errno();
    throw bpfError('LB_BPF_FS', `mount -t bpf bpf ${BPFFS_ROOT}`, errno, { path: BPFFS_ROOT });
  }
  if (!isBpffs(BPFFS_ROOT)) {
    throw new LbError('LB_BPF_FS', `${BPFFS_ROOT} is not a bpffs after mounting it`, { path: BPFFS_ROOT });
  }
}

export const TRACEFS_ROOT = '/sys/kernel/tracing';
const TRACEFS_MAGIC = 0x74726163;

/**
 * Mounts tracefs at /sys/kernel/tracing unless it is mounted already: libbpf finds a tracepoint's
 * id there to attach lb's tracepoint programs. systemd mounts it at boot; a minimal host (a
 * container, a microVM with its own init) may not.
 */
export function ensureTracefs(): void {
  if (isMountOf(TRACEFS_ROOT, TRACEFS_MAGIC)) return;
  if (native().mount('tracefs', TRACEFS_ROOT, 'tracefs', 0, null) !== 0) {
    const errno = native().errno();
    throw bpfError('LB_BPF_FS', `mount -t tracefs tracefs ${TRACEFS_ROOT}`, errno, { path: TRACEFS_ROOT });
  }
}

function isMountOf(path: string, magic: number): boolean {
  try {
    return statfsSync(path).type === magic;
  } catch {
    return false;
  }
}

/** Mounts bpffs if needed and creates the instance directory; returns its path. */
export function ensureInstanceDir(instance: string): string {
  const dir = instanceDir(instance);
  ensureBpffs();
  // A concurrent removeInstanceDir of the last other instance may remove the parent between the
  // two mkdirs of a recursive mkdir: retry a few times.
  for (let attempt = 1; ; attempt++) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 3) continue;
      throw new LbError('LB_BPF_FS', `cannot create ${dir}: ${(err as Error).message}`, { path: dir, instance }, { cause: err });
    }
  }
}

/** Names of the entries pinned in a directory; [] when the directory does not exist. */
export function listPins(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new LbError('LB_BPF_PIN', `cannot list ${dir}: ${(err as Error).message}`, { path: dir }, { cause: err });
  }
}

/**
 * Unpins everything in the instance directory and removes it, then removes /sys/fs/bpf/lb when no
 * other instance is left. Returns the names unpinned (empty when there was nothing).
 */
export function removeInstanceDir(instance: string): { unpinned: string[]; removedDir: boolean } {
  const dir = instanceDir(instance);
  if (!existsSync(dir)) return { unpinned: [], removedDir: false };
  const unpinned = listPins(dir);
  try {
    for (const name of unpinned) rmSync(join(dir, name), { recursive: true, force: true });
    rmdirSync(dir);
  } catch (err) {
    throw new LbError('LB_BPF_PIN', `cannot remove ${dir}: ${(err as Error).message}`, { path: dir, instance }, { cause: err });
  }
  try {
    rmdirSync(LB_PIN_ROOT);
  } catch (err) {
    // another instance still lives there (ENOTEMPTY), or it is gone already: both fine
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'ENOENT' && code !== 'EEXIST' && code !== 'EBUSY') throw err;
  }
  return { unpinned, removedDir: true };
}
