// StatusBranchReporter: commits `<node>/status.json` and `<node>/status.md` to the status branch
// (default `lb-status`, an orphan branch created on first use) of the source's repository, and
// pushes. Several nodes share the branch: a push that lost a race (non-fast-forward) is rebuilt on
// the new tip, which keeps the other nodes' directories, and pushed again.
//
// Reporting never blocks reconciling: report() only stores the report; a single worker publishes
// the latest one (older unpublished reports are superseded), and a failed publish is retried with
// backoff (by default until it lands; maxRetries bounds it). A report equal to the committed one
// (apart from generatedAt) makes no commit.
//
// flush() means "the latest report is published, or its publish has failed": it resolves once the
// report queued last before the call (or a newer one that superseded it) is committed or found
// unchanged, or the retry policy gave up on it, or the reporter was stopped. A publish waiting to
// retry is still pending: callers that must not wait for the remote bound the wait themselves.

import * as fs from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import * as git from 'isomorphic-git';
import type { TreeEntry } from 'isomorphic-git';
import { LbError } from '../core/errors.js';
import { Backoff, type BackoffOptions } from '../source/backoff.js';
import { basicAuthHeader, credentialsFrom, type CredentialsProvider, type GitAuthOptions } from '../source/credentials.js';
import { classifyGitError } from '../source/git-errors.js';
import { ensureBareClone, findLocalGitdir } from '../source/git-source.js';
import { deadlineSignal, limitedHttpClient } from '../source/http.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { parseSourceUrl, type SourceLocation } from '../source/url.js';
import { renderStatusMarkdown } from './markdown.js';
import type { StatusReport } from './types.js';

export interface StatusBranchReporterOptions {
  /** The repository: the same URL or path as the source. */
  url: string;
  /** This node's directory on the branch. */
  node: string;
  /** Default `lb-status`. */
  branch?: string;
  /** A directory the reporter owns (its clone of the status branch, for http remotes). */
  workDir: string;
  auth?: GitAuthOptions;
  credentials?: CredentialsProvider;
  /** Push attempts per publish when other nodes keep winning the race (default 10). */
  maxAttempts?: number;
  /** Delay before retrying a failed publish (default 2 s doubling to 5 min). */
  retry?: BackoffOptions;
  /**
   * Retries after failed publishes in a row before the worker gives up on the report it holds
   * (flush() then resolves with the failure; the next report starts counting again). Default
   * unlimited: a daemon keeps trying until the remote is back.
   */
  maxRetries?: number;
  /**
   * Runs `fn` after `ms` (later, never synchronously), returns a cancel function; default an
   * unref'd setTimeout. Tests inject one to decide when a retry runs.
   */
  schedule?: (fn: () => void, ms: number) => () => void;
  timeoutMs?: number;
  idleTimeoutMs?: number;
  author?: { name: string; email: string };
  log?: Logger;
  /** Called after every publish (metrics). */
  onPublished?: (outcome: PublishOutcome) => void;
}

export interface PublishOutcome {
  result: 'committed' | 'unchanged' | 'failed';
  /** Tip of the status branch after the publish (the new commit when committed). */
  commit?: string;
  /** Push attempts made (more than 1 after conflicts). */
  attempts: number;
  error?: LbError;
}

const NODE_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;
const README = `# lb status branch

Each load-balancer node commits its reconcile status here as \`<node>/status.json\` (schema
\`lb.status/v1\`, see docs/gitops.md) and \`<node>/status.md\`. Written by lb; do not edit.
`;

class Conflict extends Error {}

interface Queued {
  report: StatusReport;
  /** Its place in the order of report() calls (1, 2, ...). */
  seq: number;
}

interface FlushWaiter {
  seq: number;
  resolve: (o: PublishOutcome | undefined) => void;
}

function defaultSchedule(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
}

