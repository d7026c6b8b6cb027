// `lb validate [--config PATH] [--format text|json|sarif]`: read, check and normalize the config;
// print every diagnostic or a one-line summary (text, on stderr and stdout), or one document on
// stdout (json, sarif: ../validate-formats.ts). Exit code 0 valid (warnings allowed), 1 invalid.

import { ConfigError } from '../../core/config/config-error.js';
import { formatDiagnostics } from '../../core/config/diagnostics.js';
import { loadConfig } from '../../source/load-config.js';
import type { LbConfig } from '../../core/config/types.js';
import { renderSarif, renderValidateJson, type ValidateFormat, type ValidateOutcome } from '../validate-formats.js';
import { lbVersion } from '../../version.js';

export interface ValidateOptions {
  config: string;
  format?: ValidateFormat;
}

/** Where a command writes; tests pass collectors. */
export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
}

const stdio: CommandOutput = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

export async function runValidate(options: ValidateOptions, output: CommandOutput = stdio): Promise<number> {
  const format = options.format ?? 'text';
  if (format !== 'text') {
    const outcome = await validateOutcome(options.config);
    output.out(format === 'json' ? renderValidateJson(outcome) : renderSarif(outcome, { version: lbVersion() }));
    return outcome.valid ? 0 : 1;
  }
  try {
    const { config, warnings } = await loadConfig(options.config);
    if (warnings.length > 0) output.err(formatDiagnostics(warnings));
    output.out(`config valid: ${plural(config.proxies.length, 'proxy', 'proxies')}, ${plural(countTargets(config), 'target', 'targets')}`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const errors = err.errorCount; // all of them, also those past the listed 100
    output.err(err.format());
    output.err(`config invalid: ${plural(errors, 'error', 'errors')}`);
    return 1;
  }
}

/** The result of checking the config at `path`, valid or not, as data. */
export async function validateOutcome(path: string): Promise<ValidateOutcome> {
  try {
    const { config, warnings } = await loadConfig(path);
    return { valid: true, errorCount: 0, diagnostics: warnings, summary: { proxies: config.proxies.length, targets: countTargets(config) } };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { valid: false, errorCount: err.errorCount, diagnostics: err.diagnostics };
  }
}

/** Every target entry of every group (a host target counts once, before DNS). */
export function countTargets(config: LbConfig): number {
  let n = 0;
  for (const p of config.proxies) {
    n += p.defaultTarget.targets.length;
    for (const r of [...p.sourceRoutes, ...p.sniRoutes]) n += r.targets.targets.length;
  }
  return n;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
