// GitOps latency (the [gitops] issue's benchmark): how long from `git push` until the pushed
// revision is applied in the data plane, via a signed webhook and via polling, against the direct
// apply of the same change with the CLI, all measured in one run in one sandbox (src/demo's parts:
// bench/lib/gitops-sandbox.ts).
//
//   baseline  `lb apply --config lb.yaml --auto-approve` in the LB namespace, each run changing the
//             weights (and `lb validate` of the same file: the CLI's process start + parse floor)
//   webhook   lb daemon --webhook-listen (poll 1h): per push, t0 before `git push`, the push, the
//             signed GitHub push event POSTed, t1 when status.json says the sha is applied
//   polling   the daemon restarted without a webhook receiver, --poll 1s: t0 before `git push`
//             (after a random pause, so pushes land at random points of the poll cycle), t1 as above
//
// Every push changes the weights (a cycle of vectors, never the same twice in a row); on some
// pushes the live maps are read back (`lb show maps`) and must hold the pushed weights and record
// the pushed sha. Goal: webhook p99 under 1 s (1 s / p99 >= 1).
// Network: git, curl and the daemon talk to 127.0.0.1 inside the LB namespace, nothing else.

import { performance } from 'node:perf_hooks';
import { postGithubPush } from '../src/demo/webhook.js';
import { run, VIP } from '../src/sandbox/index.js';
import { BenchError } from './lib/errors.js';
import { GitopsSandbox, OPS_LISTEN, WEBHOOK_LISTEN } from './lib/gitops-sandbox.js';
import { liveWeights, reconcileLines, STATUS_POLL_MS, waitForApplied, waitForFirstReconcile, type ReconcileLine } from './lib/gitops-status.js';
import { median, ratio, sleep } from './lib/stats.js';
import type { Measurement, Ratio, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const WEBHOOK_PUSHES = 50;
const POLL_PUSHES = 20;
const BASELINE_APPLIES = 20;
/** `lb validate` runs per baseline half. */
const VALIDATE_RUNS = 3;
const POLL = '1s';
const POLL_MS = 1000;
/** Read the live maps back after every Nth push of a mode (and after its last). */
const VERIFY_EVERY = 10;
const APPLY_TIMEOUT_MS = 15_000;
const START_TIMEOUT_MS = 60_000;
/** The whole suite, set-up included, stops with an error beyond this. */
const BUDGET_MS = 170_000;
const LISTEN_PORT = 80;
/** Weight vectors for b1/b2/b3, cycled: neighbours always differ. The first is examples/repo's. */
const WEIGHT_CYCLE: readonly (readonly number[])[] = [[50, 30, 20], [10, 20, 70], [34, 33, 33], [20, 60, 20], [70, 10, 20]];

/** Percentile by linear interpolation between closest ranks (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (p / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

const round1 = (v: number): number => Math.round(v * 10) / 10;

interface PushSample {
  revision: string;
  weights: readonly number[];
  /** t0 (before git push) -> status.json shows it applied. */
  totalMs: number;
  /** The git push command (client side). */
  pushMs: number;
  /** The webhook POST, sent after the push (webhook mode). */
  hookMs?: number;
  /** From the webhook's 2xx answer to applied (webhook mode): settle + reconcile + report. */
  afterHookMs?: number;
  /** The daemon's own reconcile duration for this revision (its log, = lb_reconcile_duration_seconds). */
  reconcileMs?: number;
  verified: boolean;
}

class GitopsRun {
  private readonly ctx: SuiteContext;
  private readonly sb: GitopsSandbox;
  private readonly started = performance.now();
  private step = 0;
  private prevRevision = '';
  private verifications = 0;

  constructor(ctx: SuiteContext, sb: GitopsSandbox) {
    this.ctx = ctx;
    this.sb = sb;
  }

  private budget(what: string): void {
    if (performance.now() - this.started > BUDGET_MS) throw new BenchError(`gitops suite over its ${BUDGET_MS / 1000} s budget (at ${what})`);
  }