export class StatusBranchReporter {
  readonly node: string;
  readonly branch: string;
  private readonly opts: StatusBranchReporterOptions;
  private readonly location: SourceLocation;
  private readonly log: Logger;
  private readonly credentials: CredentialsProvider;
  private readonly cloneDir: string;
  private readonly backoff: Backoff;
  private readonly schedule: (fn: () => void, ms: number) => () => void;
  private readonly maxRetries: number;
  /** The newest report not yet taken by the worker. */
  private latest: Queued | undefined;
  /** How many reports were queued, and the newest of them whose publish has settled (published, given up, stopped). */
  private queued = 0;
  private settled = 0;
  /** The worker runs (set and cleared synchronously with its check of `latest`), and its last run. */
  private working = false;
  private idle: Promise<void> = Promise.resolve();
  private closed = false;
  private cancelRetry: (() => void) | undefined;
  /** The outcome that settled report `settled`. */
  private lastOutcome: PublishOutcome | undefined;
  private waiters: FlushWaiter[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private publishedSinceReset = 0;

  constructor(opts: StatusBranchReporterOptions) {
    if (!NODE_RE.test(opts.node)) {
      throw new LbError('LB_REPORT_NODE', `node name ${JSON.stringify(opts.node)} is not 1-64 of A-Z a-z 0-9 . _ - (not starting with a dot)`, { node: opts.node });
    }
    const branch = opts.branch ?? 'lb-status';
    if (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(branch) || branch.includes('..') || branch.endsWith('.lock') || branch.endsWith('/') || branch.includes('//')) {
      throw new LbError('LB_REPORT_BRANCH', `status branch ${JSON.stringify(branch)} is not a valid branch name`, { branch });
    }
    this.opts = opts;
    this.node = opts.node;
    this.branch = branch;
    this.location = parseSourceUrl(opts.url);
    this.log = opts.log ?? silentLogger;
    this.credentials =
      opts.credentials ?? credentialsFrom(opts.auth, this.location.kind === 'http' ? this.location.urlCredentials : undefined);
    this.cloneDir = join(resolve(opts.workDir), 'status.git');
    this.backoff = new Backoff({ initialMs: 2000, maxMs: 300_000, ...opts.retry });
    this.schedule = opts.schedule ?? defaultSchedule;
    this.maxRetries = opts.maxRetries ?? Number.POSITIVE_INFINITY;
    if (!(this.maxRetries >= 0)) throw new RangeError('maxRetries must be >= 0');
  }

  /** Queues a report and returns at once; the latest queued report is the one published. */
  report(r: StatusReport): void {
    if (this.closed) return;
    if (r.node !== this.node) throw new LbError('LB_REPORT_NODE', `report for node ${r.node} given to the reporter of ${this.node}`);
    this.queued += 1;
    this.latest = { report: r, seq: this.queued };
    this.kick();
  }

  /**
   * Resolves when the latest report queued before this call is published (committed or
   * unchanged), or its publish has failed: the retry policy gave up (maxRetries) or the reporter
   * was stopped. Never while a publish waits to retry. The outcome is the one that settled it (a
   * newer report that superseded it settles it too); undefined when nothing was ever reported.
   */
  flush(): Promise<PublishOutcome | undefined> {
    if (this.settled >= this.queued) return Promise.resolve(this.lastOutcome);
    return new Promise((resolve) => this.waiters.push({ seq: this.queued, resolve }));
  }

  /** Stops the worker (an in-flight publish finishes); queued reports are dropped and their flush() resolves as failed. */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelRetry?.();
    this.cancelRetry = undefined;
    await this.chain.catch(() => undefined);
    await this.idle;
    this.latest = undefined;
    if (this.settled < this.queued) {
      this.settle(this.queued, {
        result: 'failed', attempts: 0,
        error: new LbError('LB_REPORT_PUSH', `status report for ${this.node} not published: the reporter was stopped first`, { node: this.node, reason: 'stopped' }),
      });
    }
  }

