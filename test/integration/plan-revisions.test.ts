// `lb plan --repo --base --head` against real git: a repository the test creates, read both in
// place (a local path) and through the smart-HTTP git server, by the built CLI running as nobody
// (uid 65534, no groups) to show it needs no root and no instance. Checks the plan, the runtime
// inputs (DNS targets listed, never resolved), the exit codes and the located diagnostics of an
// invalid head.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { runCliAsync, type CliResult } from '../lib/cli.js';
import { createReviewRepo, type ReviewRepo } from '../lib/review-repo.js';

let repo: ReviewRepo;

/** `lb plan ARGS` as nobody (asynchronous: the git server answers from this process). */
const plan = (args: string[]): Promise<CliResult> => runCliAsync(['plan', ...args], { uid: 65534 });

beforeAll(async () => {
  ensureBuilt();
  repo = await createReviewRepo('lb-plan-rev-');
});

afterAll(async () => {
  await repo?.dispose();
});

describe('lb plan --repo (no root, no instance)', () => {
  it('plans the head against the base of a local repository: exit 2 with changes, DNS targets as runtime inputs', async () => {
    const r = await plan(['--repo', repo.work.dir, '--base', 'main', '--head', 'pr', '--path', 'prod', '--format', 'json', '--detailed-exitcode']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as Record<string, unknown> & { changes: Array<{ kind: string; name: string; before: { weight: number }; after: { weight: number } }> };
    expect(doc).toMatchObject({ has_changes: true, base: { ref: 'main', revision: repo.sha['main'] }, head: { ref: 'pr', revision: repo.sha['pr'] }, path: 'prod' });
    expect(doc.changes.map((c) => [c.kind, c.name, c.before.weight, c.after.weight])).toEqual([['update', 'listener eth0 *:80/tcp default-target 10.0.0.1:8080', 50, 70]]);
    expect(doc['runtime_inputs']).toEqual([
      { kind: 'dns', proxy: 'web', group: 'default', target: 'api.internal:8080', change: 'remove', weight_before: 50, weight_after: null },
      { kind: 'dns', proxy: 'web', group: 'default', target: 'api2.internal:8080', change: 'add', weight_before: null, weight_after: 50 },
    ]);
  });

  it('reads both revisions through the smart-HTTP server and renders Markdown', async () => {
    const r = await plan(['--repo', repo.url, '--base', 'main', '--head', repo.sha['pr']!, '--path', 'prod', '--format', 'markdown', '--detailed-exitcode']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(2);
    expect(r.stdout.split('\n')[0]).toBe(`### lb plan main (${repo.sha['main']!.slice(0, 12)}) → ${repo.sha['pr']!.slice(0, 12)} (path prod): 0 to add, 1 to change, 0 to destroy.`);
    expect(r.stdout).toContain('| `~` update | `listener eth0 *:80/tcp default-target 10.0.0.1:8080` | weight: 50 -> 70 |');
    expect(r.stdout).toContain('| `+` add | proxy "web", default target: api2.internal:8080 (weight 50) |');
  });

  it('exits 0 when the head compiles to the same state, also with --detailed-exitcode', async () => {
    const r = await plan(['--repo', repo.url, '--base', 'main', '--head', 'main', '--path', 'prod', '--detailed-exitcode']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('No changes. The head compiles to the same data plane as the base.');
  });

  it('an invalid head: exit 1 and its diagnostics located at repository paths (file:line:column)', async () => {
    const r = await plan(['--repo', repo.url, '--base', 'main', '--head', 'bad', '--path', 'prod']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('lb: the head bad has an invalid config:');
    expect(r.stderr).toMatch(/^prod\/lb\.yaml:3:\d+: \/proxies\/0\/listen\/port: expected an integer 1\.\.65535/m);
    expect(r.stderr).not.toContain(repo.root);
  });

  it('a config path new at the head plans everything as created, and says why', async () => {
    const r = await plan(['--repo', repo.work.dir, '--base', 'main', '--head', 'newpath', '--path', 'staging']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Note: the config path staging does not exist at the base: the plan creates everything');
    expect(r.stdout).toContain('Plan: 4 to add, 0 to change, 0 to destroy.');
  });

  it('a missing ref or a wrong option combination is an error (exit 1)', async () => {
    const missing = await plan(['--repo', repo.url, '--base', 'main', '--head', 'no-such-branch']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ref "no-such-branch" not found');
    const usage = await plan(['--repo', repo.url, '--head', 'pr']);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('needs exactly one of --base REF and --against-status NODE');
    expect((await plan(['--base', 'main'])).stderr).toContain('give --repo PATH|URL');
  });
});
