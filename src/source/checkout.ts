// Writes one revision's config (the tree or file at a sub-path of a commit) to a directory of its
// own. Each revision gets its own immutable directory, so the config the daemon last applied stays
// on disk, unchanged, while the next revision is fetched and checked.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as git from 'isomorphic-git';
import { SourceError } from './disposition.js';
import { ObjectSizer } from './object-size.js';
import { formatBytes } from './pack-guard.js';

export interface CheckoutLimits {
  /** At most this many files (default 10 000). */
  maxFiles: number;
  /** At most this many bytes in all (default 64 MiB); no object (blob, tree, commit) may be larger either. */
  maxBytes: number;
  /**
   * No pack file the objects are read from may be larger (default 256 MiB): isomorphic-git reads a
   * whole pack into memory to take one object out of it.
   */
  maxPackBytes?: number;
}

export const DEFAULT_MAX_PACK_BYTES = 256 * 1024 * 1024;
export const DEFAULT_CHECKOUT_LIMITS: CheckoutLimits = { maxFiles: 10_000, maxBytes: 64 * 1024 * 1024, maxPackBytes: DEFAULT_MAX_PACK_BYTES };

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
  sizer: ObjectSizer;
  /** The fetch asked the server to leave out blobs over the object cap (so a missing blob most likely is one). */
  filtered: boolean;
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
  /** The objects were fetched with a filter that leaves out blobs over the cap. */
  filtered?: boolean;
}): Promise<{ kind: 'tree' | 'blob' }> {
  const cache = opts.cache ?? {};
  const walk: Walk = {
    gitdir: opts.gitdir,
    cache,
    sizer: new ObjectSizer(opts.gitdir),
    filtered: opts.filtered ?? false,
    limits: opts.limits ?? DEFAULT_CHECKOUT_LIMITS,
    files: 0,
    bytes: 0,
    revision: opts.commitOid,
  };
  await checkObject(walk, opts.commitOid, 'commit', '');
  const { commit } = await git.readCommit({ fs, gitdir: opts.gitdir, oid: opts.commitOid, cache });
  let oid = commit.tree;
  let type: 'tree' | 'blob' = 'tree';
  const segments = opts.subPath === '' ? [] : opts.subPath.split('/');
  for (const [i, name] of segments.entries()) {
    if (type !== 'tree') throw pathMissing(opts.subPath, opts.commitOid, `${segments.slice(0, i).join('/')} is a file`);
    await checkObject(walk, oid, 'tree', segments.slice(0, i).join('/') || '(the root tree)');
    const { tree } = await git.readTree({ fs, gitdir: opts.gitdir, oid, cache });
    const entry = tree.find((e) => e.path === name);
    if (!entry || (entry.type !== 'tree' && entry.type !== 'blob') || entry.mode === '120000') {
      throw pathMissing(opts.subPath, opts.commitOid, entry ? `${name} is not a file or directory` : undefined);
    }
    oid = entry.oid;
    type = entry.type;
  }

  const tmp = `${opts.dest}.tmp-${randomBytes(12).toString('hex')}`; // unguessable: never a name planted in advance
  try {
    const target = opts.subPath === '' ? tmp : join(tmp, opts.subPath);
    if (type === 'tree') {
      await mkdir(target, { recursive: true });
      await writeTree(walk, oid, target, opts.subPath);
    } else {
      await mkdir(dirname(target), { recursive: true });
      await writeBlob(walk, oid, target, opts.subPath);
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

async function writeTree(walk: Walk, treeOid: string, dir: string, repoPath: string): Promise<void> {
  await checkObject(walk, treeOid, 'tree', repoPath || '(the root tree)');
  const { tree } = await git.readTree({ fs, gitdir: walk.gitdir, oid: treeOid, cache: walk.cache });
  for (const entry of tree) {
    if (!safeName(entry.path)) {
      throw new SourceError('LB_SOURCE_CHECKOUT', `revision ${walk.revision} holds an unsafe entry name ${JSON.stringify(entry.path)}`, {
        disposition: 'stalling',
        reason: 'CheckoutRefused',
      });
    }
    const target = join(dir, entry.path);
    const path = repoPath === '' ? entry.path : `${repoPath}/${entry.path}`;
    if (entry.type === 'tree') {
      await mkdir(target);
      await writeTree(walk, entry.oid, target, path);
    } else if (entry.type === 'blob' && entry.mode !== '120000') {
      await writeBlob(walk, entry.oid, target, path);
    }
  }
}

async function writeBlob(walk: Walk, oid: string, file: string, repoPath: string): Promise<void> {
  // The sizes come from the object headers: nothing over a limit is inflated.
  const size = await checkObject(walk, oid, 'blob', repoPath);
  walk.files += 1;
  walk.bytes += size;
  if (walk.files > walk.limits.maxFiles || walk.bytes > walk.limits.maxBytes) {
    throw new SourceError(
      'LB_SOURCE_CHECKOUT',
      `revision ${walk.revision} exceeds the checkout limit (${walk.limits.maxFiles} files, ${walk.limits.maxBytes} bytes): point --path at the config directory`,
      { disposition: 'stalling', reason: 'CheckoutRefused' },
    );
  }
  const { blob } = await git.readBlob({ fs, gitdir: walk.gitdir, oid, cache: walk.cache });
  await writeFile(file, blob, { mode: 0o644 });
}

/**
 * Reads the header of object `oid` (at `repoPath`) and refuses it, before it is inflated, when it
 * is larger than the cap, rebuilt from a larger delta base, or kept in a pack over the pack cap;
 * refuses a blob the fetch left out. Returns the object's size.
 */
async function checkObject(walk: Walk, oid: string, kind: 'commit' | 'tree' | 'blob', repoPath: string): Promise<number> {
  const cap = walk.limits.maxBytes;
  const packCap = walk.limits.maxPackBytes ?? DEFAULT_MAX_PACK_BYTES;
  const where =
    kind === 'commit' ? `commit ${oid}` : kind === 'tree' ? `tree ${repoPath} (${oid}) in revision ${walk.revision}` : `${repoPath} (blob ${oid}) in revision ${walk.revision}`;
  let header;
  try {
    header = await walk.sizer.header(oid);
  } catch (err) {
    throw new SourceError('LB_SOURCE_CHECKOUT', `cannot read ${where}: ${(err as Error).message}`, { disposition: 'stalling', reason: 'CheckoutRefused' }, {
      path: repoPath,
      revision: walk.revision,
    });
  }
  if (header === undefined) {
    if (kind === 'blob' && walk.filtered) {
      throw new SourceError(
        'LB_SOURCE_CHECKOUT',
        `${where} was not fetched: the remote leaves out blobs over the ${formatBytes(cap)} object cap, so it is larger than that; keep large files out of the config path`,
        { disposition: 'stalling', reason: 'ObjectTooLarge' },
        { path: repoPath, revision: walk.revision, maxBytes: cap },
      );
    }
    return 0; // not where this reads (an old index format): isomorphic-git reports it if it is missing
  }
  const refuse = (detail: string, reason = 'ObjectTooLarge'): SourceError =>
    new SourceError('LB_SOURCE_CHECKOUT', `${where} refused without reading it: ${detail}`, { disposition: 'stalling', reason }, {
      path: repoPath,
      revision: walk.revision,
      maxBytes: cap,
    });
  if (header.size > cap) {
    throw refuse(`it is ${formatBytes(header.size)} (${header.size} bytes), over the ${formatBytes(cap)} cap on a revision's config; keep large files out of the config path`);
  }
  if (header.largestBase > cap) {
    throw refuse(`it is stored as a delta of an object of ${formatBytes(header.largestBase)}, over the ${formatBytes(cap)} cap`);
  }
  if (header.packBytes > packCap) {
    throw refuse(`it is kept in a pack of ${formatBytes(header.packBytes)}, over the ${formatBytes(packCap)} pack cap (a pack is read whole); repack the repository or follow a smaller one`, 'PackTooLarge');
  }
  return header.size;
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