  /** Publishes one report now (serialized with the worker); never throws. */
  publish(r: StatusReport): Promise<PublishOutcome> {
    const run = this.chain.then(() => this.publishOnce(r));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private kick(): void {
    // While a retry is pending, the timer picks up the latest report: backoff is kept.
    if (this.working || this.closed || this.cancelRetry !== undefined) return;
    this.working = true;
    this.idle = this.work();
  }

  private async work(): Promise<void> {
    // `working` is cleared in the same synchronous step as the loop's last look at `latest`: a
    // report() queued after that look starts a new run.
    try {
      while (this.latest !== undefined && !this.closed) {
        const taken = this.latest;
        this.latest = undefined;
        const outcome = await this.publish(taken.report);
        if (outcome.result !== 'failed') {
          this.backoff.reset();
          this.settle(taken.seq, outcome);
          continue;
        }
        if (this.backoff.attempts >= this.maxRetries) {
          // The policy gives up on this report; a newer one queued meanwhile gets a new count.
          this.log.warn({ component: 'report', node: this.node, retries: this.backoff.attempts, ...errFields(outcome.error) }, 'status report not published; gave up on it');
          this.backoff.reset();
          this.settle(taken.seq, outcome);
          if (this.latest === undefined) break;
        } else {
          this.latest ??= taken;
        }
        if (this.closed) break;
        const delay = this.backoff.next();
        this.log.warn({ component: 'report', node: this.node, retryInMs: delay, ...errFields(outcome.error) }, 'status report not published; will retry');
        this.cancelRetry = this.schedule(() => {
          this.cancelRetry = undefined;
          this.kick();
        }, delay);
        break;
      }
    } finally {
      this.working = false;
    }
  }

  /** Reports up to `seq` are settled by `outcome`: resolve the flush() calls waiting for them. */
  private settle(seq: number, outcome: PublishOutcome): void {
    if (seq < this.settled) return;
    this.settled = seq;
    this.lastOutcome = outcome;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (w.seq <= seq) w.resolve(outcome);
      else this.waiters.push(w);
    }
  }

  private async publishOnce(r: StatusReport): Promise<PublishOutcome> {
    const json = `${JSON.stringify(r, null, 2)}\n`;
    const md = renderStatusMarkdown(r);
    const max = Math.max(1, this.opts.maxAttempts ?? 10);
    let attempts = 0;
    let outcome: PublishOutcome;
    try {
      for (;;) {
        attempts += 1;
        try {
          outcome = this.location.kind === 'local' ? await this.publishLocal(this.location.path, r, json, md, attempts) : await this.publishRemote(this.location.url, r, json, md, attempts);
          break;
        } catch (err) {
          if (!(err instanceof Conflict)) throw err;
          if (attempts >= max) throw new LbError('LB_REPORT_PUSH', `status branch ${this.branch}: still conflicting after ${attempts} attempts`, { node: this.node, attempts });
          // Other nodes are pushing too: wait a little (jittered, growing) and rebuild on their tip.
          await sleep(Math.round((25 + Math.random() * 75) * Math.min(attempts, 8)));
        }
      }
    } catch (err) {
      const error =
        err instanceof LbError
          ? err
          : new LbError('LB_REPORT_PUSH', `status report for ${this.node} not published: ${(err as Error).message}`, { node: this.node }, { cause: err });
      outcome = { result: 'failed', attempts, error };
    }
    if (outcome.result !== 'failed') this.log.debug({ component: 'report', node: this.node, result: outcome.result, commit: outcome.commit, attempts }, 'status report published');
    try {
      this.opts.onPublished?.(outcome);
    } catch (err) {
      this.log.warn({ component: 'report', ...errFields(err) }, 'status report hook failed');
    }
    return outcome;
  }

  // --- http(s): a private shallow clone of the status branch, push with compare-and-swap ----------

