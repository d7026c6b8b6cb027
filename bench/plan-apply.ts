// Plan and apply at scale (the [plan-apply] issue's benchmark): plan time for 1,000 and 10,000
// proxies, and the transactional apply of 100,000 map entries against plain batched map updates
// of the same entries, measured in the same run, each in a fresh process for its peak RSS.
//
// Goals: plan of 10k proxies under 1 s; apply within 2x of the raw batched update
// (raw/apply >= 0.5); `lb validate` and `lb plan` of 10k proxies under 1.5 s wall clock each, as
// a user runs them (the built CLI in a fresh process, Node's start included); the built daemon
// answers /healthz within 100 ms while it prepares and applies 10k proxies and while /metrics is
// scraped with 10k proxies applied, and its event loop is never held that long
// (bench/lib/daemon-responsive.ts).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { responsiveRound, type ResponsiveRound } from './lib/daemon-responsive.js';
import { BenchError } from './lib/errors.js';
import { proxiesYaml } from './lib/proxies-yaml.js';
import { median, ratio } from './lib/stats.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'plan-apply-child.js');
const CLI = join(dirname(CHILD), '..', 'src', 'cli', 'main.js');
/** The [ingest] goal for `lb validate` and `lb plan` of 10,000 proxies, wall clock. */
const CLI_GOAL_MS = 1500;
const ENTRIES = 100_000;
const ROUNDS = 3;
/** Proxies of the daemon-path measurement (each a listener and a group; 10,000 distinct backends). */
const DAEMON_PROXIES = 10_000;
/** The [ingest] goal: the ops endpoints, webhooks and control socket answer within this while a large config is prepared and applied. */
const OPS_GOAL_MS = 100;
/** The built daemon's ops endpoint in the scratch namespace (its own loopback). */
const OPS_PORT = 9391;

type ChildOut = Record<string, number>;

function child(args: string[]): ChildOut {
  const r = spawnSync(process.execPath, [CHILD, ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new BenchError(`plan-apply-child ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as ChildOut;
}

function run(cmd: string[], allowFailure = false): void {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0 && !allowFailure) throw new BenchError(`${cmd.join(' ')} failed: ${r.stderr.trim()}`);
}

/** A namespace with one veth pair (va0/vb0) and its loopback up: the apply attaches lb to va0 there, the daemon's ops endpoint listens on 127.0.0.1. */
async function withScratchNetns<T>(fn: (ns: string) => T | Promise<T>): Promise<T> {
  const ns = `lbbpa${process.pid}`;
  run(['ip', 'netns', 'add', ns]);
  try {
    run(['ip', 'link', 'add', 'va0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'vb0', 'netns', ns]);
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    run(['ip', '-n', ns, 'link', 'set', 'va0', 'up']);
    run(['ip', '-n', ns, 'link', 'set', 'vb0', 'up']);
    return await fn(ns);
  } finally {
    run(['ip', 'netns', 'del', ns], true);
  }
}

function down(ns: string, instance: string): void {
  // `lb down` semantics from inside the namespace: detach and unpin.
  run(['nsenter', `--net=/run/netns/${ns}`, process.execPath, CLI, '--instance', instance, 'down'], true);
  run(['rm', '-rf', `/run/lb/${instance}`], true);
}

/** One run of the built CLI; its wall time (spawn to exit), after checking it did the work. */
function timedCli(args: string[], expect: string): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0 || !r.stdout.includes(expect)) {
    throw new BenchError(`lb ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  }
  return ms;
}

/**
 * `lb validate --config F` and `lb plan --config F` of 10,000 proxies (10,000 distinct backends,
 * 2.0 MB), interleaved, each in a fresh process. The plan runs against an instance that does
 * not exist (empty live state: every entry is an add), so it needs no data plane loaded.
 */
function cliRuns(ctx: SuiteContext): { validateMs: number[]; planMs: number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'lb-bench-planapply-'));
  const instance = `bench-pa-cli-${process.pid}`;
  const file = join(dir, 'lb.yaml');
  writeFileSync(file, proxiesYaml(10_000, 10, { backendPairs: 5_000 }));
  const validateMs: number[] = [];
  const planMs: number[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      ctx.log(`lb validate and lb plan of 10,000 proxies, round ${i + 1}/${ROUNDS}`);
      validateMs.push(timedCli(['validate', '--config', file], 'config valid: 10000 proxies'));
      planMs.push(timedCli(['--instance', instance, 'plan', '--config', file], 'Plan: 30002 to add'));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(`/run/lb/${instance}`, { recursive: true, force: true });
  }
  return { validateMs, planMs };
}

