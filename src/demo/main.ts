// `make demo` (node dist/src/demo/main.js [options]): the demo of lb's main job, see docs/demo.md.
// Exit 0 when every step worked; 1 with a message otherwise (everything cleaned up unless --keep);
// 130 after Ctrl-C (cleaned up too).

import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { cleanUp } from './cleanup.js';
import { DemoRun } from './demo.js';
import { artefacts, demoLayout } from './layout.js';
import { Narrator } from './narrative.js';

interface CliOptions {
  keep: boolean;
  clean: boolean;
  ci: boolean;
  requests: number;
  result?: string;
  color: boolean;
}

function requestCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 10 || n > 1000) throw new InvalidArgumentError('expected an integer 10..1000');
  return n;
}

function parse(argv: readonly string[]): CliOptions {
  const program = new Command()
    .name('make demo DEMO_ARGS=...  (node dist/src/demo/main.js)')
    .description('lb following a Git repository in a sandbox of network namespaces: plan, apply, traffic, a weight shift by commit + webhook, the status commit')
    .option('--keep', 'leave the sandbox, the daemon and the git server running at the end (clean up later with --clean / make demo-clean)', false)
    .option('--clean', 'only take down what a demo left running (--keep, or a crash) and exit', false)
    .option('--ci', 'plain output and per-run names (namespaces, instance, work directory), for tests and CI', false)
    .option('--requests <n>', 'HTTP requests per traffic sample', requestCount, 100)
    .option('--result <file>', 'write the run\'s result (revisions, plans, traffic counts, status commit) as JSON')
    .option('--no-color', 'no ANSI colours (also: NO_COLOR, or stdout not a terminal)')
    .addHelpText('after', '\nExamples:\n  make demo\n  make demo DEMO_ARGS=--keep && make demo-clean\n  node dist/src/demo/main.js --ci --result /tmp/demo.json');
  program.parse([...argv]);
  return program.opts<CliOptions>();
}

async function main(): Promise<number> {
  const opts = parse(process.argv);
  if (opts.keep && opts.ci) throw new Error('--keep and --ci do not go together (a --ci run has per-run names nobody would find)');
  const color = opts.color && !opts.ci && process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
  const say = new Narrator({ color });

  if (opts.clean) {
    const layout = demoLayout(false);
    say.title('lb demo: cleaning up');
    const r = await cleanUp(layout, artefacts());
    if (r.stoppedProcesses > 0) say.step(`stopped ${r.stoppedProcesses} processes in ${layout.prefix}-lb`);
    if (r.downed.length > 0) say.step(`lb down: instance ${r.downed.join(', ')}`);
    if (r.namespaces.length > 0) say.step(`deleted namespaces ${r.namespaces.join(', ')}`);
    if (r.removedWorkDir) say.step(`removed ${layout.workDir}`);
    for (const p of r.problems) say.fail(p);
    if (r.problems.length === 0) say.ok(r.stoppedProcesses + r.downed.length + r.namespaces.length === 0 && !r.removedWorkDir ? 'nothing to clean' : 'clean');
    return r.problems.length === 0 ? 0 : 1;
  }

  say.title('lb demo: GitOps for an XDP load balancer');
  say.note('A config repo in Git, `lb daemon` following it, real traffic through the data plane. See docs/demo.md.');
  const run = new DemoRun({ keep: opts.keep, ci: opts.ci, requests: opts.requests }, say);

  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    say.line();
    say.fail(`${signal}: stopping${opts.keep ? ' (--keep: leaving everything up; make demo-clean takes it down)' : ' and cleaning up'}`);
    const done = opts.keep ? Promise.resolve() : run.cleanup().then(() => undefined);
    void done.finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const result = await run.run();
    if (opts.result) writeFileSync(opts.result, `${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (interrupted) return new Promise<number>(() => undefined); // the signal handler exits
    say.line();
    say.fail(err instanceof Error ? err.message : String(err));
    if (process.env.LB_DEBUG && err instanceof Error && err.stack) say.note(err.stack);
    run.showLogTails();
    if (opts.keep) {
      say.warn(`--keep: left everything as it is for a look (logs in ${run.layout.logDir}); make demo-clean takes it down`);
      run.keepRunning();
    } else {
      say.step('Cleaning up after the failure');
      await run.cleanup();
    }
    const message = err instanceof Error ? err.message : String(err);
    if (opts.result) writeFileSync(opts.result, `${JSON.stringify({ error: message }, null, 2)}\n`);
    say.line();
    say.fail(`demo failed: ${message.split('\n')[0]}`);
    return 1;
  }
}

const exit = (code: number): void => {
  process.exitCode = code;
  // Everything the demo started is stopped or detached; do not let a stray handle keep it alive.
  setTimeout(() => process.exit(code), 2000).unref();
};
main().then(exit, (err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  exit(1);
});
