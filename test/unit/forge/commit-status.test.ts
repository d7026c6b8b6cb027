// Commit statuses against each forge's documented API, stood in for by nock (third-party HTTP
// APIs only; nothing else is mocked): the request each forge documents (path, token header, body),
// the documented success answer, and the refusals and limits: 401, 403, 404, 422 are dropped
// without retry; 5xx and network failures back off; GitHub's x-ratelimit-* and retry-after hold
// requests until the reset. Retries wait on a manual scheduler and rate-limit resets on an
// injected clock, so nothing here sleeps.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CommitStatusNotifier, type NotifyOutcome } from '../../../src/forge/commit-status-notifier.js';
import { forgeTargetOf, type CommitStatus, type ForgeKind, type ForgeTarget } from '../../../src/forge/forge-api.js';
import { ManualScheduler } from '../../lib/manual-scheduler.js';

const SHA = '3f2a9c1'.padEnd(40, '0');
const NOW = 1_800_000_000_000;
let dir: string;
let tokenFile: string;

const TARGETS: Record<ForgeKind, { target: ForgeTarget; origin: string; path: string; auth: [string, string] }> = {
  github: { target: forgeTargetOf('github', 'https://github.com/ops/lb-config.git')!, origin: 'https://api.github.com', path: `/repos/ops/lb-config/statuses/${SHA}`, auth: ['authorization', 'Bearer tok-1'] },
  gitea: { target: forgeTargetOf('gitea', 'https://gitea.example.test/ops/lb-config.git')!, origin: 'https://gitea.example.test', path: `/api/v1/repos/ops/lb-config/statuses/${SHA}`, auth: ['authorization', 'token tok-1'] },
  gitlab: { target: forgeTargetOf('gitlab', 'https://gitlab.example.test/infra/ops/lb-config.git')!, origin: 'https://gitlab.example.test', path: `/api/v4/projects/infra%2Fops%2Flb-config/statuses/${SHA}`, auth: ['private-token', 'tok-1'] },
};

const STATUS: CommitStatus = { sha: SHA, state: 'success', context: 'lb/edge-1', description: 'applied by edge-1 (+1 ~0 -0)', targetUrl: 'https://forge.test/status.md' };

/** The documented 201 bodies (abridged). */
const CREATED: Record<ForgeKind, object> = {
  github: { id: 1, state: 'success', context: 'lb/edge-1', description: 'applied', target_url: 'https://forge.test/status.md', creator: { login: 'lb' } },
  gitea: { id: 1, status: 'success', context: 'lb/edge-1', description: 'applied', target_url: 'https://forge.test/status.md' },
  gitlab: { id: 1, sha: SHA, ref: null, status: 'success', name: 'lb/edge-1', description: 'applied', target_url: 'https://forge.test/status.md' },
};

interface Harness {
  notifier: CommitStatusNotifier;
  scheduler: ManualScheduler;
  outcomes: NotifyOutcome[];
  /** Resolves with the next outcome. */
  next(): Promise<NotifyOutcome>;
  clock: { now: number };
}

function harness(kind: ForgeKind, over: { maxRetries?: number } = {}): Harness {
  const scheduler = new ManualScheduler();
  const outcomes: NotifyOutcome[] = [];
  const waiters: Array<(o: NotifyOutcome) => void> = [];
  let read = 0;
  const clock = { now: NOW };
  const notifier = new CommitStatusNotifier({
    target: TARGETS[kind].target, tokenFile, schedule: scheduler.schedule, now: () => clock.now, retry: { initialMs: 1000, jitter: 0 }, ...over,
    onResult: (o) => {
      outcomes.push(o);
      waiters.shift()?.(o);
    },
  });
  return {
    notifier, scheduler, outcomes, clock,
    next: () => (read < outcomes.length ? Promise.resolve(outcomes[read++]!) : new Promise((resolve) => waiters.push((o) => { read++; resolve(o); }))),
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lb-forge-'));
  tokenFile = join(dir, 'token');
  nock.disableNetConnect();
});

