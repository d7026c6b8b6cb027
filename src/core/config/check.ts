// The config pipeline on texts already in memory: read (YAML/EDN with positions) -> schema ->
// merge -> semantic checks -> normalize. Pure: the file system, a Git tree or a test supplies
// the texts. Problems in one file do not hide problems in another; the semantic checks run only
// once every file is well-formed and matches the schema, since they rely on its shape.

import { boundDiagnostics } from './bound-diagnostics.js';
import { isError, sortDiagnostics, type Diagnostic, type DiagnosticStage } from './diagnostics.js';
import { mergeFiles, type ParsedFile } from './merge.js';
import { normalizeConfig } from './normalize.js';
import { readSource } from './read-source.js';
import type { RawConfig } from './raw-types.js';
import { checkSemantics } from './semantic/index.js';
import type { LbConfig } from './types.js';
import { validateSchema } from './validate.js';

export interface ConfigSource {
  /** As the user knows it: a path, or a path inside a Git tree. */
  file: string;
  text: string;
}

export type CheckResult =
  | { ok: true; config: LbConfig; warnings: Diagnostic[] }
  | { ok: false; stage: DiagnosticStage; diagnostics: Diagnostic[] };

/** `sources` in merge order (see selectConfigFiles for a directory's order). */
export function checkConfig(sources: readonly ConfigSource[]): CheckResult {
  if (sources.length === 0) {
    return fail('io', [{ severity: 'error', stage: 'io', file: '', pointer: '', message: 'no config files' }]);
  }
  const parseErrors: Diagnostic[] = [];
  const schemaErrors: Diagnostic[] = [];
  const parsed: ParsedFile[] = [];
  for (const { file, text } of sources) {
    const read = readSource(file, text);
    if (!read.ok) {
      for (const e of read.errors) parseErrors.push({ severity: 'error', stage: 'parse', file, pointer: '', line: e.line, column: e.column, message: firstLine(e.message) });
      continue;
    }
    // An empty file (or one of comments only) contributes nothing.
    const value = read.value ?? {};
    const problems = validateSchema(file, value, read.positions);
    schemaErrors.push(...problems);
    if (problems.length === 0) parsed.push({ file, value: value as RawConfig, positions: read.positions });
  }
  if (parseErrors.length > 0) return fail('parse', [...parseErrors, ...schemaErrors]);
  if (schemaErrors.length > 0) return fail('schema', schemaErrors);

  const { merged, diagnostics: mergeErrors } = mergeFiles(parsed);
  const semantic = dedupe([...mergeErrors, ...checkSemantics(merged)]);
  if (semantic.some(isError)) return fail('semantic', semantic);
  return { ok: true, config: normalizeConfig(merged), warnings: boundDiagnostics(sortDiagnostics(semantic)) };
}

/** Sorted, then capped and bounded (bound-diagnostics.ts): the same short answer for every consumer. */
function fail(stage: DiagnosticStage, diagnostics: Diagnostic[]): CheckResult {
  return { ok: false, stage, diagnostics: boundDiagnostics(sortDiagnostics(diagnostics)) };
}

/** A parser's message may go on with an excerpt of the file; the position already says where. */
function firstLine(message: string): string {
  const end = message.indexOf('\n');
  return end < 0 ? message : message.slice(0, end).trimEnd();
}

/** One shared cause (a proxy-level health check used by many targets) is reported once. */
function dedupe(list: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const key = `${d.severity}\u0000${d.file}\u0000${d.pointer}\u0000${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
