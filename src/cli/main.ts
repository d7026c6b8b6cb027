// The lb command line. Each command is a thin wrapper: parse options, call the core, map the
// result to an exit code. Add commands in buildProgram; keep their logic in ./commands/.

import { Command } from 'commander';
import { isLbError } from '../errors.js';
import { runValidate } from './commands/validate.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('lb')
    .description('GitOps-driven eBPF/XDP layer-4 load balancer')
    .option('--instance <name>', 'instance name (bpffs directory and socket names)', 'default')
    .showHelpAfterError();

  program
    .command('validate')
    .description('check a config (file or directory) without touching the data plane; exit 0 valid, 1 invalid')
    .option('-c, --config <path>', 'config file (.yaml, .yml, .edn) or directory of them', './lb.yaml')
    .addHelpText('after', '\nExamples:\n  lb validate\n  lb validate --config /etc/lb/config.d\n  lb validate -c examples/repo/lb.yaml')
    .action(async (opts: { config: string }) => {
      process.exitCode = await runValidate({ config: opts.config });
    });

  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (err) {
    if (!isLbError(err)) throw err;
    process.stderr.write(`lb: ${err.message}\n`);
    process.exitCode = 1;
  }
}

await main();