afterEach(() => {
  writeFileSync(tokenFile, 'tok-1\n');
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending, 'every stood-in answer was asked for').toEqual([]);
});

afterAll(() => {
  nock.enableNetConnect();
  rmSync(dir, { recursive: true, force: true });
});

describe.each(['github', 'gitea', 'gitlab'] as const)('%s', (kind) => {
  const t = TARGETS[kind];
  const scope = (): nock.Interceptor => nock(t.origin).matchHeader(t.auth[0], t.auth[1]).post(t.path);

  it('sends the documented request with the token from the file; a repeat of the same status is not sent again', async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    const expected = kind === 'gitlab'
      ? { state: 'success', name: 'lb/edge-1', description: STATUS.description, target_url: STATUS.targetUrl }
      : { state: 'success', context: 'lb/edge-1', description: STATUS.description, target_url: STATUS.targetUrl };
    scope().matchHeader('content-type', 'application/json').reply(201, (_uri, body) => {
      expect(body).toEqual(expected);
      return CREATED[kind];
    });
    const h = harness(kind);
    h.notifier.notify(STATUS);
    expect(await h.next()).toMatchObject({ result: 'sent', httpStatus: 201 });
    h.notifier.notify({ ...STATUS });
    await h.notifier.idle();
    expect(h.outcomes).toHaveLength(1);
  });

  it('a failure is sent as the forge names it', async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    scope().reply(201, (_uri, body) => {
      expect((body as { state: string }).state).toBe(kind === 'gitlab' ? 'failed' : 'failure');
      return CREATED[kind];
    });
    const h = harness(kind);
    h.notifier.notify({ ...STATUS, state: 'failure', description: 'stalled on edge-1: ConfigInvalid: prod/lb.yaml:3: bad port' });
    expect(await h.next()).toMatchObject({ result: 'sent' });
  });

  for (const [code, body] of [[401, { message: 'Bad credentials' }], [403, { message: 'Resource not accessible by integration' }], [404, { message: 'Not Found' }], [422, { message: 'No commit found for SHA' }]] as const) {
    it(`HTTP ${code} drops the status without a retry`, async () => {
      writeFileSync(tokenFile, 'tok-1\n');
      scope().reply(code, body);
      const h = harness(kind);
      h.notifier.notify(STATUS);
      const o = await h.next();
      expect(o).toMatchObject({ result: 'dropped', httpStatus: code });
      expect(o.error?.code).toBe('LB_FORGE_STATUS');
      expect(o.error?.message).toContain(`HTTP ${code}`);
      expect(o.error?.message).not.toContain('tok-1');
      expect(h.scheduler.size).toBe(0);
    });
  }

  it('a server error backs off and the retry lands; a newer status of the commit replaces the one waiting', async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    scope().reply(502, 'Bad Gateway');
    const h = harness(kind);
    h.notifier.notify({ ...STATUS, state: 'pending', description: 'being applied by edge-1' });
    expect(await h.next()).toMatchObject({ result: 'retry', httpStatus: 502, retryInMs: 1000 });
    h.notifier.notify(STATUS);
    expect(h.notifier.pending).toBe(1);
    // The token was rotated meanwhile: the retry reads the file again.
    writeFileSync(tokenFile, 'tok-2\n');
    nock(t.origin).matchHeader(t.auth[0], t.auth[1].replace('tok-1', 'tok-2')).post(t.path).reply(201, (_uri, body) => {
      expect((body as { state: string }).state).toBe('success');
      return CREATED[kind];
    });
    h.scheduler.fire();
    expect(await h.next()).toMatchObject({ result: 'sent', state: 'success' });
    expect(h.notifier.pending).toBe(0);
  });

  it('no answer at all (connection refused) is retried, at most maxRetries times', async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    scope().times(3).replyWithError({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' });
    const h = harness(kind, { maxRetries: 2 });
    h.notifier.notify(STATUS);
    expect(await h.next()).toMatchObject({ result: 'retry', retryInMs: 1000 });
    h.scheduler.fire();
    expect(await h.next()).toMatchObject({ result: 'retry', retryInMs: 2000 });
    h.scheduler.fire();
    const last = await h.next();
    expect(last.result).toBe('dropped');
    expect(last.error?.message).toContain('no answer from');
    expect(h.scheduler.size).toBe(0);
  });
});