  private async publishRemote(url: string, r: StatusReport, json: string, md: string, attempts: number): Promise<PublishOutcome> {
    const deadline = deadlineSignal(this.opts.timeoutMs ?? 60_000);
    const http = limitedHttpClient({ idleTimeoutMs: this.opts.idleTimeoutMs ?? 15_000, signal: deadline });
    const creds = await this.credentials();
    const headers: Record<string, string> = creds ? { Authorization: basicAuthHeader(creds) } : {};
    const gitdir = this.cloneDir;
    const cache = {};
    const fullRef = `refs/heads/${this.branch}`;
    try {
      await ensureBareClone(gitdir, this.branch);
      const refs = await git.listServerRefs({ http, url, headers: { ...headers }, protocolVersion: 1 });
      let remoteTip = refs.find((x) => x.ref === fullRef)?.oid;
      if (remoteTip !== undefined && !(await hasObject(gitdir, remoteTip, cache))) {
        const fetched = await git.fetch({ fs, http, gitdir, url, ref: fullRef, singleBranch: true, depth: 1, tags: false, headers: { ...headers }, cache });
        // Another node may have pushed between the listing and the fetch: the fetch brought the
        // branch's newer tip (depth 1: without the listed one), and the commit goes on that.
        remoteTip = fetched.fetchHead ?? remoteTip;
        if (!(await hasObject(gitdir, remoteTip, cache))) throw new Conflict('the branch moved during the fetch');
      }
      const built = await this.buildCommit(gitdir, remoteTip, r, json, md, cache);
      if (built === undefined) return { result: 'unchanged', attempts, ...(remoteTip ? { commit: remoteTip } : {}) };
      await git.writeRef({ fs, gitdir, ref: fullRef, value: built, force: true });
      try {
        await git.push({ fs, http, gitdir, url, ref: this.branch, remoteRef: fullRef, headers: { ...headers } });
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'PushRejectedError' || code === 'GitPushError') throw new Conflict(code);
        throw err;
      }
      // Each publish leaves objects and packs in the private clone; now and then, start it over.
      if (++this.publishedSinceReset >= 100) {
        this.publishedSinceReset = 0;
        await rm(gitdir, { recursive: true, force: true });
      }
      return { result: 'committed', commit: built, attempts };
    } catch (err) {
      if (err instanceof Conflict) throw err;
      const e = classifyGitError(err, { where: url });
      if (e.code === 'LB_SOURCE_FETCH') await rm(gitdir, { recursive: true, force: true }).catch(() => undefined);
      throw new LbError('LB_REPORT_PUSH', `status report for ${this.node} not pushed: ${e.message}`, { node: this.node, reason: e.reason }, { cause: err });
    }
  }

  // --- local repository: write objects in place, move the ref under git's own lock file ----------

  private async publishLocal(path: string, r: StatusReport, json: string, md: string, attempts: number): Promise<PublishOutcome> {
    const gitdir = await findLocalGitdir(path);
    const cache = {};
    const fullRef = `refs/heads/${this.branch}`;
    const tip = await git.resolveRef({ fs, gitdir, ref: fullRef }).catch(() => undefined);
    const built = await this.buildCommit(gitdir, tip, r, json, md, cache);
    if (built === undefined) return { result: 'unchanged', attempts, ...(tip ? { commit: tip } : {}) };
    if (!(await compareAndSwapRef(gitdir, fullRef, tip, built))) throw new Conflict('ref moved');
    return { result: 'committed', commit: built, attempts };
  }

  // --- the commit: parent's tree with this node's two files replaced ------------------------------

  /** Writes the commit (objects only) and returns its oid, or undefined when nothing changed. */
  private async buildCommit(gitdir: string, parent: string | undefined, r: StatusReport, json: string, md: string, cache: object): Promise<string | undefined> {
    let root: TreeEntry[] = [];
    if (parent !== undefined) {
      const { commit } = await git.readCommit({ fs, gitdir, oid: parent, cache });
      root = (await git.readTree({ fs, gitdir, oid: commit.tree, cache })).tree;
    }
    const nodeDir = root.find((e) => e.path === this.node && e.type === 'tree');
    let mine: TreeEntry[] = nodeDir ? (await git.readTree({ fs, gitdir, oid: nodeDir.oid, cache })).tree : [];
    const current = mine.find((e) => e.path === 'status.json' && e.type === 'blob');
    if (current && sameContent(Buffer.from((await git.readBlob({ fs, gitdir, oid: current.oid, cache })).blob).toString('utf8'), r)) return undefined;

    const jsonOid = await git.writeBlob({ fs, gitdir, blob: Buffer.from(json) });
    const mdOid = await git.writeBlob({ fs, gitdir, blob: Buffer.from(md) });
    mine = [
      ...mine.filter((e) => e.path !== 'status.json' && e.path !== 'status.md'),
      { mode: '100644', path: 'status.json', oid: jsonOid, type: 'blob' },
      { mode: '100644', path: 'status.md', oid: mdOid, type: 'blob' },
    ];
    const mineOid = await git.writeTree({ fs, gitdir, tree: mine });
    root = [...root.filter((e) => e.path !== this.node), { mode: '040000', path: this.node, oid: mineOid, type: 'tree' }];
    if (!root.some((e) => e.path === 'README.md')) {
      root.push({ mode: '100644', path: 'README.md', oid: await git.writeBlob({ fs, gitdir, blob: Buffer.from(README) }), type: 'blob' });
    }
    const tree = await git.writeTree({ fs, gitdir, tree: root });
    const now = Math.floor(Date.now() / 1000);
    const who = { ...(this.opts.author ?? { name: `lb ${this.node}`, email: `lb+${this.node}@localhost` }), timestamp: now, timezoneOffset: 0 };
    const short = r.lastAttemptedRevision ?? r.desiredRevision;
    const subject = `status(${this.node}): ${r.result}${short ? ` ${short.replace(/^sha256:/, '').slice(0, 12)}` : ''}`;
    return git.writeCommit({ fs, gitdir, commit: { message: `${subject}\n`, tree, parent: parent ? [parent] : [], author: who, committer: who } });
  }
}