async function runSuite(ctx: SuiteContext): Promise<SuiteResult> {
  const measurements: Measurement[] = [];
  const plans: Record<number, ChildOut[]> = {};
  for (const n of [1_000, 10_000]) {
    plans[n] = [];
    for (let i = 0; i < ROUNDS; i++) {
      ctx.log(`plan of ${n} proxies, round ${i + 1}/${ROUNDS}`);
      plans[n]!.push(child(['plan', String(n)]));
    }
    const total = plans[n]!.map((o) => o.totalMs!);
    const last = plans[n]!.at(-1)!;
    measurements.push({
      key: `plan_${n}`, label: `plan, ${n.toLocaleString('en-US')} proxies (parse+check+compile+diff+render)`, value: median(total), unit: 'ms', samples: total,
      detail: { checkMs: last.checkMs, compileMs: last.compileMs, diffMs: last.diffMs, renderMs: last.renderMs, changes: last.changes, maxRssMiB: last.maxRssMiB },
    });
    measurements.push({ key: `plan_${n}_rss`, label: `peak RSS, plan of ${n.toLocaleString('en-US')} proxies`, value: Math.max(...plans[n]!.map((o) => o.maxRssMiB!)), unit: 'MiB' });
  }

  // 100,000 proxies: one run, reported with its peak RSS; no goal but the figure. The data plane
  // holds 16,384 listeners, so the checks refuse this config with located errors: the figure is
  // the time to that verdict (parse, schema, semantic checks).
  ctx.log('plan of 100,000 proxies, one run');
  const big = child(['plan', '100000']);
  measurements.push(
    {
      key: 'plan_100000', label: `plan, 100,000 proxies (one run${big.refused !== undefined ? ': refused, over the data plane capacity' : ''})`,
      value: big.totalMs!, unit: 'ms', samples: [big.totalMs!],
      detail: { checkMs: big.checkMs, compileMs: big.compileMs, diffMs: big.diffMs, renderMs: big.renderMs, changes: big.changes, refused: big.refused },
    },
    { key: 'plan_100000_rss', label: 'peak RSS, plan of 100,000 proxies', value: big.maxRssMiB!, unit: 'MiB' },
  );

  const cli = cliRuns(ctx);
  measurements.push(
    { key: 'cli_validate_10000', label: '`lb validate --config F`, 10,000 proxies, wall clock (fresh process, Node start included)', value: median(cli.validateMs), unit: 'ms', samples: cli.validateMs },
    { key: 'cli_plan_10000', label: '`lb plan --config F`, 10,000 proxies against an empty live state, wall clock (fresh process)', value: median(cli.planMs), unit: 'ms', samples: cli.planMs },
  );

  const applies: ChildOut[] = [];
  const raws: ChildOut[] = [];
  const daemons: ChildOut[] = [];
  const responsive: ResponsiveRound[] = [];
  await withScratchNetns(async (ns) => {
    for (let i = 0; i < ROUNDS; i++) {
      for (const mode of ['raw', 'apply', 'daemon'] as const) {
        const instance = `bench-pa-${process.pid}-${mode}`;
        const n = mode === 'daemon' ? DAEMON_PROXIES : ENTRIES;
        ctx.log(`${mode} of ${n.toLocaleString('en-US')} ${mode === 'daemon' ? 'proxies' : 'entries'}, round ${i + 1}/${ROUNDS}`);
        try {
          (mode === 'raw' ? raws : mode === 'apply' ? applies : daemons).push(child([mode, String(n), ns, instance]));
        } finally {
          down(ns, instance);
        }
      }
    }
    for (let i = 0; i < ROUNDS; i++) {
      const instance = `bench-pa-${process.pid}-ops`;
      ctx.log(`the built lb daemon prepares and applies ${DAEMON_PROXIES.toLocaleString('en-US')} proxies while /healthz is probed, round ${i + 1}/${ROUNDS}`);
      try {
        responsive.push(await responsiveRound({ ns, ifname: 'va0', instance, port: OPS_PORT, proxies: DAEMON_PROXIES, cli: CLI }));
      } finally {
        down(ns, instance);
      }
    }
  });
  const daemonFull = daemons.map((o) => o.fullTotalMs!);
  const daemonChange = daemons.map((o) => o.changeTotalMs!);
  const part = (key: string): number => median(daemons.map((o) => o[key]!));
  const applyMs = applies.map((o) => o.firstMs!);
  const rawMs = raws.map((o) => o.rawMs!);
  const changeMs = applies.map((o) => o.changeMs!);
  const steadyMs = applies.map((o) => o.steadyMs!);
  const healthzMax = responsive.map((r) => Math.round(r.healthzMaxMs));
  const loopMax = responsive.map((r) => Math.round(r.loopDelayMaxMs));
  const scrapeHealthzMax = responsive.map((r) => Math.round(r.scrape.healthzMaxMs));
  const scrapeLoopMax = responsive.map((r) => Math.round(r.scrape.loopDelayMaxMs));
  measurements.push(
    { key: 'apply_100k', label: `apply, ${ENTRIES.toLocaleString('en-US')} entries into a fresh instance (transaction)`, value: median(applyMs), unit: 'ms', samples: applyMs, detail: { ops: applies[0]!.firstOps, entries: applies[0]!.entries, loadMs: median(applies.map((o) => o.loadMs!)) } },
    { key: 'raw_100k', label: `raw batched map updates of the same entries`, value: median(rawMs), unit: 'ms', samples: rawMs },
    { key: 'apply_1pct', label: 'apply, a 1% change of those entries (steady state: the median of 11 changes after the first)', value: median(steadyMs), unit: 'ms', samples: steadyMs, detail: { ops: applies[0]!.changeOps, firstChangeMs: median(changeMs), firstChangeSamples: changeMs.map((v) => Math.round(v * 10) / 10), secondApplyMs: applies[0]!.secondMs, secondApplyOps: applies[0]!.secondOps } },
    { key: 'apply_1pct_first', label: 'apply, the first 1% change of a process (V8 compiles the delta path meanwhile)', value: median(changeMs), unit: 'ms', samples: changeMs },
    {
      key: 'daemon_full', label: `daemon's path, ${DAEMON_PROXIES.toLocaleString('en-US')} proxies into a fresh instance (check + plan against live + apply + verify)`,
      value: median(daemonFull), unit: 'ms', samples: daemonFull,
      detail: { checkMs: part('fullCheckMs'), prepareMs: part('fullPrepareMs'), applyMs: part('fullApplyMs'), ops: daemons[0]!.fullOps },
    },
    {
      key: 'daemon_1pct', label: `daemon's path, a 1% change of those proxies (steady state)`, value: median(daemonChange), unit: 'ms', samples: daemonChange,
      detail: { checkMs: part('changeCheckMs'), prepareMs: part('changePrepareMs'), applyMs: part('changeApplyMs'), ops: daemons[0]!.changeOps, liveFrom: String(daemons[0]!.changeLiveFrom), verifyFrom: String(daemons[0]!.changeVerifyFrom), maxRssMiB: Math.max(...daemons.map((o) => o.maxRssMiB!)) },
    },
    {
      key: 'daemon_healthz_max', label: `built lb daemon, ${DAEMON_PROXIES.toLocaleString('en-US')} proxies replacing one (prepare + apply): longest /healthz wait`,
      value: median(healthzMax), unit: 'ms', samples: healthzMax, detail: { answers: responsive.map((r) => r.answers), runMs: responsive.map((r) => r.runMs), mainThreadCpuMs: responsive.map((r) => r.mainThreadCpuMs) },
    },
    {
      key: 'daemon_loop_delay_max', label: 'the same runs: the daemon\'s largest event-loop delay (its nodejs_eventloop_lag_max_seconds)',
      value: median(loopMax), unit: 'ms', samples: loopMax,
    },
    {
      key: 'daemon_scrape_healthz_max', label: `built lb daemon serving ${DAEMON_PROXIES.toLocaleString('en-US')} proxies, /metrics scraped: longest /healthz wait`,
      value: median(scrapeHealthzMax), unit: 'ms', samples: scrapeHealthzMax,
      detail: { answers: responsive.map((r) => r.scrape.answers), scrapeMaxMs: responsive.map((r) => Math.round(r.scrape.scrapeMaxMs)), mainThreadCpuMs: responsive.map((r) => r.scrape.mainThreadCpuMs) },
    },
    {
      key: 'daemon_scrape_loop_delay_max', label: 'the same scrapes: the daemon\'s largest event-loop delay (its nodejs_eventloop_lag_max_seconds)',
      value: median(scrapeLoopMax), unit: 'ms', samples: scrapeLoopMax,
    },
    { key: 'apply_rss', label: 'peak RSS, apply of 100k entries', value: Math.max(...applies.map((o) => o.maxRssMiB!)), unit: 'MiB' },
    { key: 'raw_rss', label: 'peak RSS, raw update of 100k entries', value: Math.max(...raws.map((o) => o.maxRssMiB!)), unit: 'MiB' },
  );
  const plan10k = median(plans[10_000]!.map((o) => o.totalMs!));
  return {
    suite: 'planapply',
    title: 'Plan and apply at scale',
    method: [
      'Each figure is the median of 3 runs, each in a fresh Node process (peak RSS from getrusage).',
      'Plan: generated YAML of N proxies (two targets each) against the compiled state of the same config with every 10th proxy reweighted; no kernel.',
      `Apply: ${ENTRIES.toLocaleString('en-US')} entries (listeners : groups : source routes = 1 : 1 : 8) into a fresh instance in a scratch namespace, loaded before the timing (as for raw): ops diff, journal, batched writes, flip, read-back. Then in the same process the second generation whole, then 1% changes (every 100th entry): the first delta, which also pays V8's compilation of the delta path, and the median of 11 more, the steady state of a daemon applying change after change.`,
      'Raw: the same entries with BPF_MAP_UPDATE_BATCH per map and one lb_ctl update, into a fresh instance (no journal, no read-back).',
      `Daemon's path: ${DAEMON_PROXIES.toLocaleString('en-US')} proxies as YAML, checked, planned against the live instance (as the daemon plans: against the state it applied last while the maps still stand where it left them, src/state/known-live.ts) and applied with the desired state and verified as the daemon's engine does (inProcessApplyAndRead: the transaction's read-back, then the verify step from what was applied), in one process: a full apply, then two 1% changes (the second is reported).`,
      `Daemon responsiveness: the built \`lb daemon --config F\` in the scratch namespace applies one proxy, then F is replaced by ${DAEMON_PROXIES.toLocaleString('en-US')} proxies (8,000 backends); a probe in the namespace asks /healthz back to back (a connection each) from before the swap until the daemon logged the apply, and scrapes /metrics before and after (the daemon's nodejs_eventloop_lag_max_seconds: its largest event-loop delay in between, 10 ms resolution). Then, the proxies applied, /metrics is scraped 4 times 1.1 s apart (each scrape reads the kernel maps again) while /healthz is asked back to back: the longest /healthz wait and the largest event-loop delay the scrapes report. Median over the rounds of each round's maximum.`,
      'CLI: the built `lb validate --config F` and `lb --instance (none) plan --config F` of 10,000 proxies (10,000 distinct backends, 2.0 MB), each in a fresh process, interleaved; wall clock from spawn to exit.',
    ],
    measurements,
    ratios: [
      { key: 'plan_10k_vs_goal', label: 'plan 10k proxies: 1 s / plan time (goal: plan < 1 s)', value: ratio(1000, plan10k), goal: 1 },
      { key: 'cli_validate_vs_goal', label: 'lb validate of 10k proxies: 1.5 s / wall time (goal: under 1.5 s)', value: ratio(CLI_GOAL_MS, median(cli.validateMs)), goal: 1 },
      { key: 'cli_plan_vs_goal', label: 'lb plan of 10k proxies: 1.5 s / wall time (goal: under 1.5 s)', value: ratio(CLI_GOAL_MS, median(cli.planMs)), goal: 1 },
      { key: 'plan_scaling', label: 'plan time 10k / 1k proxies (10 = linear)', value: ratio(plan10k, median(plans[1_000]!.map((o) => o.totalMs!))) },
      { key: 'raw_vs_apply', label: 'raw batched update / transactional apply (goal: apply within 2x)', value: ratio(median(rawMs), median(applyMs)), goal: 0.5 },
      { key: 'apply_vs_change', label: 'full apply / steady 1% change (goal: the change under 10% of a full apply)', value: ratio(median(applyMs), median(steadyMs)), goal: 10 },
      { key: 'apply_vs_first_change', label: "full apply / a process's first 1% change", value: ratio(median(applyMs), median(changeMs)) },
      { key: 'daemon_full_vs_change', label: "daemon's path: full / 1% change (proportional to the change would be ~100)", value: ratio(median(daemonFull), median(daemonChange)) },
      { key: 'daemon_healthz_vs_goal', label: 'daemon preparing and applying 10k proxies: 100 ms / longest /healthz wait (goal: within 100 ms)', value: ratio(OPS_GOAL_MS, median(healthzMax)), goal: 1 },
      { key: 'daemon_scrape_healthz_vs_goal', label: 'daemon serving 10k proxies, /metrics scraped: 100 ms / longest /healthz wait (goal: within 100 ms)', value: ratio(OPS_GOAL_MS, median(scrapeHealthzMax)), goal: 1 },
      { key: 'daemon_loop_delay_vs_goal', label: 'the same: 100 ms / the daemon\'s largest event-loop delay (goal: well under 100 ms)', value: ratio(OPS_GOAL_MS, median(loopMax)), goal: 1 },
      { key: 'apply_rss_vs_goal', label: 'peak RSS of the apply: 300 MiB / measured (goal: under 300 MiB)', value: ratio(300, Math.max(...applies.map((o) => o.maxRssMiB!))), goal: 1 },
    ],
    notes: [],
  };
}

export const planApplySuite: Suite = { name: 'planapply', title: 'Plan and apply at scale', run: runSuite };
