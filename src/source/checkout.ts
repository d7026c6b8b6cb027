// Writes one revision's config (the tree or file at a sub-path of a commit) to a directory of its
// own. Each revision gets its own immutable directory, so the config the daemon last applied stays
// on disk, unchanged, while the next revision is fetched and checked.

import * as fs from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as git from 'isomorphic-git';
import { SourceError } from './disposition.js';

export interface CheckoutLimits {
  /** At most this many files (default 10 000). */
  maxFiles: number;
  /** At most this many bytes in all (default 64 MiB). */
  maxBytes: number;
}

export const DEFAULT_CHECKOUT_LIMITS: CheckoutLimits = { maxFiles: 10_000, maxBytes: 64 * 1024 * 1024 };

/** "config/prod/" -> "config/prod"; "" and "." -> "". Rejects absolute paths and "..". */
export function normalizeSubPath(p: string | undefined): string {
  const parts = (p ?? '').split('/').filter((s) => s !== '' && s !== '.');
  if ((p ?? '').startsWith('/') || parts.some((s) => s === '..' || s.includes('\0'))) {
    throw new SourceError('LB_SOURCE_URL', `unsafe config sub-path ${JSON.stringify(p)}: it must be relative and stay inside the repository`, {
      disposition: 'stalling',
      reason: 'InvalidSourceUrl',
    });
  }
  return parts.join('/');
}

interface Walk {
  gitdir: string;
  cache: object;
  limits: CheckoutLimits;
  files: number;
  bytes: number;
  revision: string;
}

/**
 * Exports `subPath` of commit `commitOid` below `dest` (as `dest/subPath`), writing into a temporary
 * sibling and renaming it into place, so `dest` either holds the whole export or does not exist.
 * Symlinks and submodules are skipped (a config needs neither, and a link could point outside).
 */
export async function exportRevision(opts: {
  gitdir: string;
  commitOid: string;
  subPath: string;
  dest: string;
  cache?: object;
  limits?: CheckoutLimits;
}): Promise<{ kind: 'tree' | 'blob' }> {
  const cache = opts.cache ?? {};
  const { commit } = await git.readCommit({ fs, gitdir: opts.gitdir, oid: opts.commitOid, cache });
  let oid = commit.tree;
  let type: 'tree' | 'blob' = 'tree';
  const segments = opts.subPath === '' ? [] : opts.subPath.split('/');
  for (const [i, name] of segments.entries()) {
    if (type !== 'tree') throw pathMissing(opts.subPath, opts.commitOid, `${segments.slice(0, i).join('/')} is a file`);
    const { tree } = await git.readTree({ fs, gitdir: opts.gitdir, oid, cache });
    const entry = tree.find((e) => e.path === name);
    if (!entry || (entry.type !== 'tree' && entry.type !== 'blob') || entry.mode === '120000') {
      throw pathMissing(opts.subPath, opts.commitOid, entry ? `${name} is not a file or directory` : undefined);
    }
    oid = entry.oid;
    type = entry.type;
  }

  const tmp = `${opts.dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const walk: Walk = { gitdir: opts.gitdir, cache, limits: opts.limits ?? DEFAULT_CHECKOUT_LIMITS, files: 0, bytes: 0, revision: opts.commitOid };
  try {
    const target = opts.subPath === '' ? tmp : join(tmp, opts.subPath);
    if (type === 'tree') {
      await mkdir(target, { recursive: true });
      await writeTree(walk, oid, target);
    } else {
      await mkdir(dirname(target), { recursive: true });
      await writeBlob(walk, oid, target);
    }
    await rm(opts.dest, { recursive: true, force: true });
    await rename(tmp, opts.dest);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof SourceError) throw err;
    throw new SourceError(
      'LB_SOURCE_CHECKOUT',
      `cannot write revision ${opts.commitOid} to ${opts.dest}: ${(err as Error).message}`,
      { disposition: 'transient', reason: 'CheckoutFailed' },
      { revision: opts.commitOid },
      { cause: err },
    );
  }
  return { kind: type };
}

async function writeTree(walk: Walk, treeOid: string, dir: string): Promise<void> {
  const { tree } = await git.readTree({ fs, gitdir: walk.gitdir, oid: treeOid, cache: walk.cache });
  for (const entry of tree) {
    if (!safeName(entry.path)) {
      throw new SourceError('LB_SOURCE_CHECKOUT', `revision ${walk.revision} holds an unsafe entry name ${JSON.stringify(entry.path)}`, {
        disposition: 'stalling',
        reason: 'CheckoutRefused',
      });
    }
    const target = join(dir, entry.path);
    if (entry.type === 'tree') {
      await mkdir(target);
      await writeTree(walk, entry.oid, target);
    } else if (entry.type === 'blob' && entry.mode !== '120000') {
      await writeBlob(walk, entry.oid, target);
    }
  }
}

async function writeBlob(walk: Walk, oid: string, file: string): Promise<void> {
  const { blob } = await git.readBlob({ fs, gitdir: walk.gitdir, oid, cache: walk.cache });
  walk.files += 1;
  walk.bytes += blob.byteLength;
  if (walk.files > walk.limits.maxFiles || walk.bytes > walk.limits.maxBytes) {
    throw new SourceError(
      'LB_SOURCE_CHECKOUT',
      `revision ${walk.revision} exceeds the checkout limit (${walk.limits.maxFiles} files, ${walk.limits.maxBytes} bytes): point --path at the config directory`,
      { disposition: 'stalling', reason: 'CheckoutRefused' },
    );
  }
  await writeFile(file, blob, { mode: 0o644 });
}

function safeName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\\') && !name.includes('\0');
}

function pathMissing(subPath: string, oid: string, detail?: string): SourceError {
  return new SourceError(
    'LB_SOURCE_PATH_NOT_FOUND',
    `path ${JSON.stringify(subPath)} does not exist in commit ${oid}${detail ? ` (${detail})` : ''}`,
    { disposition: 'stalling', reason: 'PathNotFound' },
    { path: subPath, revision: oid },
  );
}