/** A report is "the same" when everything but generatedAt is equal. */
function sameContent(committed: string, r: StatusReport): boolean {
  try {
    const old = JSON.parse(committed) as StatusReport;
    return canonical(old) === canonical(r);
  } catch {
    return false;
  }
}

function canonical(r: StatusReport): string {
  const copy = structuredClone(r) as unknown as { timestamps?: Record<string, unknown> };
  if (copy.timestamps) delete copy.timestamps['generatedAt'];
  return stableStringify(copy);
}

function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * Moves `ref` from `expected` (undefined: absent) to `next` the way git does: create `<ref>.lock`
 * exclusively, check the current value, write, rename over the ref. False when the ref moved or
 * another writer holds the lock.
 */
export async function compareAndSwapRef(gitdir: string, ref: string, expected: string | undefined, next: string): Promise<boolean> {
  const refFile = join(gitdir, ref);
  const lock = `${refFile}.lock`;
  await mkdir(dirname(refFile), { recursive: true });
  // A lock left by a crashed writer would block the branch forever; git's own locks live seconds.
  const st = await stat(lock).catch(() => undefined);
  if (st && Date.now() - st.mtimeMs > 60_000) await rm(lock, { force: true });
  let fh: fs.promises.FileHandle;
  try {
    fh = await open(lock, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  let renamed = false;
  try {
    const current = await git.resolveRef({ fs, gitdir, ref }).catch(() => undefined);
    if (current !== expected) return false;
    await fh.writeFile(`${next}\n`);
    await fh.sync();
    await fh.close();
    await rename(lock, refFile);
    renamed = true;
    return true;
  } finally {
    if (!renamed) {
      await fh.close().catch(() => undefined);
      await rm(lock, { force: true });
    }
  }
}

async function hasObject(gitdir: string, oid: string, cache: object): Promise<boolean> {
  try {
    await git.readObject({ fs, gitdir, oid, format: 'deflated', cache });
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
