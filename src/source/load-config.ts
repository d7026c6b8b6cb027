// The config layer's I/O shell: reads one file, or the *.yaml / *.yml / *.edn files of a
// directory (not its subdirectories), and hands the texts to the pure pipeline in check.ts.

import { checkConfig, type ConfigSource } from '../core/config/check.js';
import { ConfigError } from '../core/config/config-error.js';
import type { Diagnostic } from '../core/config/diagnostics.js';
import type { LbConfig } from '../core/config/types.js';
import { readConfigFiles } from './read-bounded.js';

export interface LoadedConfig {
  config: LbConfig;
  /** Non-fatal findings (e.g. a group whose weights are all 0), already sorted. */
  warnings: Diagnostic[];
}

/** Reads, validates and normalizes the config at `path`; throws ConfigError with every diagnostic. */
export async function loadConfig(path: string): Promise<LoadedConfig> {
  const result = checkConfig(await readConfigSources(path));
  if (!result.ok) throw new ConfigError(result.stage, result.diagnostics);
  return { config: result.config, warnings: result.warnings };
}

/**
 * The texts of the config at `path` (a file, or a directory's config files in merge order), read
 * within the limits of read-bounded.ts (size caps, regular files only, links kept inside).
 */
export async function readConfigSources(path: string): Promise<ConfigSource[]> {
  const { files } = await readConfigFiles(path);
  return files.map(({ file, bytes }) => ({ file, text: bytes.toString('utf8') }));
}
