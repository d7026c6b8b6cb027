// The status branch against real git: reports committed over smart HTTP (and into a local
// repository) are readable with `git show lb-status:<node>/status.json`; unchanged reports make no
// commit; two nodes pushing at once to one remote both land; flush() returns only once the latest
// report is published (or failed for good), also when a push was refused and waits to retry.

import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusBranchReporter, type PublishOutcome, type StatusBranchReporterOptions, type StatusReport } from '../../src/report/index.js';
import { createBareRepo, git, removeDir, tempDir, WorkRepo } from '../lib/git-fixtures.js';
import { GitHttpServer } from '../lib/git-server.js';
import { ManualScheduler, turn } from '../lib/manual-scheduler.js';
import { sampleReport } from '../lib/status-fixtures.js';

const TOKEN = 'status-push-token';

let root: string;
let repos: string;
let server: GitHttpServer;
let n = 0;
/** Runs before the server serves each request (GitHttpServer's beforeRequest), when a test sets it. */
let beforeRequest: ((r: { method: string; path: string; query: string }) => void) | undefined;

async function newRemote(): Promise<string> {
  n += 1;
  const name = `status-${n}.git`;
  const bare = await createBareRepo(repos, name, root);
  const work = await WorkRepo.clone(bare, join(root, `work-${n}`), root);
  await work.commit('config', { files: { 'lb.yaml': 'proxies: []\n' } });
  await work.push();
  return name;
}

function show(bare: string, spec: string): Promise<string> {
  return git(['--git-dir', bare, 'show', spec], { home: root });
}

async function commitCount(bare: string, branch = 'lb-status'): Promise<number> {
  return Number((await git(['--git-dir', bare, 'rev-list', '--count', branch], { home: root })).trim());
}

function reporter(url: string, node: string, over: Partial<StatusBranchReporterOptions> = {}): StatusBranchReporter {
  return new StatusBranchReporter({ url, node, workDir: join(root, `rep-${node}-${++n}`), auth: { env: { LB_GIT_TOKEN: TOKEN } }, retry: { initialMs: 50, maxMs: 200 }, ...over });
}

/** A new remote and a reporter of each of two nodes publishing to it. */
async function twoNodes(): Promise<{ name: string; bare: string; a: StatusBranchReporter; b: StatusBranchReporter }> {
  const name = await newRemote();
  return { name, bare: join(repos, name), a: reporter(server.url(name), 'node-a'), b: reporter(server.url(name), 'node-b') };
}

/** A pre-receive hook in the remote that refuses the first push it sees, then accepts. */
async function refuseFirstPush(bare: string): Promise<void> {
  const mark = join(bare, 'refused-once');
  await writeFile(join(bare, 'hooks', 'pre-receive'),
    `#!/bin/sh\nif [ ! -e '${mark}' ]; then : > '${mark}'; echo 'lb test: refusing the first push' >&2; exit 1; fi\nexit 0\n`, { mode: 0o755 });
}

/** flush(), and whether it has resolved yet. */
function tracked(p: Promise<PublishOutcome | undefined>): { done: () => boolean; outcome: Promise<PublishOutcome | undefined> } {
  let done = false;
  const outcome = p.then((o) => {
    done = true;
    return o;
  });
  return { done: () => done, outcome };
}

beforeAll(async () => {
  root = await tempDir('lb-status-');
  repos = join(root, 'repos');
  server = await GitHttpServer.start({ root: repos, auth: { token: TOKEN }, beforeRequest: (r) => beforeRequest?.(r) });
});

afterAll(async () => {
  await server?.stop();
  await removeDir(root);
});