  private nextWeights(): readonly number[] {
    this.step = (this.step + 1) % WEIGHT_CYCLE.length;
    return WEIGHT_CYCLE[this.step]!;
  }

  async run(): Promise<SuiteResult> {
    const { sb, ctx } = this;
    await sb.create();
    this.prevRevision = sb.initialRevision;

    // The baseline in two halves, before and after the daemon's phases (the daemon stopped: it
    // would heal a hand apply as drift), so a change of the machine's load touches both sides.
    const baseline = { applyMs: [] as number[], validateMs: [] as number[] };
    ctx.log(`baseline, first half: ${BASELINE_APPLIES / 2} x lb apply --config lb.yaml (CLI, no daemon)`);
    await this.baseline(baseline, true);

    ctx.log(`webhook: lb daemon --webhook-listen ${WEBHOOK_LISTEN} --poll 1h; ${WEBHOOK_PUSHES} pushes`);
    const daemonW = sb.startDaemon({ poll: '1h', webhook: true, logName: 'daemon-webhook.log' });
    await waitForApplied(sb.layout.instance, sb.initialRevision, daemonW.process, START_TIMEOUT_MS);
    const webhook: PushSample[] = [];
    for (let i = 0; i < WEBHOOK_PUSHES; i++) {
      this.budget(`webhook push ${i + 1}`);
      webhook.push(await this.push('webhook', i === WEBHOOK_PUSHES - 1 || (i + 1) % VERIFY_EVERY === 0));
    }
    this.attachReconcileTimes(webhook, daemonW.process.log());
    const metricsW = await this.reconcileMetrics();

    ctx.log(`polling: lb daemon restarted without webhook, --poll ${POLL}; ${POLL_PUSHES} pushes`);
    await sb.stopDaemon();
    const daemonP = sb.startDaemon({ poll: POLL, webhook: false, logName: 'daemon-poll.log' });
    const first = await waitForFirstReconcile(daemonP.process, START_TIMEOUT_MS);
    if (first.revision !== this.prevRevision) throw new BenchError(`the restarted daemon's first reconcile is of ${first.revision ?? 'no revision'}, not ${this.prevRevision.slice(0, 12)}`);
    const polling: PushSample[] = [];
    for (let i = 0; i < POLL_PUSHES; i++) {
      this.budget(`polling push ${i + 1}`);
      polling.push(await this.push('poll', i === POLL_PUSHES - 1 || (i + 1) % VERIFY_EVERY === 0));
    }
    this.attachReconcileTimes(polling, daemonP.process.log());
    const metricsP = await this.reconcileMetrics();
    await sb.stopDaemon();
    ctx.log(`baseline, second half: ${BASELINE_APPLIES / 2} x lb apply --config lb.yaml`);
    await this.baseline(baseline, false);

    return this.result(baseline, webhook, polling, { webhook: metricsW, polling: metricsP, firstAfterRestart: first });
  }

  /**
   * Half of the baseline: `lb apply` of a weight change with the CLI, each followed by `lb validate`
   * of the file (what a CLI process costs without the kernel). The first half starts with one
   * unmeasured apply (it loads the programs and attaches) and ends with the clone back at its commit.
   */
  private async baseline(into: { applyMs: number[]; validateMs: number[] }, first: boolean): Promise<void> {
    const { sb } = this;
    const file = sb.repo.configFile;
    const lb = async (args: string[]): Promise<number> => {
      const t0 = performance.now();
      const r = await sb.lb.run(args);
      const ms = performance.now() - t0;
      if (r.code !== 0) throw new BenchError(`lb ${args[0]} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`);
      return ms;
    };
    const apply = ['apply', '--config', file, '--auto-approve'];
    if (first) await lb(apply);
    for (let i = 0; i < BASELINE_APPLIES / 2; i++) {
      this.budget(`baseline apply ${into.applyMs.length + 1}`);
      sb.repo.setWeights(this.nextWeights());
      into.applyMs.push(await lb(apply));
      if (i < VALIDATE_RUNS) into.validateMs.push(await lb(['validate', '--config', file]));
    }
    if (!first) return;
    // Back to the committed file, so the daemon starts from the initial commit.
    this.step = 0;
    sb.repo.setWeights(WEIGHT_CYCLE[0]!);
    const diff = await sb.repo.diff();
    if (diff.trim() !== '') throw new BenchError(`the clone differs from its commit after the baseline:\n${diff}`);
  }

