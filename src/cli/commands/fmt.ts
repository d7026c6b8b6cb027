// `lb fmt [--check] [PATH]`: rewrites YAML configs in lb's canonical form (../../core/config/format).
// Prints the files it changed (or, with --check, would change). Exit 0 nothing to do or done,
// 1 with --check when a file would change, or on a file that cannot be read or parsed.

import { writeFileSync } from 'node:fs';
import { formatDiagnostics, type Diagnostic } from '../../core/config/diagnostics.js';
import { formatYamlText } from '../../core/config/format/index.js';
import { configFormatOf } from '../../core/config/read-source.js';
import { readSourcesOrReport, stdio, type CliIo } from '../output.js';

export interface FmtOptions {
  path: string;
  check: boolean;
}

export async function runFmt(options: FmtOptions, io: CliIo = stdio()): Promise<number> {
  const sources = await readSourcesOrReport(io, options.path);
  if (typeof sources === 'number') return sources;
  const failed: Diagnostic[] = [];
  let changed = 0;
  for (const s of sources) {
    if (configFormatOf(s.file) !== 'yaml') {
      io.err(`lb fmt: ${s.file}: not YAML, left as it is (\`lb convert ${s.file}\` makes YAML of it)`);
      continue;
    }
    const r = formatYamlText(s.file, s.text);
    if (!r.ok) {
      failed.push(...r.diagnostics);
      continue;
    }
    if (r.text === s.text) continue;
    changed++;
    if (!options.check) writeFileSync(s.file, r.text);
    io.out(s.file);
  }
  if (failed.length > 0) {
    io.err(formatDiagnostics(failed));
    io.err(`lb fmt: ${failed.length} file${failed.length === 1 ? '' : 's'} could not be formatted`);
    return 1;
  }
  if (options.check && changed > 0) {
    io.err(`lb fmt --check: ${changed} file${changed === 1 ? '' : 's'} not in canonical form (run \`lb fmt ${options.path}\`)`);
    return 1;
  }
  return 0;
}
