// CommitStatusNotifier: sets the daemon's commit statuses on the forge without ever holding up a
// reconcile. notify() stores the status and returns; one worker sends the stored statuses, oldest
// commit first, the newest status of each commit only (a pending superseded by success before it
// was sent is never sent). A status equal to the last one sent for its commit is not sent again.
//
// Retries (response-class.ts): rate limits wait for the forge's reset time, and requests are held
// until then also after a success that used up the quota (x-ratelimit-remaining: 0); server errors
// and network failures back off (2 s doubling to 5 min, at most maxRetries times per status);
// refusals (401, 403, 404, 422) drop the status with one log line. The token is read from its file
// at every request, so a rotated token takes effect at once; it is never logged.

import { LbError } from '../core/errors.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { Backoff, type BackoffOptions } from '../source/backoff.js';
import { readSecretFile } from '../source/credentials.js';
import { authHeaders, commitStatusRequest, type CommitStatus, type ForgeTarget } from './forge-api.js';
import { classifyResponse, rateLimitDelay, type Verdict } from './response-class.js';

export interface CommitStatusNotifierOptions {
  target: ForgeTarget;
  tokenFile: string;
  /** Default 2 s doubling to 5 min. */
  retry?: BackoffOptions;
  /** Retries of one status before it is dropped (default 8). */
  maxRetries?: number;
  /** Deadline of one request (default 15 s). */
  timeoutMs?: number;
  /** Runs fn after ms, returns a cancel (default an unref'd setTimeout); tests fire it by hand. */
  schedule?: (fn: () => void, ms: number) => () => void;
  /** Wall clock in ms (rate-limit reset times are wall-clock). */
  now?: () => number;
  log?: Logger;
  /** After every attempt (metrics, tests). */
  onResult?: (o: NotifyOutcome) => void;
}

export interface NotifyOutcome {
  sha: string;
  state: CommitStatus['state'];
  /** sent; retry (waits retryInMs); dropped (refused, or out of retries). */
  result: 'sent' | 'retry' | 'dropped';
  httpStatus?: number;
  retryInMs?: number;
  error?: LbError;
}

const MAX_QUEUED = 32;
const MAX_REMEMBERED = 64;

function defaultSchedule(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
}

const keyOf = (s: CommitStatus): string => `${s.state}\0${s.description}\0${s.targetUrl ?? ''}`;

export class CommitStatusNotifier {
  private readonly opts: CommitStatusNotifierOptions;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly schedule: (fn: () => void, ms: number) => () => void;
  private readonly now: () => number;
  /** Statuses to send, by commit, oldest commit first. */
  private readonly queue = new Map<string, CommitStatus>();
  /** What was last sent per commit (bounded). */
  private readonly sent = new Map<string, string>();
  private working = false;
  private closed = false;
  private cancelRetry: (() => void) | undefined;
  /** No request before this time (a rate limit used up). */
  private holdUntil = 0;
  private failures = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(opts: CommitStatusNotifierOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.backoff = new Backoff({ initialMs: 2000, maxMs: 300_000, ...opts.retry });
    this.schedule = opts.schedule ?? defaultSchedule;
    this.now = opts.now ?? Date.now;
  }

  /** Stores the status for sending and returns at once; never throws. */
  notify(s: CommitStatus): void {
    if (this.closed) return;
    if (!this.queue.has(s.sha) && this.sent.get(s.sha) === keyOf(s)) return;
    this.queue.delete(s.sha);
    this.queue.set(s.sha, s);
    while (this.queue.size > MAX_QUEUED) this.queue.delete(this.queue.keys().next().value!);
    this.kick();
  }

  /** Statuses waiting to be sent. */
  get pending(): number {
    return this.queue.size;
  }