  /** One weight change: commit, then t0, push (+ webhook), t1 when applied; optionally the maps read back. */
  private async push(mode: 'webhook' | 'poll', verify: boolean): Promise<PushSample> {
    const { sb } = this;
    const { instance, branch } = sb.layout;
    const daemon = sb.daemon.process;
    const weights = this.nextWeights();
    sb.repo.setWeights(weights);
    const revision = await sb.repo.commitAll(`bench: weights ${weights.join('/')}`);
    // Pushes at random points of the poll cycle (else each would follow the previous apply in step).
    if (mode === 'poll') await sleep(Math.random() * POLL_MS);

    const t0 = performance.now();
    const applied = waitForApplied(instance, revision, daemon, APPLY_TIMEOUT_MS);
    applied.catch(() => undefined); // awaited below; a rejection while the push runs is not unhandled
    await sb.repo.push(sb.lbNs);
    const tPushed = performance.now();
    let hookMs: number | undefined;
    let tHook = tPushed;
    if (mode === 'webhook') {
      const hook = await postGithubPush(sb.lbNs, WEBHOOK_LISTEN, sb.secret, {
        ref: `refs/heads/${branch}`, before: this.prevRevision, after: revision, repositoryUrl: sb.repoUrl,
      });
      tHook = performance.now();
      hookMs = tHook - tPushed;
      if (hook.status < 200 || hook.status > 299) throw new BenchError(`the daemon answered the webhook with HTTP ${hook.status}: ${hook.body}`);
    }
    const { at } = await applied;
    this.prevRevision = revision;
    const sample: PushSample = {
      revision, weights, totalMs: at - t0, pushMs: tPushed - t0,
      ...(hookMs !== undefined ? { hookMs, afterHookMs: at - tHook } : {}),
      verified: false,
    };
    if (verify) {
      await this.verifyMaps(revision, weights);
      sample.verified = true;
      this.verifications++;
    }
    return sample;
  }

  /** The live maps hold the pushed weights, and the apply inventory records the pushed sha. */
  private async verifyMaps(revision: string, weights: readonly number[]): Promise<void> {
    const live = await liveWeights(this.sb.lb, VIP, LISTEN_PORT);
    const got = live.weights.map((w) => w.weight);
    if (got.length !== weights.length || got.some((w, i) => w !== weights[i])) {
      throw new BenchError(`status.json says ${revision.slice(0, 12)} is applied, but the live maps hold weights ${got.join('/')} (pushed ${weights.join('/')}): ${live.weights.map((w) => `${w.target}=${w.weight}`).join(', ')}`);
    }
    if (live.revision !== null && live.revision !== revision) {
      throw new BenchError(`status.json says ${revision.slice(0, 12)} is applied, but the apply inventory records ${live.revision}`);
    }
  }

  private attachReconcileTimes(samples: PushSample[], log: string): void {
    const byRevision = new Map<string, ReconcileLine>();
    for (const l of reconcileLines(log)) if (l.result === 'applied' && l.revision) byRevision.set(l.revision, l);
    for (const s of samples) {
      const l = byRevision.get(s.revision);
      if (l) s.reconcileMs = l.durationMs;
    }
  }

