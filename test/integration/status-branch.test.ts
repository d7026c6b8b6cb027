// The status branch against real git: reports committed over smart HTTP (and into a local
// repository) are readable with `git show lb-status:<node>/status.json`; unchanged reports make no
// commit; two nodes pushing at once to one remote both land.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusBranchReporter, type StatusReport } from '../../src/report/index.js';
import { createBareRepo, git, removeDir, tempDir, WorkRepo } from '../lib/git-fixtures.js';
import { GitHttpServer } from '../lib/git-server.js';
import { sampleReport } from '../lib/status-fixtures.js';

const TOKEN = 'status-push-token';

let root: string;
let repos: string;
let server: GitHttpServer;
let n = 0;

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

/** flush() until the queue drained without a failure (a failed publish retries on its own); bounded. */
async function landed(rep: StatusBranchReporter): Promise<void> {
  const failures: string[] = [];
  for (let i = 0; i < 20; i++) {
    const outcome = await rep.flush();
    if (outcome?.result !== 'failed') return;
    failures.push(outcome.error?.message ?? 'failed');
    await new Promise((r) => setTimeout(r, 250)); // longer than the retry backoff (50..200 ms)
  }
  throw new Error(`the reporter kept failing: ${failures.join('; ')}`);
}

function reporter(url: string, node: string): StatusBranchReporter {
  return new StatusBranchReporter({ url, node, workDir: join(root, `rep-${node}-${++n}`), auth: { env: { LB_GIT_TOKEN: TOKEN } }, retry: { initialMs: 50, maxMs: 200 } });
}

beforeAll(async () => {
  root = await tempDir('lb-status-');
  repos = join(root, 'repos');
  server = await GitHttpServer.start({ root: repos, auth: { token: TOKEN } });
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

  it('lands the reports of two nodes pushing concurrently to one remote', async () => {
    const name = await newRemote();
    const bare = join(repos, name);
    const a = reporter(server.url(name), 'node-a');
    const b = reporter(server.url(name), 'node-b');
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
      // A publish that still conflicts after its attempts fails and is retried (after 50 ms here);
      // flush() resolves at that point, so wait until each reporter's last outcome is not a failure.
      await Promise.all([landed(a), landed(b)]);
      expect(JSON.parse(await show(bare, 'lb-status:node-a/status.json')).plan.add).toBe(4);
      expect(JSON.parse(await show(bare, 'lb-status:node-b/status.json')).plan.add).toBe(4);
      // The config branch was never touched.
      expect((await show(bare, 'main:lb.yaml')).trim()).toBe('proxies: []');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('never throws at the caller when the remote is down, and publishes once it is back', async () => {
    const name = await newRemote();
    const bare = join(repos, name);
    const flaky = await GitHttpServer.start({ root: repos, auth: { token: TOKEN } });
    const rep = reporter(flaky.url(name), 'node-c');
    try {
      await flaky.stop();
      rep.report(sampleReport('node-c'));
      const o = await rep.flush();
      expect(o?.result).toBe('failed');
      expect(o?.error?.code).toBe('LB_REPORT_PUSH');
      await flaky.restart();
      // The retry timer (50-200 ms here) publishes the pending report on its own.
      for (let i = 0; i < 100 && (await commitCount(bare).catch(() => 0)) === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(JSON.parse(await show(bare, 'lb-status:node-c/status.json')).node).toBe('node-c');
    } finally {
      await rep.close();
      await flaky.stop();
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
