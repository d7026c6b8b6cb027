// `make demo` end to end, non-interactively: the built demo (node dist/src/demo/main.js --ci) builds
// its sandbox, serves examples/repo over smart HTTP, runs `lb daemon` on it, pushes a weight shift
// with a signed webhook, and cleans up. The demo writes its result as JSON (--result); this test
// checks the revisions applied, the plans, the traffic shares before and after, the status commit,
// and that nothing is left behind. --ci gives per-run names, so it cannot collide with a demo kept
// up by hand. Traffic stays inside the namespaces the demo creates. Needs root; fails (never skips).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { INITIAL_WEIGHTS, SHIFTED_WEIGHTS, type DemoResult } from '../../src/demo/demo.js';
import { instanceDir } from '../../src/dataplane/index.js';
import { runDir } from '../../src/state/run-dir.js';
import { ROOT } from '../lib/cli.js';
import { predictTcpChoice } from './lib/config.js';
import { VIP } from '../../src/sandbox/index.js';

if (process.getuid?.() !== 0) throw new Error('demo.test.ts must run as root: the demo creates network namespaces and loads BPF programs');

const DEMO = join(ROOT, 'dist', 'src', 'demo', 'main.js');
const REQUESTS = 100;

/** dist/ must hold the demo, the daemon and the git server as they are in src/. */
function ensureDemoBuilt(): void {
  ensureBuilt();
  const stale = (): string[] => {
    const out: string[] = [];
    for (const area of ['demo', 'daemon', 'reconcile', 'sandbox', 'source', 'webhook', 'report', 'observe']) {
      const dir = join(ROOT, 'src', area);
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
        const js = join(ROOT, 'dist', 'src', area, f.replace(/\.ts$/, '.js'));
        if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(dir, f)).mtimeMs) out.push(js);
      }
    }
    return out;
  };
  if (stale().length === 0) return;
  spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore', timeout: 180_000 });
  const left = stale();
  if (left.length > 0) throw new Error(`dist/ is stale after \`npx tsc -p tsconfig.build.json\`: ${left.slice(0, 5).join(', ')}`);
}

interface Run { pid: number; code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function runDemo(args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DEMO, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    // SIGINT first: the demo cleans up after it; SIGKILL if that hangs too.
    const soft = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    const hard = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(soft);
      clearTimeout(hard);
      resolve({ pid: child.pid ?? -1, code, signal, stdout, stderr });
    });
  });
}

const listNamespaces = (): string[] =>
  (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '').split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);

