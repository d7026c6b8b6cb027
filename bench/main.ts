// `make bench` (node dist/bench/main.js [options]): runs the benchmark suites in one sandbox and
// prints absolute figures and the ratios between figures measured in the same run; writes the
// results to bench/results/<date>.json (git-ignored). docs/benchmarks.md explains the method.
//
// Adding a benchmark: write a module exporting a Suite (bench/lib/suite.ts) and append it to
// SUITES. ctx.env() gives the shared sandbox only to suites that ask for it.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.js';
import { eventsSuite } from './events.js';
import { floodSuite } from './flood.js';
import { gitopsSuite } from './gitops.js';
import { hostileSuite } from './hostile.js';
import { httpSuite } from './http.js';
import { BenchEnv } from './lib/env.js';
import { Cleanup } from './lib/cleanup.js';
import { BenchError } from './lib/errors.js';
import type { BenchOptions, Suite, SuiteContext, SuiteResult } from './lib/suite.js';
import { planApplySuite } from './plan-apply.js';
import { ppsSuite } from './pps.js';
import { sniSuite } from './sni.js';
import { formatReport, resultsDocument, type RunMeta, type SuiteFailure } from './report.js';
import { rateLimitSuite } from './rate-limit.js';
import { testRunSuite } from './test-run.js';

/** Every suite, in the order they run. */
export const SUITES: Suite[] = [ppsSuite, httpSuite, testRunSuite, rateLimitSuite, floodSuite, eventsSuite, planApplySuite, hostileSuite, gitopsSuite, sniSuite];

const DEFAULTS: BenchOptions = {
  rounds: 4,
  ppsSeconds: 2,
  ppsWarmupSeconds: 1,
  httpSeconds: 3,
  httpRounds: 2,
  testRunRepeat: 1_000_000,
  testRunCalls: 80,
  verbose: true,
};

const REQUIRED_TOOLS: Record<string, string[]> = {
  pps: ['trafgen', 'timeout', 'ip', 'clang'],
  http: ['wrk', 'nft', 'ip', 'curl'],
  testrun: ['clang', 'ip'],
  flood: ['trafgen', 'timeout', 'wrk', 'ip'],
  events: ['clang'],
  planapply: ['ip', 'nsenter'],
  hostile: ['mkfifo', 'mknod'],
  gitops: ['git', 'curl', 'ip', 'nsenter'],
  sni: ['haproxy', 'openssl', 'ip', 'nsenter'],
};

const USAGE = `usage: node dist/bench/main.js [options]     (make bench BENCH_ARGS="...")
  --only LIST        suites to run, comma-separated: ${SUITES.map((s) => s.name).join(', ')} (default: all)
  --rounds N         pps rounds per forwarder, median reported (default ${DEFAULTS.rounds})
  --seconds N        pps measurement window in seconds (default ${DEFAULTS.ppsSeconds})
  --warmup N         pps warm-up before each window in seconds (default ${DEFAULTS.ppsWarmupSeconds})
  --http-seconds N   duration of each wrk run (default ${DEFAULTS.httpSeconds})
  --http-rounds N    wrk rounds over every target (default ${DEFAULTS.httpRounds})
  --repeat N         BPF_PROG_TEST_RUN repeat of the single-call reference runs (default ${DEFAULTS.testRunRepeat})
  --calls N          BPF_PROG_TEST_RUN calls of 250 runs per program, batched (default ${DEFAULTS.testRunCalls})
  --quick            1 round, short windows: for iterating, not for the record
  --no-write         do not write bench/results/<date>.json
  --quiet            no progress lines`;

interface Args { options: BenchOptions; only: string[]; write: boolean }

