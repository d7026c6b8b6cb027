// The config layer's I/O shell: reads one file, or the *.yaml / *.yml / *.edn files of a
// directory (not its subdirectories), and hands the texts to the pure pipeline in check.ts.

import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkConfig, type ConfigSource } from '../core/config/check.js';
import { ConfigError } from '../core/config/config-error.js';
import type { Diagnostic } from '../core/config/diagnostics.js';
import { selectConfigFiles } from '../core/config/read-source.js';
import type { LbConfig } from '../core/config/types.js';

/** Far above any real config; stops a wrong path (a disk image, a log) from being slurped. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

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

/** The texts of the config at `path` (a file, or a directory's config files in merge order). */
export async function readConfigSources(path: string): Promise<ConfigSource[]> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => ioFail(path, err));
  if (!info.isDirectory()) return [await readOne(path, info.size)];
  const entries = await readdir(path, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => ioFail(path, err));
  const candidates = selectConfigFiles(entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name));
  const sources: ConfigSource[] = [];
  for (const name of candidates) {
    const file = join(path, name);
    const entry = await stat(file).catch((err: NodeJS.ErrnoException) => ioFail(file, err));
    if (entry.isFile()) sources.push(await readOne(file, entry.size));
  }
  if (sources.length === 0) ioFail(path, undefined, 'the directory has no *.yaml, *.yml or *.edn files');
  return sources;
}

async function readOne(file: string, size: number): Promise<ConfigSource> {
  if (size > MAX_FILE_BYTES) ioFail(file, undefined, `file is ${size} bytes; a config file may have at most ${MAX_FILE_BYTES}`);
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => ioFail(file, err));
  return { file, text };
}

function ioFail(file: string, err: NodeJS.ErrnoException | undefined, message?: string): never {
  const why = message ?? `cannot read: ${describeErrno(err)}`;
  throw new ConfigError('io', [{ severity: 'error', stage: 'io', file, pointer: '', message: why }], { cause: err });
}

function describeErrno(err: NodeJS.ErrnoException | undefined): string {
  switch (err?.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    default:
      return err?.message ?? 'unknown error';
  }
}