describe('StatusBranchReporter over smart HTTP', () => {
  it('creates the orphan branch and commits both files; an unchanged report makes no commit', async () => {
    const name = await newRemote();
    const bare = join(repos, name);
    const rep = reporter(server.url(name), 'node-a');
    try {
      const r1 = sampleReport('node-a');
      rep.report(r1);
      const o1 = await rep.flush();
      expect(o1?.result).toBe('committed');
      const json = JSON.parse(await show(bare, 'lb-status:node-a/status.json')) as StatusReport;
      expect(json).toEqual(r1);
      expect(await show(bare, 'lb-status:node-a/status.md')).toContain('# lb status: node-a');
      // Orphan: no history shared with main.
      expect(await commitCount(bare)).toBe(1);
      expect((await git(['--git-dir', bare, 'log', '--format=%s', 'lb-status'], { home: root })).trim()).toBe(`status(node-a): applied ${'a'.repeat(12)}`);

      // Only generatedAt differs: no commit.
      rep.report({ ...r1, timestamps: { ...r1.timestamps, generatedAt: new Date(Date.now() + 60_000).toISOString() } });
      expect((await rep.flush())?.result).toBe('unchanged');
      expect(await commitCount(bare)).toBe(1);

      // A real change: a second commit on top.
      const failed = sampleReport('node-a', {
        result: 'stalled',
        lastAttemptedRevision: 'b'.repeat(40),
        errors: [{ code: 'LB_CONFIG_SCHEMA', message: 'expected an integer 1..65535', file: 'lb.yaml', line: 3, column: 9, pointer: '/proxies/0/listen/port' }],
      });
      rep.report(failed);
      expect((await rep.flush())?.result).toBe('committed');
      expect(await commitCount(bare)).toBe(2);
      const md = await show(bare, 'lb-status:node-a/status.md');
      expect(md).toContain('`lb.yaml:3:9`');
      expect(md).toContain('`/proxies/0/listen/port`');
    } finally {
      await rep.close();
    }
  });

  it('builds on the tip its fetch brought when another node pushed between its listing and its fetch', async () => {
    const { name, bare, a, b } = await twoNodes();
    try {
      expect((await a.publish(sampleReport('node-a'))).result).toBe('committed');
      const gitIn = (args: string[]): string => execFileSync('git', ['--git-dir', bare, ...args], {
        encoding: 'utf8', timeout: 10_000,
        env: { ...process.env, HOME: root, GIT_AUTHOR_NAME: 'other node', GIT_AUTHOR_EMAIL: 'o@example.com', GIT_COMMITTER_NAME: 'other node', GIT_COMMITTER_EMAIL: 'o@example.com' },
      }).trim();
      const listed = gitIn(['rev-parse', 'refs/heads/lb-status']);
      // node-b's publish lists the branch (GET info/refs), then fetches it (GET info/refs again,
      // then the pack): just before that second discovery another node's commit lands on top.
      let discoveries = 0;
      let moved = '';
      beforeRequest = (r) => {
        if (r.method !== 'GET' || !r.path.endsWith(`/${name}/info/refs`) || r.query !== 'service=git-upload-pack') return;
        if (++discoveries !== 2) return;
        moved = gitIn(['commit-tree', `${listed}^{tree}`, '-p', listed, '-m', 'another node\'s report']);
        gitIn(['update-ref', 'refs/heads/lb-status', moved, listed]);
      };
      const ob = await b.publish(sampleReport('node-b'));
      expect(moved, 'the branch was moved between the listing and the fetch').not.toBe('');
      expect(ob.result, ob.error?.message).toBe('committed');
      expect(ob.attempts, 'no conflict: the commit was built on the fetched tip').toBe(1);
      expect(gitIn(['rev-parse', 'refs/heads/lb-status^'])).toBe(moved);
      expect(JSON.parse(await show(bare, 'lb-status:node-a/status.json')).node).toBe('node-a');
      expect(JSON.parse(await show(bare, 'lb-status:node-b/status.json')).node).toBe('node-b');
    } finally {
      beforeRequest = undefined;
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('lands the reports of two nodes pushing concurrently to one remote', async () => {
    const { bare, a, b } = await twoNodes();
    try {
      // Several rounds of simultaneous publishes: each round both race for the same tip.
      const attempts: number[] = [];
      for (let round = 0; round < 3; round++) {
        const rev = String(round).repeat(40);
        const [oa, ob] = await Promise.all([
          a.publish(sampleReport('node-a', { desiredRevision: rev, lastAttemptedRevision: rev })),
          b.publish(sampleReport('node-b', { desiredRevision: rev, lastAttemptedRevision: rev })),
        ]);
        attempts.push(oa.attempts, ob.attempts);
        expect(oa.result, oa.error?.message).toBe('committed');
        expect(ob.result, ob.error?.message).toBe('committed');
        expect(JSON.parse(await show(bare, 'lb-status:node-a/status.json')).desiredRevision).toBe(rev);
        expect(JSON.parse(await show(bare, 'lb-status:node-b/status.json')).desiredRevision).toBe(rev);
      }
      expect(await commitCount(bare)).toBe(6);
      // The race was real: some push lost it and was rebuilt on the other node's commit.
      expect(attempts.some((x) => x > 1)).toBe(true);
      // Through the queue as well: many reports, the latest wins, both nodes land.
      for (let i = 0; i < 5; i++) {
        a.report(sampleReport('node-a', { plan: { add: i, change: 0, destroy: 0 } }));
        b.report(sampleReport('node-b', { plan: { add: i, change: 0, destroy: 0 } }));
      }
      // A publish that still conflicts after its attempts fails and is retried (after 50-200 ms
      // here); flush() waits for that retry, so it resolves with the latest report published.
      const [fa, fb] = await Promise.all([a.flush(), b.flush()]);
      expect(fa?.result, fa?.error?.message).toBe('committed');
      expect(fb?.result, fb?.error?.message).toBe('committed');
      expect(JSON.parse(await show(bare, 'lb-status:node-a/status.json')).plan.add).toBe(4);
      expect(JSON.parse(await show(bare, 'lb-status:node-b/status.json')).plan.add).toBe(4);
      // The config branch was never touched.
      expect((await show(bare, 'main:lb.yaml')).trim()).toBe('proxies: []');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('flush() resolves only after the retry of a refused push published the latest report', async () => {
    const name = await newRemote();
    const bare = join(repos, name);
    await refuseFirstPush(bare);
    const sched = new ManualScheduler();
    const failures: PublishOutcome[] = [];
    // One push attempt per publish: the refusal fails the publish and the worker's retry takes over.
    const rep = reporter(server.url(name), 'node-b', { maxAttempts: 1, schedule: sched.schedule, onPublished: (o) => { if (o.result === 'failed') failures.push(o); } });
    try {
      rep.report(sampleReport('node-b', { plan: { add: 1, change: 0, destroy: 0 } }));
      const flushed = tracked(rep.flush());
      await sched.scheduled(); // the push was refused; the retry waits for its backoff
      expect(failures.map((o) => o.error?.code)).toEqual(['LB_REPORT_PUSH']);
      rep.report(sampleReport('node-b', { plan: { add: 2, change: 0, destroy: 0 } }));
      await turn();
      expect(flushed.done()).toBe(false);
      expect(await commitCount(bare).catch(() => 0)).toBe(0);

      sched.fire();
      expect(await flushed.outcome).toMatchObject({ result: 'committed' });
      expect(JSON.parse(await show(bare, 'lb-status:node-b/status.json')).plan.add).toBe(2);
      expect(await commitCount(bare)).toBe(1);
      expect(sched.size).toBe(0);
    } finally {
      await rep.close();
    }
  });

  it('never throws at the caller when the remote is down; flush() waits until it is back and the report published', async () => {
    const name = await newRemote();
    const bare = join(repos, name);
    const flaky = await GitHttpServer.start({ root: repos, auth: { token: TOKEN } });
    const sched = new ManualScheduler();
    const failures: PublishOutcome[] = [];
    const rep = reporter(flaky.url(name), 'node-c', { schedule: sched.schedule, onPublished: (o) => { if (o.result === 'failed') failures.push(o); } });
    try {
      await flaky.stop();
      rep.report(sampleReport('node-c'));
      const flushed = tracked(rep.flush());
      await sched.scheduled();
      expect(failures.map((o) => o.error?.code)).toEqual(['LB_REPORT_PUSH']);
      sched.fire(); // still down: fails again, and waits again
      await sched.scheduled();
      expect(failures).toHaveLength(2);
      expect(flushed.done()).toBe(false);
      await flaky.restart();
      sched.fire();
      expect(await flushed.outcome).toMatchObject({ result: 'committed' });
      expect(JSON.parse(await show(bare, 'lb-status:node-c/status.json')).node).toBe('node-c');
    } finally {
      await rep.close();
      await flaky.stop();
    }
  });

  it('flush() resolves with the failure once the retry policy gives up, or when the reporter is stopped', async () => {
    const name = await newRemote();
    const down = await GitHttpServer.start({ root: repos, auth: { token: TOKEN } });
    await down.stop();
    const sched = new ManualScheduler();
    const rep = reporter(down.url(name), 'node-d', { schedule: sched.schedule, maxRetries: 1 });
    try {
      rep.report(sampleReport('node-d'));
      const flushed = tracked(rep.flush());
      await sched.scheduled();
      expect(flushed.done()).toBe(false);
      sched.fire();
      expect(await flushed.outcome).toMatchObject({ result: 'failed', error: { code: 'LB_REPORT_PUSH' } });
      expect(sched.size).toBe(0);
      // A new report, then stop while its retry waits: flush() says it was not published.
      rep.report(sampleReport('node-d', { plan: { add: 7, change: 0, destroy: 0 } }));
      const second = rep.flush();
      await sched.scheduled();
      await rep.close();
      expect(await second).toMatchObject({ result: 'failed', error: { code: 'LB_REPORT_PUSH', data: { reason: 'stopped' } } });
    } finally {
      await rep.close();
    }
  });

  it('refuses a node name that is not a safe directory name', () => {
    expect(() => new StatusBranchReporter({ url: server.url('x.git'), node: '../etc', workDir: root })).toThrow(/node name/);
    expect(() => new StatusBranchReporter({ url: server.url('x.git'), node: 'n', branch: 'bad..branch', workDir: root })).toThrow(/not a valid branch/);
  });
});

describe('StatusBranchReporter on a local repository', () => {
  it('commits into the repository in place, and two nodes both land', async () => {
    const bare = await createBareRepo(repos, 'local-status.git', root);
    const a = new StatusBranchReporter({ url: bare, node: 'node-a', workDir: join(root, 'la') });
    const b = new StatusBranchReporter({ url: bare, node: 'node-b', workDir: join(root, 'lb') });
    const [oa, ob] = await Promise.all([a.publish(sampleReport('node-a')), b.publish(sampleReport('node-b'))]);
    expect([oa.result, ob.result]).toEqual(['committed', 'committed']);
    expect(JSON.parse(await show(bare, 'lb-status:node-a/status.json')).node).toBe('node-a');
    expect(JSON.parse(await show(bare, 'lb-status:node-b/status.json')).node).toBe('node-b');
    expect((await a.publish(sampleReport('node-a'))).result).toBe('unchanged');
    await git(['--git-dir', bare, 'fsck', '--no-progress'], { home: root });
  });
});