function parseArgs(argv: string[]): Args {
  const options = { ...DEFAULTS };
  let only = SUITES.map((s) => s.name);
  let write = true;
  const num = (flag: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new BenchError(`${flag} needs a number in ${min}..${max}, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--only': {
        only = (argv[++i] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        const unknown = only.filter((n) => !SUITES.some((s) => s.name === n));
        if (unknown.length > 0 || only.length === 0) throw new BenchError(`--only: unknown suite(s) ${unknown.join(', ') || '(none given)'}; known: ${SUITES.map((s) => s.name).join(', ')}`);
        break;
      }
      case '--rounds': options.rounds = num(a, argv[++i], 1, 20); break;
      case '--seconds': options.ppsSeconds = num(a, argv[++i], 1, 30); break;
      case '--warmup': options.ppsWarmupSeconds = num(a, argv[++i], 0, 10); break;
      case '--http-seconds': options.httpSeconds = num(a, argv[++i], 1, 30); break;
      case '--http-rounds': options.httpRounds = num(a, argv[++i], 1, 10); break;
      case '--repeat': options.testRunRepeat = Math.round(num(a, argv[++i], 1, 100_000_000)); break;
      case '--calls': options.testRunCalls = Math.round(num(a, argv[++i], 1, 10_000)); break;
      case '--quick': Object.assign(options, { rounds: 1, ppsSeconds: 2, ppsWarmupSeconds: 1, httpSeconds: 2, httpRounds: 1, testRunRepeat: 100_000, testRunCalls: 20 }); break;
      case '--no-write': write = false; break;
      case '--quiet': options.verbose = false; break;
      case '-h': case '--help': process.stdout.write(`${USAGE}\n`); process.exit(0); break;
      default: throw new BenchError(`unknown argument ${JSON.stringify(a)}\n${USAGE}`);
    }
  }
  return { options, only, write };
}

function preflight(selected: Suite[]): void {
  if (process.getuid?.() !== 0) throw new BenchError('the benchmark needs root (network namespaces, BPF): run it as root');
  const tools = new Set(selected.flatMap((s) => REQUIRED_TOOLS[s.name] ?? []));
  const missing = [...tools].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0);
  if (missing.length > 0) throw new BenchError(`missing tools: ${missing.join(', ')} (\`make setup\` installs them)`);
  const root = packageRoot();
  for (const f of ['build/bpf/lb_xdp.bpf.o', 'build/bpf/lb_tc.bpf.o', 'dist/src/sandbox/backend-server.js']) {
    if (!existsSync(join(root, f))) throw new BenchError(`${f} is missing: run \`make build\` first`);
  }
}

function hostInfo(): RunMeta['host'] {
  const list = cpus();
  return {
    kernel: release(),
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    node: process.version,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
  };
}

/** Leftovers of this run that cleanup should have removed (namespaces, pins). */
function leftovers(env: BenchEnv | undefined): string[] {
  if (!env) return [];
  const out: string[] = [];
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of ns.split('\n')) {
    const name = line.trim().split(/\s+/)[0];
    if (name && name.startsWith(`${env.topo.prefix}-`)) out.push(`namespace ${name}`);
  }
  if (existsSync(`/sys/fs/bpf/lb/${env.instance}`)) out.push(`pins /sys/fs/bpf/lb/${env.instance}`);
  return out;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const selected = SUITES.filter((s) => args.only.includes(s.name));
  preflight(selected);
  const log = (m: string): void => { if (args.options.verbose) process.stderr.write(`[bench] ${m}\n`); };

  const cleanup = new Cleanup(log);
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n[bench] ${signal}: cleaning up\n`);
    cleanup.runAllSync();
    // The topology's own exit handler removes anything left in the namespaces.
    process.exit(signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 129);
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);

  const started = new Date();
  const loadBefore = loadavg()[0]!;
  let envPromise: Promise<BenchEnv> | undefined;
  let env: BenchEnv | undefined;
  const ctx: SuiteContext = {
    options: args.options,
    log,
    env: () => {
      envPromise ??= BenchEnv.create(cleanup, log).then((e) => { env = e; return e; });
      return envPromise;
    },
  };

  const results: SuiteResult[] = [];
  const failures: SuiteFailure[] = [];
  try {
    for (const suite of selected) {
      log(`suite ${suite.name}: ${suite.title}`);
      try {
        results.push(await suite.run(ctx));
      } catch (err) {
        const msg = err instanceof Error ? `${err.message}${err.cause instanceof Error ? ` (cause: ${err.cause.message})` : ''}` : String(err);
        failures.push({ suite: suite.name, error: msg });
        log(`suite ${suite.name} failed: ${msg}`);
        if (envPromise && !env) break; // the sandbox could not be built: the other suites would fail alike
      }
    }
  } finally {
    log('cleaning up');
    const errors = await cleanup.runAll();
    for (const e of errors) {
      process.stderr.write(`[bench] cleanup step "${e.label}" failed: ${e.error instanceof Error ? e.error.message : String(e.error)}\n`);
    }
    const left = leftovers(env);
    if (left.length > 0) process.stderr.write(`[bench] WARNING: left behind: ${left.join(', ')}\n`);
  }

  const finished = new Date();
  const meta: RunMeta = {
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: (finished.getTime() - started.getTime()) / 1000,
    host: hostInfo(),
    loadAverage: { before: loadBefore, after: loadavg()[0]! },
    options: args.options,
    suites: selected.map((s) => s.name),
  };
  process.stdout.write(`${formatReport(meta, results, failures)}\n`);
  if (args.write && results.length > 0) {
    const dir = join(packageRoot(), 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${started.toISOString().slice(0, 19).replaceAll(':', '-')}.json`);
    writeFileSync(file, `${JSON.stringify(resultsDocument(meta, results, failures), null, 2)}\n`);
    process.stdout.write(`\nresults written to ${file}\n`);
  }
  return failures.length > 0 ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
