// `lb convert FILE|DIR [--to yaml|edn] [--out PATH]`: a config from EDN (the original's format) to
// YAML or back, comments carried over. Every file is converted and checked (it must read back as
// the same value) before anything is written; a failure writes nothing. Exit 0 done, 1 error.

import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { convertConfigText, convertedName } from '../../core/config/convert/index.js';
import { formatDiagnostics, type Diagnostic } from '../../core/config/diagnostics.js';
import { configFormatOf, type ConfigFormat } from '../../core/config/read-source.js';
import { printBlock, readSourcesOrReport, stdio, type CliIo } from '../output.js';

export { CONVERT_FORMATS } from '../command-choices.js';

export interface ConvertOptions {
  path: string;
  to?: ConfigFormat;
  out?: string;
}

const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

export async function runConvert(options: ConvertOptions, io: CliIo = stdio()): Promise<number> {
  const dir = isDir(options.path);
  if (dir && options.out === undefined) {
    io.err('lb: converting a directory needs --out DIR (its converted files beside the originals would be merged with them)');
    return 1;
  }
  const sources = await readSourcesOrReport(io, options.path);
  if (typeof sources === 'number') return sources;
  const outputs: Array<{ name: string; text: string }> = [];
  const failed: Diagnostic[] = [];
  for (const s of sources) {
    const to = options.to ?? (dir ? 'yaml' : configFormatOf(s.file) === 'edn' ? 'yaml' : 'edn');
    const r = convertConfigText(s.file, s.text, to);
    if (r.ok) outputs.push({ name: convertedName(basename(s.file), to), text: r.text });
    else failed.push(...r.diagnostics);
  }
  // a.edn and a.yaml of one directory would both become a.yaml: refuse rather than keep one.
  const names = outputs.map((o) => o.name);
  for (const [i, n] of names.entries()) {
    if (names.indexOf(n) !== i) failed.push({ severity: 'error', stage: 'io', file: join(options.path, n), pointer: '', message: `two files of ${options.path} convert to ${n}` });
  }
  if (failed.length > 0) {
    io.err(formatDiagnostics(failed));
    io.err(`lb convert: nothing written (${failed.length} error${failed.length === 1 ? '' : 's'})`);
    return 1;
  }
  if (options.out === undefined) {
    printBlock(io, outputs[0]!.text);
    return 0;
  }
  if (dir) mkdirSync(options.out, { recursive: true });
  for (const o of outputs) {
    const target = dir || isDir(options.out) ? join(options.out, o.name) : options.out;
    writeFileSync(target, o.text);
    io.err(`lb convert: wrote ${target}`);
  }
  return 0;
}