describe('rate limits', () => {
  const gh = TARGETS.github;
  const scope = (): nock.Interceptor => nock(gh.origin).post(gh.path);

  it("GitHub's 403 with x-ratelimit-remaining: 0 waits until x-ratelimit-reset", async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    const reset = NOW / 1000 + 120;
    scope().reply(403, { message: 'API rate limit exceeded' }, { 'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) });
    const h = harness('github');
    h.notifier.notify(STATUS);
    expect(await h.next()).toMatchObject({ result: 'retry', httpStatus: 403, retryInMs: 121_000 });
    h.clock.now += 121_000;
    scope().reply(201, CREATED.github, { 'x-ratelimit-remaining': '4999', 'x-ratelimit-reset': String(reset + 3600) });
    h.scheduler.fire();
    expect(await h.next()).toMatchObject({ result: 'sent' });
  });

  it('429 and a secondary limit (403 with retry-after) wait retry-after seconds', async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    scope().reply(429, { message: 'Too Many Requests' }, { 'retry-after': '30' });
    const h = harness('github');
    h.notifier.notify(STATUS);
    expect(await h.next()).toMatchObject({ result: 'retry', httpStatus: 429, retryInMs: 30_000 });
    h.clock.now += 30_000;
    scope().reply(403, { message: 'You have exceeded a secondary rate limit' }, { 'retry-after': '60' });
    h.scheduler.fire();
    expect(await h.next()).toMatchObject({ result: 'retry', httpStatus: 403, retryInMs: 60_000 });
    h.clock.now += 60_000;
    scope().reply(201, CREATED.github);
    h.scheduler.fire();
    expect(await h.next()).toMatchObject({ result: 'sent' });
  });

  it('a success that used up the quota holds the next status until the reset, sending nothing before', async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    const reset = NOW / 1000 + 600;
    scope().reply(201, CREATED.github, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) });
    const h = harness('github');
    h.notifier.notify(STATUS);
    expect(await h.next()).toMatchObject({ result: 'sent' });
    const other = '9'.repeat(40);
    h.notifier.notify({ ...STATUS, sha: other });
    await h.scheduler.scheduled();
    expect(h.scheduler.delays).toEqual([601_000]);
    expect(h.outcomes).toHaveLength(1);
    h.clock.now += 601_000;
    nock(gh.origin).post(`/repos/ops/lb-config/statuses/${other}`).reply(201, CREATED.github);
    h.scheduler.fire();
    expect(await h.next()).toMatchObject({ result: 'sent', sha: other });
  });

  it('GitLab: a status the commit already has (400 "Cannot transition status") counts as set', async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    nock(TARGETS.gitlab.origin).post(TARGETS.gitlab.path).reply(400, { message: 'Cannot transition status via :run from :running' });
    const h = harness('gitlab');
    h.notifier.notify(STATUS);
    expect(await h.next()).toMatchObject({ result: 'sent', httpStatus: 400 });
  });
});

describe('never blocks', () => {
  it('notify() returns before the forge answers, and close() drops what waits', async () => {
    writeFileSync(tokenFile, 'tok-1\n');
    scope502();
    const h = harness('gitea');
    h.notifier.notify(STATUS);
    expect(h.outcomes).toEqual([]);
    expect(h.notifier.pending).toBe(1);
    expect(await h.next()).toMatchObject({ result: 'retry' });
    h.notifier.close();
    expect(h.scheduler.size).toBe(0);
    expect(h.notifier.pending).toBe(0);
    await h.notifier.idle();
  });
});

function scope502(): void {
  nock(TARGETS.gitea.origin).post(TARGETS.gitea.path).reply(503, 'unavailable');
}
