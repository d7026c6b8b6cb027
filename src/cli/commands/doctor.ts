// `lb doctor [--config PATH]`: can this host run lb, and this config? One line per check, PASS,
// WARN or FAIL, each WARN and FAIL with the fix. Exit 0 without a FAIL, 1 with one. Checks:
// ../doctor/checks.ts; what it reads: ../doctor/facts.ts.

import { ConfigError } from '../../core/config/config-error.js';
import type { LbConfig } from '../../core/config/types.js';
import { loadConfig } from '../../source/load-config.js';
import { configChecks, hostChecks, type Check } from '../doctor/checks.js';
import { gatherFacts } from '../doctor/facts.js';
import { printBlock, stdio, type CliIo } from '../output.js';

export interface DoctorOptions {
  instance: string;
  config?: string;
  format: 'text' | 'json';
}

export function renderChecks(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => c.check.length));
  return checks.map((c) => `${c.status}  ${c.check.padEnd(width)}  ${c.message}${c.fix ? `. Fix: ${c.fix}` : ''}`).join('\n');
}

export async function runDoctor(options: DoctorOptions, io: CliIo = stdio()): Promise<number> {
  const facts = gatherFacts(options.instance);
  const checks = hostChecks(facts);
  if (options.config !== undefined) {
    let config: LbConfig | undefined;
    try {
      config = (await loadConfig(options.config)).config;
      checks.push({ status: 'PASS', check: 'config', message: `${options.config} is valid` });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const first = err.diagnostics.find((d) => d.severity === 'error');
      checks.push({ status: 'FAIL', check: 'config', message: `${options.config} is invalid (${err.errorCount} error${err.errorCount === 1 ? '' : 's'}${first ? `; first: ${first.message}` : ''})`, fix: `lb validate --config ${options.config} lists them` });
    }
    if (config) checks.push(...configChecks(facts, config));
  }
  const failed = checks.filter((c) => c.status === 'FAIL').length;
  const warned = checks.filter((c) => c.status === 'WARN').length;
  if (options.format === 'json') printBlock(io, JSON.stringify({ ok: failed === 0, failed, warned, checks }, null, 2));
  else {
    printBlock(io, renderChecks(checks));
    io.out(`\n${failed === 0 ? 'No check failed' : `${failed} check${failed === 1 ? '' : 's'} failed`}${warned > 0 ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}.`);
  }
  return failed === 0 ? 0 : 1;
}
