// GitSource: follows a branch, tag or commit of a git repository (a local path, or an http(s)
// remote through isomorphic-git) and hands out each revision's config as a directory of its own.
//
// Remote fetches are shallow (depth 1) and ask only for the one ref; a poll whose ref has not moved
// costs one ref advertisement and no pack. Local refs are never trusted for the answer: the oid the
// remote advertises (or the fetch returns) is the revision, so a force-pushed branch is followed
// like any other move. On an unexpected failure the private clone is thrown away and the next fetch
// starts clean.

import * as fs from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import * as git from 'isomorphic-git';
import type { HttpClient } from 'isomorphic-git';
import { DEFAULT_CHECKOUT_LIMITS, DEFAULT_MAX_PACK_BYTES, exportRevision, normalizeSubPath, type CheckoutLimits } from './checkout.js';
import { basicAuthHeader, credentialsFrom, type CredentialsProvider, type GitAuthOptions } from './credentials.js';
import { SourceError } from './disposition.js';
import { classifyGitError } from './git-errors.js';
import { deadlineSignal, limitedHttpClient } from './http.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { verifyCommitSignature, type Keyring, type SignatureVerification } from './signature.js';
import type { Source, SourceRevision } from './types.js';
import { parseSourceUrl, type SourceLocation } from './url.js';

export interface GitSourceOptions {
  /** An http(s) URL or a local repository path (bare or with a work tree; `file://` accepted). */
  url: string;
  /** Branch, tag (`refs/tags/X` to disambiguate), full commit sha, or `HEAD` (the default branch). */
  ref?: string;
  /** The config inside the repository: a directory or a file; default the repository root. */
  path?: string;
  /** A directory the source owns: its clone and one directory per checked-out revision. */
  workDir: string;
  /** Where to read credentials (default: the LB_GIT_* environment). */
  auth?: GitAuthOptions;
  /** Overrides `auth` (tests, or a daemon that shares one provider with the status reporter). */
  credentials?: CredentialsProvider;
  /** When set, only commits signed by a key of this keyring are returned. */
  keyring?: Keyring;
  /** Fetch depth; 0 fetches full history (default 1). */
  depth?: number;
  /** Deadline of one fetch (default 60 s) and socket idle timeout (default 15 s). */
  timeoutMs?: number;
  idleTimeoutMs?: number;
  /** How many revision directories to keep (default 3; the newest is never removed). */
  keepCheckouts?: number;
  /** Start a fresh clone once this many packfiles piled up (default 64). */
  maxPacks?: number;
  /**
   * Caps on what a revision may hold. `maxBytes` also caps each object, checked in the fetched pack
   * before it is inflated (so it applies to the whole tree a fetch brings, not only to `path`);
   * `maxPackBytes` caps each fetch's download and each pack file read (default 256 MiB).
   */
  limits?: CheckoutLimits;
  /** The objects of one fetch may inflate to this much in all (default 1 GiB). */
  maxFetchInflatedBytes?: number;
  log?: Logger;
}

interface Resolved {
  /** Full ref name (refs/heads/main) or the sha itself. */
  fullRef: string;
  /** The oid the ref names: a commit, or an annotated tag; undefined when not yet known. */
  oid: string | undefined;
}

const SHA_RE = /^[0-9a-f]{40}$/;
const DEFAULT_MAX_FETCH_INFLATED_BYTES = 1024 * 1024 * 1024;

export class GitSource implements Source {
  readonly kind = 'git' as const;
  readonly description: string;
  readonly location: SourceLocation;
  readonly ref: string;
  readonly subPath: string;
  readonly workDir: string;
  private readonly opts: GitSourceOptions;
  private readonly log: Logger;
  private readonly credentials: CredentialsProvider;
  private readonly cloneDir: string;
  private readonly checkoutsDir: string;
  private readonly pathTag: string;
  private chain: Promise<unknown> = Promise.resolve();
  private resetClone = false;
  private lastFullRef: string | undefined;
  private retained: string | undefined;
  /** Some fetch into the clone asked the server to leave out blobs over the object cap. */
  private cloneFiltered = false;