  /** lb_reconcile_duration_seconds of the running daemon: sum and count per result (a cross-check of the log). */
  private async reconcileMetrics(): Promise<Record<string, number>> {
    const r = await run(['nsenter', `--net=/run/netns/${this.sb.lbNs}`, 'curl', '-sS', '--noproxy', '*', '--max-time', '5', `http://${OPS_LISTEN}/metrics`],
      { timeoutMs: 10_000, allowFailure: true });
    const out: Record<string, number> = {};
    for (const m of r.stdout.matchAll(/^lb_reconcile_(duration_seconds_sum|duration_seconds_count|total)\{[^}]*result="(\w+)"[^}]*\} ([\d.e+-]+)$/gm)) {
      out[`${m[1]}{${m[2]}}`] = Number(m[3]);
    }
    return out;
  }

  private result(
    baseline: { applyMs: number[]; validateMs: number[] },
    webhook: PushSample[], polling: PushSample[],
    extra: { webhook: Record<string, number>; polling: Record<string, number>; firstAfterRestart: ReconcileLine },
  ): SuiteResult {
    const col = (xs: PushSample[], k: keyof PushSample): number[] => xs.map((s) => s[k]).filter((v): v is number => typeof v === 'number');
    const r1 = (xs: number[]): number[] => xs.map(round1);
    const applyP50 = median(baseline.applyMs);
    const wTotal = col(webhook, 'totalMs');
    const pTotal = col(polling, 'totalMs');
    const wRec = col(webhook, 'reconcileMs');
    const pRec = col(polling, 'reconcileMs');
    const wP99 = percentile(wTotal, 99);
    const pP50 = median(pTotal);
    const missing = webhook.length - wRec.length + polling.length - pRec.length;

    const dist = (key: string, label: string, xs: number[], detail?: Record<string, unknown>): Measurement[] => [
      { key: `${key}_p50`, label: `${label}, p50`, value: median(xs), unit: 'ms', ...(detail ? { detail } : {}) },
      { key: `${key}_p99`, label: `${label}, p99`, value: percentile(xs, 99), unit: 'ms' },
      { key: `${key}_max`, label: `${label}, max`, value: Math.max(...xs), unit: 'ms', samples: r1(xs) },
    ];
    const measurements: Measurement[] = [
      ...dist('webhook', `push -> applied via webhook (${webhook.length} pushes)`, wTotal, {
        pushP50Ms: round1(median(col(webhook, 'pushMs'))), hookPostP50Ms: round1(median(col(webhook, 'hookMs'))),
        hookToAppliedP50Ms: round1(median(col(webhook, 'afterHookMs'))), hookToAppliedP99Ms: round1(percentile(col(webhook, 'afterHookMs'), 99)),
        metrics: extra.webhook,
      }),
      { key: 'webhook_push_p50', label: 'of which: git push (client side), p50', value: median(col(webhook, 'pushMs')), unit: 'ms' },
      { key: 'webhook_post_p50', label: 'of which: webhook POST (curl, 2xx at once), p50', value: median(col(webhook, 'hookMs')), unit: 'ms' },
      { key: 'webhook_after_hook_p50', label: 'of which: 2xx -> applied (250 ms settle + reconcile + status), p50', value: median(col(webhook, 'afterHookMs')), unit: 'ms' },
      { key: 'webhook_reconcile_p50', label: 'daemon reconcile (fetch..verify, its log = lb_reconcile_duration_seconds), webhook, p50', value: median(wRec), unit: 'ms', samples: r1(wRec) },
      ...dist('poll', `push -> applied via polling, --poll ${POLL} (${polling.length} pushes)`, pTotal, { pushP50Ms: round1(median(col(polling, 'pushMs'))), metrics: extra.polling }),
      { key: 'poll_reconcile_p50', label: 'daemon reconcile, polling, p50', value: median(pRec), unit: 'ms', samples: r1(pRec) },
      { key: 'direct_apply_p50', label: `baseline: lb apply --config (CLI, one weight change; ${baseline.applyMs.length} runs), p50`, value: applyP50, unit: 'ms', samples: r1(baseline.applyMs) },
      { key: 'cli_validate_p50', label: `of which a CLI process costs: lb validate of the same file (${baseline.validateMs.length} runs), p50`, value: median(baseline.validateMs), unit: 'ms', samples: r1(baseline.validateMs) },
    ];
    const ratios: Ratio[] = [
      { key: 'webhook_p99_vs_goal', label: 'webhook: 1 s / push->applied p99 (goal: p99 < 1 s)', value: ratio(1000, wP99), goal: 1 },
      { key: 'webhook_p99_vs_direct_apply', label: 'webhook push->applied p99 / direct CLI apply p50', value: ratio(wP99, applyP50) },
      { key: 'webhook_p50_vs_direct_apply', label: 'webhook push->applied p50 / direct CLI apply p50', value: ratio(median(wTotal), applyP50) },
      { key: 'poll_p50_vs_model', label: `polling push->applied p50 / (interval/2 + direct CLI apply p50) (1 = waiting is all polling adds)`, value: ratio(pP50, POLL_MS / 2 + applyP50) },
      { key: 'poll_p50_vs_model_reconcile', label: 'polling push->applied p50 / (interval/2 + daemon reconcile p50)', value: ratio(pP50, POLL_MS / 2 + median(pRec)) },
    ];
    const notes: string[] = [
      `data plane read back after ${this.verifications} pushes (lb show maps): the pushed weights live, the apply inventory records the pushed sha`,
      `restarted daemon's first reconcile: ${extra.firstAfterRestart.result} in ${extra.firstAfterRestart.durationMs} ms (adopted the pinned data plane)`,
    ];
    if (missing > 0) notes.push(`${missing} pushes had no "applied" reconcile line of their own in the daemon log (coalesced with another trigger?)`);
    return {
      suite: 'gitops',
      title: 'GitOps latency: git push -> applied in the data plane',
      method: [
        'One sandbox (namespaces lbbgo<pid>*), the config repo served over smart HTTP inside the LB namespace, lb daemon there; every push changes the 3 weights.',
        `t0 before \`git push\` (from the LB namespace), t1 when /run/lb/<instance>/status.json (polled every ${STATUS_POLL_MS} ms) shows the pushed sha as lastAppliedRevision.`,
        `Webhook: --webhook-listen, poll 1h; after the push a signed GitHub push event is POSTed (the daemon settles webhooks 250 ms). ${WEBHOOK_PUSHES} pushes.`,
        `Polling: the daemon restarted without the receiver, --poll ${POLL} (+-10 % jitter); a random 0..${POLL_MS} ms pause before each push. ${POLL_PUSHES} pushes.`,
        `Baseline, same run: \`lb apply --config FILE --auto-approve\` in the LB namespace, each changing the weights, half before and half after the daemon phases (daemon stopped); p50 of ${BASELINE_APPLIES}.`,
        'p99 by linear interpolation between closest ranks (of 50 samples: between the 2 largest).',
      ],
      measurements,
      ratios,
      notes,
    };
  }
}

async function runSuite(ctx: SuiteContext): Promise<SuiteResult> {
  await GitopsSandbox.removeStale(ctx.log);
  const sb = GitopsSandbox.prepare(ctx.log);
  // bench/main.ts exits on a signal after its own cleanup: the exit handler takes this sandbox
  // down. Run alone (no other listener), the signal handler does, then dies of the signal.
  const onExit = (): void => sb.stopSync();
  const onSignal = (signal: NodeJS.Signals): void => {
    sb.stopSync();
    if (process.listenerCount(signal) === 1) {
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    }
  };
  process.on('exit', onExit);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  try {
    return await new GitopsRun(ctx, sb).run();
  } catch (err) {
    const log = sb.daemonLogExcerpt();
    if (log && err instanceof Error) err.message += `\ndaemon log:\n${log}`;
    throw err;
  } finally {
    ctx.log('gitops: cleaning up (daemon SIGTERM, lb down, namespaces, work directory)');
    const problems = await sb.stop();
    for (const p of problems) ctx.log(`gitops cleanup: ${p}`);
    process.removeListener('exit', onExit);
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(s, onSignal);
  }
}

export const gitopsSuite: Suite = { name: 'gitops', title: 'GitOps latency: push -> applied (webhook, polling)', run: runSuite };
