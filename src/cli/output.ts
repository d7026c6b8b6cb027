// What the plan/apply/show/down commands share: where they write, whether to colour, and how a
// recovered journal or a rejected config is reported.

import { ConfigError } from '../core/config/config-error.js';
import type { ConfigSource } from '../core/config/check.js';
import { readConfigSources } from '../source/load-config.js';
import type { RecoveryResult } from '../apply/index.js';
import type { CommandOutput } from './commands/validate.js';

export type { CommandOutput } from './commands/validate.js';

export interface CliIo extends CommandOutput {
  /** ANSI colours on stdout (a TTY, and NO_COLOR unset). */
  color: boolean;
}

export function stdio(): CliIo {
  return {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    color: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
  };
}

/** Writes text that already ends in a newline without adding another. */
export function printBlock(io: CommandOutput, text: string): void {
  io.out(text.endsWith('\n') ? text.slice(0, -1) : text);
}

export function reportRecovery(io: CommandOutput, r: RecoveryResult | null): void {
  if (r === null) return;
  io.err(`lb: ${r.message}`);
  for (const w of r.warnings) io.err(`lb: warning: ${w}`);
}

/** Prints a rejected config the way `lb validate` does; returns the exit code 1. */
export function reportConfigError(io: CommandOutput, err: ConfigError): number {
  const errors = err.errorCount; // all of them, also those past the listed 100
  io.err(err.format());
  io.err(`config invalid: ${errors} error${errors === 1 ? '' : 's'}`);
  return 1;
}

/** The revision to record: --revision, else $LB_REVISION, else none. */
export function revisionOf(option: string | undefined): string | null {
  const r = option ?? process.env.LB_REVISION;
  return r === undefined || r === '' ? null : r;
}

/** The texts of the config files at `path` (convert, fmt), or the exit code 1 after reporting why they cannot be read. */
export async function readSourcesOrReport(io: CommandOutput, path: string): Promise<ConfigSource[] | number> {
  try {
    return await readConfigSources(path);
  } catch (err) {
    if (err instanceof ConfigError) return reportConfigError(io, err);
    throw err;
  }
}