  constructor(opts: GitSourceOptions) {
    this.opts = opts;
    this.location = parseSourceUrl(opts.url);
    this.ref = (opts.ref ?? 'HEAD').trim();
    if (this.ref === '' || /\s|\.\.|[~^:?*[\\]/.test(this.ref)) {
      throw new SourceError('LB_SOURCE_URL', `invalid ref ${JSON.stringify(opts.ref)}`, { disposition: 'stalling', reason: 'InvalidSourceUrl' });
    }
    this.subPath = normalizeSubPath(opts.path);
    this.workDir = resolve(opts.workDir);
    this.cloneDir = join(this.workDir, 'clone.git');
    this.checkoutsDir = join(this.workDir, 'checkouts');
    this.pathTag = createHash('sha256').update(this.subPath).digest('hex').slice(0, 8);
    this.log = opts.log ?? silentLogger;
    this.credentials =
      opts.credentials ?? credentialsFrom(opts.auth, this.location.kind === 'http' ? this.location.urlCredentials : undefined);
    const where = this.location.kind === 'local' ? this.location.path : this.location.url;
    this.description = `${where}#${this.ref}${this.subPath ? `:${this.subPath}` : ''}`;
  }

  /**
   * Whether a push to `pushedRef` (a full ref name from a webhook) can change what this source
   * follows. Before the first fetch of `HEAD` the answer is yes (the default branch is unknown).
   */
  followsRef(pushedRef: string): boolean {
    if (SHA_RE.test(this.ref)) return false;
    if (this.lastFullRef !== undefined) return pushedRef === this.lastFullRef;
    if (this.ref === 'HEAD') return true;
    if (this.ref.startsWith('refs/')) return pushedRef === this.ref;
    return pushedRef === `refs/heads/${this.ref}` || pushedRef === `refs/tags/${this.ref}`;
  }

  /**
   * Keeps the directory of `revision` (the one live in the data plane) whatever else is fetched,
   * so its config stays readable; undefined releases it. Other revisions' directories are pruned
   * to the `keepCheckouts` most recently fetched.
   */
  retain(revision: string | undefined): void {
    this.retained = revision === undefined ? undefined : this.checkoutDir(revision);
  }

  /** The git directory revisions are read from (the private clone, or the local repository). */
  async gitdir(): Promise<string> {
    return this.location.kind === 'local' ? findLocalGitdir(this.location.path) : this.cloneDir;
  }

  /** Fetches the ref and returns its revision; calls are serialized (they share one clone). */
  fetch(opts: { signal?: AbortSignal } = {}): Promise<SourceRevision> {
    const run = this.chain.then(
      () => this.fetchOnce(opts.signal),
      () => this.fetchOnce(opts.signal),
    );
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async fetchOnce(signal: AbortSignal | undefined): Promise<SourceRevision> {
    const cache = {};
    let gitdir: string;
    let resolved: { fullRef: string; commit: string };
    if (this.location.kind === 'local') {
      gitdir = await findLocalGitdir(this.location.path);
      resolved = await this.resolveLocal(gitdir, cache);
    } else {
      gitdir = this.cloneDir;
      resolved = await this.fetchRemote(this.location.url, cache, signal);
    }
    this.lastFullRef = SHA_RE.test(resolved.fullRef) ? undefined : resolved.fullRef;

    let commit: git.CommitObject;
    let signedBy: SignatureVerification | undefined;
    const rootDir = this.checkoutDir(resolved.commit);
    try {
      ({ commit } = await git.readCommit({ fs, gitdir, oid: resolved.commit, cache }));
      if (this.opts.keyring) signedBy = await verifyCommitSignature({ gitdir, oid: resolved.commit, cache }, this.opts.keyring);
      if (await exists(rootDir)) {
        const now = new Date();
        await utimes(rootDir, now, now).catch(() => undefined);
      } else {
        await mkdir(this.checkoutsDir, { recursive: true });
        await exportRevision({
          gitdir,
          commitOid: resolved.commit,
          subPath: this.subPath,
          dest: rootDir,
          cache,
          ...(this.opts.limits ? { limits: this.opts.limits } : {}),
          filtered: this.location.kind === 'http' && this.cloneFiltered,
        });
      }
      await this.pruneCheckouts(rootDir);
    } catch (err) {
      throw err instanceof SourceError ? err : this.fail(err);
    }
    if (this.location.kind === 'http') await this.compactClone();

    return {
      revision: resolved.commit,
      ref: resolved.fullRef,
      configPath: this.subPath === '' ? rootDir : join(rootDir, this.subPath),
      rootDir,
      message: commit.message.trimEnd(),
      author: `${commit.author.name} <${commit.author.email}>`,
      committedAt: new Date(commit.committer.timestamp * 1000).toISOString(),
      ...(signedBy ? { signedBy } : {}),
    };
  }

  // --- local repositories: read in place --------------------------------------------------------

  private async resolveLocal(gitdir: string, cache: object): Promise<{ fullRef: string; commit: string }> {
    try {
      if (SHA_RE.test(this.ref)) {
        await git.readCommit({ fs, gitdir, oid: this.ref, cache });
        return { fullRef: this.ref, commit: this.ref };
      }
      const candidates = this.ref === 'HEAD' || this.ref.startsWith('refs/') ? [this.ref] : [`refs/tags/${this.ref}`, `refs/heads/${this.ref}`];
      for (const name of candidates) {
        let oid: string;
        try {
          oid = await git.resolveRef({ fs, gitdir, ref: name });
        } catch (err) {
          if ((err as { code?: string }).code === 'NotFoundError') continue;
          throw err;
        }
        let fullRef = name;
        if (name === 'HEAD') fullRef = (await git.currentBranch({ fs, gitdir, fullname: true }).catch(() => undefined)) ?? 'HEAD';
        return { fullRef, commit: await peel(gitdir, oid, cache) };
      }
    } catch (err) {
      if ((err as { code?: string }).code === 'NotFoundError') throw this.refMissing();
      throw this.fail(err);
    }
    throw this.refMissing();
  }

  // --- http(s) remotes: shallow fetch into the private clone --------------------------------------

  private async fetchRemote(url: string, cache: object, signal: AbortSignal | undefined): Promise<{ fullRef: string; commit: string }> {
    const where = url;
    const deadline = deadlineSignal(this.opts.timeoutMs ?? 60_000, signal);
    const limits = this.opts.limits ?? DEFAULT_CHECKOUT_LIMITS;
    const http = limitedHttpClient({
      idleTimeoutMs: this.opts.idleTimeoutMs ?? 15_000,
      signal: deadline,
      where,
      maxResponseBytes: limits.maxPackBytes ?? DEFAULT_MAX_PACK_BYTES,
      pack: { maxObjectBytes: limits.maxBytes, maxInflatedBytes: this.opts.maxFetchInflatedBytes ?? DEFAULT_MAX_FETCH_INFLATED_BYTES },
    });
    const creds = await this.credentials();
    const headers: Record<string, string> = creds ? { Authorization: basicAuthHeader(creds) } : {};
    try {
      await this.ensureClone();
      const resolved = await this.resolveRemote(http, url, headers);
      if (resolved.oid !== undefined && (await hasCommitish(this.cloneDir, resolved.oid, cache))) {
        return { fullRef: resolved.fullRef, commit: await peel(this.cloneDir, resolved.oid, cache) };
      }
      const depth = this.opts.depth ?? 1;
      let fetched: string | null;
      try {
        const res = await git.fetch({
          fs,
          http,
          gitdir: this.cloneDir,
          url,
          ref: resolved.fullRef,
          singleBranch: true,
          tags: false,
          headers: { ...headers },
          cache,
          ...(depth > 0 ? { depth } : {}),
        });
        fetched = res.fetchHead;
        if (http.filtered) this.cloneFiltered = true;
      } catch (err) {
        // A commit the server does not have (or will not serve) fails inside the pack negotiation.
        if (SHA_RE.test(resolved.fullRef) && classifyGitError(err, { where }).code === 'LB_SOURCE_FETCH') throw this.refMissing();
        throw err;
      }
      if (fetched === null) throw this.refMissing('the repository is empty');
      const commit = await peel(this.cloneDir, fetched, cache).catch((err: unknown) => {
        // The server answers a want it cannot serve with an error line the client may not surface.
        if (SHA_RE.test(resolved.fullRef) && (err as { code?: string }).code === 'NotFoundError') throw this.refMissing();
        throw err;
      });
      // Remember the tip under its own name, so the next fetch can say what it already has.
      if (!SHA_RE.test(resolved.fullRef)) await git.writeRef({ fs, gitdir: this.cloneDir, ref: resolved.fullRef, value: commit, force: true });
      return { fullRef: resolved.fullRef, commit };
    } catch (err) {
      throw this.fail(err, where);
    }
  }

  private async resolveRemote(http: HttpClient, url: string, headers: Record<string, string>): Promise<Resolved> {
    if (SHA_RE.test(this.ref)) return { fullRef: this.ref, oid: this.ref };
    const refs = await git.listServerRefs({ http, url, headers: { ...headers }, protocolVersion: 1, symrefs: true, peelTags: true });
    if (refs.length === 0) throw this.refMissing('the repository is empty');
    const byName = new Map(refs.map((r) => [r.ref, r]));
    const candidates = this.ref === 'HEAD' || this.ref.startsWith('refs/') ? [this.ref] : [`refs/tags/${this.ref}`, `refs/heads/${this.ref}`];
    for (const name of candidates) {
      const r = byName.get(name);
      if (!r) continue;
      if (name === 'HEAD') {
        const target = r.target && byName.get(r.target) ? r.target : undefined;
        return { fullRef: target ?? 'HEAD', oid: r.oid };
      }
      return { fullRef: name, oid: r.peeled ?? r.oid };
    }
    throw this.refMissing();
  }

  private async ensureClone(): Promise<void> {
    if (this.resetClone) {
      this.resetClone = false;
      this.cloneFiltered = false;
      await rm(this.cloneDir, { recursive: true, force: true });
    }
    await ensureBareClone(this.cloneDir, 'lb');
  }

  /** Each shallow fetch adds a packfile; past a bound, start over (the next fetch re-clones). */
  private async compactClone(): Promise<void> {
    const packs = await readdir(join(this.cloneDir, 'objects', 'pack')).catch(() => [] as string[]);
    if (packs.filter((p) => p.endsWith('.pack')).length > (this.opts.maxPacks ?? 64)) this.resetClone = true;
  }

  /** Keeps the newest `keepCheckouts` revision directories (by last use) and `current`. */
  private async pruneCheckouts(current: string): Promise<void> {
    const keep = Math.max(1, this.opts.keepCheckouts ?? 3);
    const names = await readdir(this.checkoutsDir).catch(() => [] as string[]);
    const entries: { path: string; mtime: number }[] = [];
    for (const name of names) {
      const path = join(this.checkoutsDir, name);
      if (path === current || path === this.retained) continue;
      const st = await stat(path).catch(() => undefined);
      // Leftover temporaries of an interrupted export are removed too (mtime 0 sorts them last).
      if (st) entries.push({ path, mtime: name.includes('.tmp-') ? 0 : st.mtimeMs });
    }
    entries.sort((a, b) => b.mtime - a.mtime);
    for (const e of entries.slice(keep - 1)) await rm(e.path, { recursive: true, force: true }).catch(() => undefined);
  }

  private checkoutDir(revision: string): string {
    return join(this.checkoutsDir, `${revision}-${this.pathTag}`);
  }

  private refMissing(detail?: string): SourceError {
    const where = this.location.kind === 'local' ? this.location.path : this.location.url;
    return new SourceError(
      'LB_SOURCE_REF_NOT_FOUND',
      `ref ${JSON.stringify(this.ref)} not found in ${where}${detail ? ` (${detail})` : ''}`,
      { disposition: 'stalling', reason: 'RefNotFound' },
      { url: where, ref: this.ref },
    );
  }

  private fail(err: unknown, where?: string): SourceError {
    const w = where ?? (this.location.kind === 'local' ? this.location.path : this.location.url);
    const e = classifyGitError(err, { where: w, ref: this.ref });
    // A fetch refused midway (a pack over a cap) may have left the clone's shallow list half updated.
    if (e.code === 'LB_SOURCE_FETCH' || e.reason === 'ObjectTooLarge' || e.reason === 'PackTooLarge') {
      this.resetClone = this.location.kind === 'http';
      this.log.warn({ source: this.description, ...errFields(err) }, 'git fetch failed; the clone will be reset');
    }
    return e;
  }
}

/** The git directory of a local repository: `<path>/.git` (or what a `.git` file names), or `<path>` if bare. */
export async function findLocalGitdir(path: string): Promise<string> {
  const dotGit = join(path, '.git');
  const st = await stat(dotGit).catch(() => undefined);
  if (st?.isDirectory()) return dotGit;
  if (st?.isFile()) {
    const m = /^gitdir:\s*(.+)$/m.exec(await readFile(dotGit, 'utf8'));
    if (m) return resolve(path, m[1]!.trim());
  }
  if ((await exists(join(path, 'HEAD'))) && (await exists(join(path, 'objects')))) return path;
  throw new SourceError('LB_SOURCE_REPO', `${path} is not a git repository`, { disposition: 'stalling', reason: 'RepositoryNotFound' }, { url: path });
}

/**
 * Creates the bare repository of a private clone at `gitdir` unless it is there already. Remote
 * operations pass the URL on every call; fetch() still needs a refspec to file what it fetched.
 */
export async function ensureBareClone(gitdir: string, defaultBranch: string): Promise<void> {
  if (await exists(join(gitdir, 'HEAD'))) return;
  await mkdir(gitdir, { recursive: true });
  await git.init({ fs, gitdir, bare: true, defaultBranch });
  await git.setConfig({ fs, gitdir, path: 'remote.origin.fetch', value: '+refs/heads/*:refs/remotes/origin/*' });
}

/** Follows annotated tags to the commit they name (bounded). */
async function peel(gitdir: string, oid: string, cache: object): Promise<string> {
  let cur = oid;
  for (let i = 0; i < 8; i++) {
    const { type } = await git.readObject({ fs, gitdir, oid: cur, format: 'content', cache });
    if (type === 'commit') return cur;
    if (type !== 'tag') throw new SourceError('LB_SOURCE_REF_NOT_FOUND', `${oid} names a ${type}, not a commit`, { disposition: 'stalling', reason: 'RefNotFound' });
    const { tag } = await git.readTag({ fs, gitdir, oid: cur, cache });
    cur = tag.object;
  }
  throw new SourceError('LB_SOURCE_REF_NOT_FOUND', `${oid}: tag chain too long`, { disposition: 'stalling', reason: 'RefNotFound' });
}

async function hasCommitish(gitdir: string, oid: string, cache: object): Promise<boolean> {
  try {
    await peel(gitdir, oid, cache);
    return true;
  } catch {
    return false;
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
