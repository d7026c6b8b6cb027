// Shared helpers of the config tests.
import { readFileSync } from 'node:fs';
import { checkConfig, formatDiagnostics, type CheckResult } from '../../../src/core/config/index.js';
import type { LbConfig } from '../../../src/core/config/types.js';

export const SEEDS = 'test/fixtures/seed-configs';
export const FIXTURES = 'test/fixtures/config';

export function checkFile(file: string): CheckResult {
  return checkConfig([{ file, text: readFileSync(file, 'utf8') }]);
}

export function checkText(file: string, text: string): CheckResult {
  return checkConfig([{ file, text }]);
}

/** The formatted diagnostics of a rejected config (throws if it was accepted). */
export function rejection(result: CheckResult): string[] {
  if (result.ok) throw new Error('expected the config to be rejected');
  return formatDiagnostics(result.diagnostics).split('\n');
}

export function accepted(result: CheckResult): LbConfig {
  if (!result.ok) throw new Error(`expected the config to be accepted:\n${formatDiagnostics(result.diagnostics)}`);
  return result.config;
}

/** The config without where it came from: for comparing the same config written twice. */
export function withoutSources(config: LbConfig): unknown {
  return JSON.parse(JSON.stringify(config, (key, value: unknown) => (key === 'source' || key === 'files' ? undefined : value)));
}
