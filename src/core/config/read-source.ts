// Picks the reader for a config file by its extension. Pure: file name and text in.

import type { ReadResult } from './diagnostics.js';
import { readEdn } from './edn.js';
import { readYamlFast } from './fast-yaml-reader.js';
import { yamlTooDeep } from './yaml-depth.js';

export type ConfigFormat = 'yaml' | 'edn';

/** The extensions a config directory contributes, and the format of each. */
const FORMATS: Record<string, ConfigFormat> = { '.yaml': 'yaml', '.yml': 'yaml', '.edn': 'edn' };

export function configFormatOf(file: string): ConfigFormat | undefined {
  const dot = file.lastIndexOf('.');
  return dot < 0 ? undefined : FORMATS[file.slice(dot).toLowerCase()];
}

/**
 * The config files of a directory listing, in merge order: *.yaml, *.yml and *.edn, hidden files
 * (editor backups, .git) left out, sorted by name in code-unit order so every host merges alike.
 */
export function selectConfigFiles(names: readonly string[]): string[] {
  return names.filter((n) => !n.startsWith('.') && configFormatOf(n) !== undefined).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export function readSource(file: string, text: string): ReadResult {
  const format = configFormatOf(file);
  if (format === undefined) {
    return { ok: false, errors: [{ message: 'unsupported file type: a config file ends in .yaml, .yml or .edn', line: 1, column: 1 }] };
  }
  // A byte-order mark is invisible in editors; do not let it become part of the first key.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (format === 'edn') return readEdn(body);
  const deep = yamlTooDeep(body);
  return deep ? { ok: false, errors: [deep] } : readYamlFast(body);
}
