// The CI templates of examples/repo (GitHub Actions, Gitea Actions, GitLab CI), their script steps
// run for real: taken from the workflow files, run by sh in a clone of a repository this test
// creates, with the built lb on PATH, against the forge stand-in (src/sandbox/forge-server.ts) for
// each forge's comment API. A pull request gets one Markdown plan comment; a push of an invalid
// config edits that same comment to show the diagnostics and fails the job; the next valid push
// edits it back. A refused token fails the job and writes nothing.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { run, type RunResult } from '../../src/sandbox/index.js';
import { ForgeServer, type Forge } from '../../src/sandbox/forge-server.js';
import { ensureBuilt } from '../lib/build.js';
import { CLI, ROOT } from '../lib/cli.js';
import { createReviewRepo, type ReviewRepo } from '../lib/review-repo.js';

const EXAMPLE = join(ROOT, 'examples', 'repo');
const TOKEN = 'forge-comment-token';

interface Step {
  env: Record<string, string>;
  run: string;
}

/** The step that plans and comments, as the template writes it. */
function templateStep(forge: Forge): Step {
  if (forge === 'gitlab') {
    const job = (parse(readFileSync(join(EXAMPLE, '.gitlab-ci.yml'), 'utf8')) as Record<string, { variables: Record<string, string>; script: string[] }>)['lb-plan']!;
    return { env: job.variables, run: job.script.join('\n') };
  }
  const file = join(EXAMPLE, forge === 'github' ? '.github' : '.gitea', 'workflows', 'lb-plan.yml');
  const wf = parse(readFileSync(file, 'utf8')) as { jobs: Record<string, { steps: Array<{ id?: string; env?: Record<string, string>; run?: string }> }> };
  const step = wf.jobs['lb-plan']!.steps.find((s) => s.id === 'lb-plan')!;
  return { env: step.env ?? {}, run: step.run! };
}

let repo: ReviewRepo;
let server: ForgeServer;
let bin: string;

beforeAll(async () => {
  ensureBuilt();
  repo = await createReviewRepo('lb-ci-templates-');
  // The checkout a CI job has: the repository with the templates' files in it.
  mkdirSync(join(repo.work.dir, 'ci'), { recursive: true });
  copyFileSync(join(EXAMPLE, 'ci', 'lb-plan-comment.sh'), join(repo.work.dir, 'ci', 'lb-plan-comment.sh'));
  bin = join(repo.root, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'lb'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`, { mode: 0o755 });
  server = await ForgeServer.start({ token: TOKEN });
});

afterAll(async () => {
  await server?.stop();
  await repo?.dispose();
});

describe.each(['github', 'gitea', 'gitlab'] as const)('%s template', (forge) => {
  const project = forge === 'gitlab' ? '42' : 'ops/lb-config';
  const step = (): Step => templateStep(forge);
  /** Runs the template's step as its CI would: the step's own script, the CI's variables in the environment. */
  const job = (head: string, pr: number, token = TOKEN): Promise<RunResult> => run(['sh', '-ec', `cd '${repo.work.dir}'\n${step().run}`], {
    timeoutMs: 60_000, allowFailure: true,
    env: {
      PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOME: repo.root, LANG: 'C',
      LB_FORGE: step().env['LB_FORGE']!, LB_API: server.api(forge), LB_PROJECT: project, LB_PR: String(pr), LB_TOKEN: token,
      LB_BASE: repo.sha.main, LB_HEAD: head, LB_PATH: 'prod',
    },
  });

  it('the step names its forge and takes every input from the CI', () => {
    const env = step().env;
    expect(env['LB_FORGE']).toBe(forge);
    for (const key of ['LB_API', 'LB_PROJECT', 'LB_PR', 'LB_TOKEN', 'LB_BASE', 'LB_HEAD', 'LB_PATH']) expect(Object.keys(env), key).toContain(key);
    expect(step().run).toContain('ci/lb-plan-comment.sh');
  });

  it('comments the plan once, edits the same comment on each push, and fails the job on an invalid config', async () => {
    const first = await job(repo.sha.pr, 7);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    let comments = server.commentsOf(forge, project, 7);
    expect(comments).toHaveLength(1);
    const body = comments[0]!.body;
    expect(body.startsWith('<!-- lb-plan prod -->\n### lb plan ')).toBe(true);
    expect(body).toContain(': 0 to add, 1 to change, 0 to destroy.');
    expect(body).toContain('| `~` update | `listener eth0 *:80/tcp default-target 10.0.0.1:8080` | weight: 50 -> 70 |');
    expect(body).toContain('| `+` add | proxy "web", default target: api2.internal:8080 (weight 50) |');
    const id = comments[0]!.id;

    const invalid = await job(repo.sha.bad, 7);
    expect(invalid.code).toBe(1);
    comments = server.commentsOf(forge, project, 7);
    expect(comments.map((c) => c.id)).toEqual([id]);
    expect(comments[0]!.body).toContain(`### lb plan: the config at ${repo.sha.bad.slice(0, 12)} is not valid`);
    expect(comments[0]!.body).toMatch(/^prod\/lb\.yaml:3:\d+: \/proxies\/0\/listen\/port: expected an integer 1\.\.65535/m);

    const fixed = await job(repo.sha.pr, 7);
    expect(fixed.code).toBe(0);
    comments = server.commentsOf(forge, project, 7);
    expect(comments.map((c) => c.id)).toEqual([id]);
    expect(comments[0]!.body).toBe(body);
    const edits = server.requests.filter((r) => r.method === (forge === 'gitlab' ? 'PUT' : 'PATCH') && r.status === 200);
    expect(edits.length).toBeGreaterThanOrEqual(2);
  });

  it('a refused token fails the job and writes nothing', async () => {
    const r = await job(repo.sha.pr, 8, 'wrong-token');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('HTTP 401');
    expect(server.commentsOf(forge, project, 8)).toEqual([]);
  });
});