  /** Resolves when nothing waits to be sent (every stored status sent or dropped), or on close. */
  idle(): Promise<void> {
    if (this.queue.size === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops sending; what is stored is dropped. */
  close(): void {
    this.closed = true;
    this.cancelRetry?.();
    this.cancelRetry = undefined;
    this.queue.clear();
    this.wakeIdle();
  }

  private kick(): void {
    if (this.working || this.closed || this.cancelRetry !== undefined) return;
    this.working = true;
    void this.work().finally(() => {
      this.working = false;
      if (this.queue.size === 0) this.wakeIdle();
      // A status stored while the last send was settling, with no retry pending: go on.
      else if (this.cancelRetry === undefined && !this.closed) this.kick();
    });
  }

  private async work(): Promise<void> {
    while (this.queue.size > 0 && !this.closed) {
      const wait = this.holdUntil - this.now();
      if (wait > 0) {
        this.wait(wait);
        return;
      }
      const s = this.queue.values().next().value!;
      const { verdict, httpStatus } = await this.send(s);
      const settle = (): void => {
        if (this.queue.get(s.sha) === s) this.queue.delete(s.sha);
      };
      if (verdict.kind === 'ok') {
        settle();
        this.remember(s);
        this.failures = 0;
        this.backoff.reset();
        this.emit({ sha: s.sha, state: s.state, result: 'sent', ...(httpStatus !== undefined ? { httpStatus } : {}) });
        continue;
      }
      const error = new LbError('LB_FORGE_STATUS', `commit status ${s.context} ${s.state} on ${s.sha.slice(0, 12)} (${this.opts.target.kind}): ${verdict.reason}`,
        { sha: s.sha, state: s.state, forge: this.opts.target.kind, ...(httpStatus !== undefined ? { httpStatus } : {}) });
      if (verdict.kind === 'give-up' || this.failures >= (this.opts.maxRetries ?? 8)) {
        settle();
        this.failures = 0;
        this.backoff.reset();
        this.log.warn({ component: 'forge', ...errFields(error) }, 'commit status not set; dropped');
        this.emit({ sha: s.sha, state: s.state, result: 'dropped', error, ...(httpStatus !== undefined ? { httpStatus } : {}) });
        continue;
      }
      this.failures += 1;
      const delay = verdict.afterMs ?? this.backoff.next();
      if (verdict.afterMs !== undefined) this.holdUntil = this.now() + verdict.afterMs;
      this.log.warn({ component: 'forge', retryInMs: delay, ...errFields(error) }, 'commit status not set; will retry');
      this.emit({ sha: s.sha, state: s.state, result: 'retry', retryInMs: delay, error, ...(httpStatus !== undefined ? { httpStatus } : {}) });
      this.wait(delay);
      return;
    }
  }

  private wait(ms: number): void {
    this.cancelRetry = this.schedule(() => {
      this.cancelRetry = undefined;
      this.kick();
    }, ms);
  }

  /** One request; a network failure or an unreadable token is a verdict too (retry). */
  private async send(s: CommitStatus): Promise<{ verdict: Verdict; httpStatus?: number }> {
    const { kind } = this.opts.target;
    let token: string;
    try {
      token = await readSecretFile(this.opts.tokenFile, 'commit-status token');
    } catch (err) {
      return { verdict: { kind: 'retry', reason: (err as Error).message } };
    }
    const req = commitStatusRequest(this.opts.target, s);
    try {
      const res = await fetch(req.url, {
        method: req.method, headers: { ...req.headers, ...authHeaders(kind, token) }, body: JSON.stringify(req.body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 15_000),
      });
      const body = await res.text().catch(() => '');
      const header = (n: string): string | null => res.headers.get(n);
      const verdict = classifyResponse(res.status, header, body, this.now());
      // A success that used up the quota holds the next request until the reset.
      if (verdict.kind === 'ok') {
        const hold = header('x-ratelimit-remaining') === '0' ? rateLimitDelay(header, this.now()) : undefined;
        if (hold !== undefined) this.holdUntil = this.now() + hold;
      }
      return { verdict, httpStatus: res.status };
    } catch (err) {
      return { verdict: { kind: 'retry', reason: `no answer from ${new URL(req.url).origin}: ${(err as Error).message}` } };
    }
  }

  private remember(s: CommitStatus): void {
    this.sent.delete(s.sha);
    this.sent.set(s.sha, keyOf(s));
    while (this.sent.size > MAX_REMEMBERED) this.sent.delete(this.sent.keys().next().value!);
  }

  private emit(o: NotifyOutcome): void {
    try {
      this.opts.onResult?.(o);
    } catch (err) {
      this.log.warn({ component: 'forge', ...errFields(err) }, 'commit status hook failed');
    }
  }

  private wakeIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