describe('make demo (--ci)', () => {
  let dir = '';
  let run: Run | undefined;
  let result: DemoResult | undefined;
  let failure = '';
  const r = (): DemoResult => {
    if (!result) throw new Error(`the demo produced no result (exit ${run?.code ?? run?.signal}): ${failure}\n${run?.stdout.slice(-4000)}\n${run?.stderr.slice(-2000)}`);
    return result;
  };

  beforeAll(async () => {
    ensureDemoBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-demo-test-'));
    const file = join(dir, 'result.json');
    run = await runDemo(['--ci', '--requests', String(REQUESTS), '--result', file], 90_000);
    if (existsSync(file)) {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as DemoResult | { error: string };
      if ('error' in parsed) failure = parsed.error;
      else result = parsed;
    }
  }, 200_000);

  // The demo cleans up after itself, also on failure; this is the net under it (a demo killed hard).
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (!run || run.pid < 0) return;
    const instance = `demo-ci-${run.pid}`;
    if (existsSync(instanceDir(instance)) || existsSync(runDir(instance))) {
      spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), '--instance', instance, 'down'], { timeout: 60_000, stdio: 'ignore' });
    }
    for (const ns of listNamespaces().filter((n) => n.startsWith(`lbdemoci${run!.pid}`))) {
      spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000, stdio: 'ignore' });
    }
  });

  it('runs every step and exits 0', () => {
    expect(run?.code, `${run?.stdout.slice(-4000)}\n${run?.stderr}`).toBe(0);
    const headers = [...run!.stdout.matchAll(/^== (\d)\. /gm)].map((m) => Number(m[1]));
    expect(headers).toEqual([1, 2, 3, 4, 5, 6]);
    expect(run!.stdout).toMatch(/ok demo complete in [\d.]+ s/);
    expect(run!.stdout).not.toContain('\x1b['); // --ci: no colours
    r();
  });

  it('the daemon applied the initial commit, then the pushed one', () => {
    const { revisions, status } = r();
    expect(revisions.initial).toMatch(/^[0-9a-f]{40}$/);
    expect(revisions.shifted).toMatch(/^[0-9a-f]{40}$/);
    expect(revisions.shifted).not.toBe(revisions.initial);
    expect(status.initial).toMatchObject({ lastAppliedRevision: revisions.initial, result: 'applied', plan: { add: 6, change: 0, destroy: 0 } });
    expect(status.shifted).toMatchObject({ lastAppliedRevision: revisions.shifted, result: 'applied', plan: { add: 0, change: 3, destroy: 0 } });
    expect(status.shifted.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('shows Terraform-style plans: everything created, then the weights updated in place', () => {
    const { plans } = r();
    expect(plans.initial).toMatch(/\+ interface veth-c1/);
    expect(plans.initial).toMatch(/\+ +default-target 10\.202\.1\.2:8080 +weight: 50/);
    expect(plans.initial).toContain('Plan: 6 to add, 0 to change, 0 to destroy.');
    expect(plans.shifted).toMatch(/~ +default-target 10\.202\.1\.2:8080 +weight: 50 -> 10/);
    expect(plans.shifted).toMatch(/~ +default-target 10\.202\.3\.2:8080 +weight: 20 -> 70/);
    expect(plans.shifted).toContain('Plan: 0 to add, 3 to change, 0 to destroy.');
  });

  it('the signed webhook was accepted and the new revision applied within seconds', () => {
    const { webhook } = r();
    expect(webhook.status).toBe(202);
    expect(webhook.signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(webhook.appliedAfterMs).toBeLessThan(30_000);
  });

  it('traffic follows the weights: 50/30/20, then 10/20/70', () => {
    const { before, after } = r().traffic;
    console.log(`before ${JSON.stringify(before.counts)} (maps ${JSON.stringify(before.liveWeights)}), after ${JSON.stringify(after.counts)} (maps ${JSON.stringify(after.liveWeights)})`);
    // The samples' precondition: the maps held the committed weights as the requests began.
    const byName = (w: readonly number[]): Record<string, number> => Object.fromEntries(w.map((x, i) => [`b${i + 1}`, x]));
    expect(before.liveWeights).toEqual(byName(INITIAL_WEIGHTS));
    expect(after.liveWeights).toEqual(byName(SHIFTED_WEIGHTS));
    for (const [s, weights] of [[before, INITIAL_WEIGHTS], [after, SHIFTED_WEIGHTS]] as const) {
      expect(s.failures, s.errors.join('; ')).toBe(0);
      expect(s.requests).toBe(REQUESTS);
      expect(Object.keys(s.counts).sort()).toEqual(['b1', 'b2', 'b3']);
      // Every connection went where the data plane's flow hash sends its 5-tuple with these
      // weights (the TS mirror of bpf/lib/hash.h): the split is the hash's, not luck's.
      expect(s.answers).toHaveLength(REQUESTS);
      const wrong = s.answers.filter((a) => a.backend !== `b${predictTcpChoice({ vip: VIP, port: 80 /* examples/repo/lb.yaml */ }, r().clientAddress, a.localPort, weights) + 1}`);
      expect(wrong, `answers not from the backend the flow hash picks (weights ${weights.join('/')})`).toEqual([]);
    }
    // Expected 50/30/20 of 100: b1 above b3 by ~5 standard deviations.
    expect(before.counts.b1!).toBeGreaterThan(before.counts.b3!);
    expect(before.shares.b1!).toBeGreaterThan(0.3);
    // Expected 10/20/70: b3 takes the majority, b1 the least.
    expect(after.shares.b3!).toBeGreaterThan(0.5);
    expect(after.counts.b3!).toBeGreaterThan(after.counts.b1!);
    expect(after.shares.b1!).toBeLessThan(before.shares.b1!);
  });

  it('the status commit on lb-status reports the pushed revision', () => {
    const { statusCommit, revisions } = r();
    expect(statusCommit.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(statusCommit.subject).toBe(`status(demo-node): applied ${revisions.shifted.slice(0, 12)}`);
    expect(statusCommit.files.sort()).toEqual(['demo-node/status.json', 'demo-node/status.md']);
    expect(statusCommit.markdown).toContain(revisions.shifted.slice(0, 12));
    expect(statusCommit.markdown).toContain('Plan: 0 to add, 3 to change, 0 to destroy.');
  });

  it('leaves nothing behind: namespaces, pins, run directory, work directory', () => {
    const { prefix, instance, workDir } = r();
    expect(listNamespaces().filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
    expect(existsSync(instanceDir(instance))).toBe(false);
    expect(existsSync(runDir(instance))).toBe(false);
    expect(existsSync(workDir)).toBe(false);
  });
});
