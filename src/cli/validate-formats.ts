// `lb validate --format json|sarif`: the diagnostics as data for CI jobs and editors. JSON is lb's
// own shape (file, line, column, pointer, code, message, severity); SARIF 2.1.0 is what GitHub code
// scanning reads to annotate the lines of a pull request (one result per diagnostic, one rule per
// code, with its text from the error registry).

import { errorCodeOfStage } from '../core/config/config-error.js';
import { MORE_DIAGNOSTICS_CODE, type Diagnostic } from '../core/config/diagnostics.js';
import { ERROR_CODES } from '../core/errors.js';

export type ValidateFormat = 'text' | 'json' | 'sarif';
export const VALIDATE_FORMATS: readonly ValidateFormat[] = ['text', 'json', 'sarif'];

export interface DiagnosticRecord {
  file: string;
  line: number | null;
  column: number | null;
  pointer: string;
  /** A finer code when the stage gave one (e.g. dns-unresolved), else the error code of the stage (LB_CONFIG_SCHEMA). */
  code: string;
  message: string;
  severity: 'error' | 'warning';
  stage: Diagnostic['stage'];
  expected?: string;
}

export interface ValidateOutcome {
  valid: boolean;
  /** Every error found (those past the cap included). */
  errorCount: number;
  diagnostics: readonly Diagnostic[];
  /** For a valid config. */
  summary?: { proxies: number; targets: number };
}

export function toRecord(d: Diagnostic): DiagnosticRecord {
  return {
    file: d.file, line: d.line ?? null, column: d.column ?? null, pointer: d.pointer,
    code: d.code ?? errorCodeOfStage(d.stage), message: d.message, severity: d.severity, stage: d.stage,
    ...(d.expected !== undefined ? { expected: d.expected } : {}),
  };
}

export function renderValidateJson(o: ValidateOutcome): string {
  const records = o.diagnostics.map(toRecord);
  return JSON.stringify({
    valid: o.valid,
    errors: o.errorCount,
    warnings: records.filter((r) => r.severity === 'warning').length,
    ...(o.summary ? { summary: o.summary } : {}),
    diagnostics: records,
  }, null, 2);
}

const SARIF_SCHEMA = 'https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json';

/** A path as a SARIF artifact URI: relative paths stay relative (to the repository root GitHub resolves them against), segments percent-encoded. */
export function artifactUri(file: string): string {
  const encoded = file.split('/').map((s) => encodeURIComponent(s)).join('/');
  return file.startsWith('/') ? `file://${encoded}` : encoded.replace(/^\.\//, '');
}

function ruleText(code: string): string {
  if (code === MORE_DIAGNOSTICS_CODE) return 'More diagnostics were found than are listed.';
  return (ERROR_CODES as Record<string, string>)[code] ?? `A config finding of kind ${code}.`;
}

export function renderSarif(o: ValidateOutcome, tool: { version: string }): string {
  const records = o.diagnostics.map(toRecord);
  const ruleIds = [...new Set(records.map((r) => r.code))].sort();
  const results = records.map((r) => {
    const pointer = r.pointer === '' ? '' : `${r.pointer}: `;
    return {
      ruleId: r.code,
      ruleIndex: ruleIds.indexOf(r.code),
      level: r.severity,
      message: { text: `${pointer}${r.message}` },
      ...(r.file === '' ? {} : {
        locations: [{
          physicalLocation: {
            artifactLocation: { uri: artifactUri(r.file) },
            ...(r.line !== null ? { region: { startLine: r.line, ...(r.column !== null ? { startColumn: r.column } : {}) } } : {}),
          },
          ...(r.pointer !== '' ? { logicalLocations: [{ fullyQualifiedName: r.pointer, kind: 'member' }] } : {}),
        }],
      }),
    };
  });
  return JSON.stringify({
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [{
      tool: {
        driver: {
          name: 'lb', semanticVersion: tool.version,
          rules: ruleIds.map((id) => ({ id, shortDescription: { text: ruleText(id) } })),
        },
      },
      // Columns count UTF-16 code units, as the config readers do (diagnostics.ts, Position).
      columnKind: 'utf16CodeUnits',
      results,
    }],
  }, null, 2);
}
