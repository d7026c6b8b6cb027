// What the config layer reports: positions in a source text, diagnostics, and their one-line form
// `file:line:column: /pointer: message`.

/** A place in a source text, both 1-based (column counts UTF-16 code units, as editors do). */
export interface Position {
  line: number;
  column: number;
}

/** Where a value sits in its file: the value itself and, for a map entry, its key. */
export interface NodePosition {
  key?: Position;
  value: Position;
}

/** JSON pointer (file-local) -> position of that value; filled by the readers. */
export type PositionIndex = Map<string, NodePosition>;

/** A syntax error from a reader. */
export interface SyntaxIssue {
  message: string;
  line: number;
  column: number;
}

/** What a reader returns for one text: a plain JS value with positions, or syntax errors. */
export type ReadResult =
  | { ok: true; value: unknown; positions: PositionIndex }
  | { ok: false; errors: SyntaxIssue[] };

/** The stage that found a problem; it picks the error code of a ConfigError. */
export type DiagnosticStage = 'io' | 'parse' | 'schema' | 'semantic' | 'compile';

export interface Diagnostic {
  severity: 'error' | 'warning';
  stage: DiagnosticStage;
  /** The file as the user named it (a directory entry is joined to the directory). */
  file: string;
  /** File-local JSON pointer; '' is the file's root value. */
  pointer: string;
  /** Absent only when no position exists (an unreadable file). */
  line?: number;
  column?: number;
  /** What is wrong, in plain words; it states what was expected. */
  message: string;
  /** What was expected, when one short phrase says it (e.g. "an integer 1..65535"). */
  expected?: string;
  /** A stable name of the kind of finding, for tools (set by the compile stage, e.g. "dns-unresolved"). */
  code?: string;
  /** On the closing "and N more" diagnostic only: what the cap left out (see capDiagnostics). */
  omitted?: { errors: number; warnings: number };
}

/** The code of the closing diagnostic that stands for the ones left out by the cap. */
export const MORE_DIAGNOSTICS_CODE = 'more-diagnostics';

/** `lb.yaml:12:7: /proxies/0/listen/port: expected an integer 1..65535, got "eighty"`. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line !== undefined && d.column !== undefined ? `${d.file}:${d.line}:${d.column}` : d.file;
  const pointer = d.pointer === '' ? '' : `${d.pointer}: `;
  const severity = d.severity === 'warning' ? 'warning: ' : '';
  // A diagnostic about no file (the closing "and N more") starts with what it says.
  return `${where === '' ? '' : `${where}: `}${severity}${pointer}${d.message}`;
}

export function formatDiagnostics(list: readonly Diagnostic[]): string {
  return list.map(formatDiagnostic).join('\n');
}

/**
 * By file, line and column (errors before warnings at one place); otherwise in the order found.
 * The closing "and N more" diagnostic stays last.
 */
export function sortDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  return [...list].sort(
    (a, b) =>
      Number(a.code === MORE_DIAGNOSTICS_CODE) - Number(b.code === MORE_DIAGNOSTICS_CODE) ||
      compareStrings(a.file, b.file) ||
      (a.line ?? 0) - (b.line ?? 0) ||
      (a.column ?? 0) - (b.column ?? 0) ||
      compareStrings(a.severity, b.severity),
  );
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function isError(d: Diagnostic): boolean {
  return d.severity === 'error';
}
