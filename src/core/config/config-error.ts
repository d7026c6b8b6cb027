// The error a rejected config raises: an LbError whose code names the stage that failed and whose
// data holds every diagnostic. The reconcile loop treats it as stalling (a human must fix the
// config; retrying the same revision cannot help).

import { LbError, type ErrorCode } from '../errors.js';
import { boundDiagnostics, countErrors } from './bound-diagnostics.js';
import { formatDiagnostics, type Diagnostic, type DiagnosticStage } from './diagnostics.js';

const CODES: Record<DiagnosticStage, ErrorCode> = {
  io: 'LB_CONFIG_IO',
  parse: 'LB_CONFIG_PARSE',
  schema: 'LB_CONFIG_SCHEMA',
  semantic: 'LB_CONFIG_SEMANTIC',
  compile: 'LB_COMPILE_INVALID',
};

/** The registry code of a finding of `stage` (what `lb validate --format json|sarif` reports as its code when it has no finer one). */
export function errorCodeOfStage(stage: DiagnosticStage): ErrorCode {
  return CODES[stage];
}

export class ConfigError extends LbError {
  /** Capped and bounded (bound-diagnostics.ts), whoever built them: they reach logs and /readyz. */
  readonly diagnostics: readonly Diagnostic[];
  /** Every error found, those left out by the cap included. */
  readonly errorCount: number;

  constructor(stage: DiagnosticStage, diagnostics: readonly Diagnostic[], options?: { cause?: unknown }) {
    const bounded = boundDiagnostics(diagnostics);
    const errors = bounded.filter((d) => d.severity === 'error');
    const errorCount = countErrors(bounded);
    const summary = `config invalid: ${errorCount} error${errorCount === 1 ? '' : 's'}`;
    super(CODES[stage], errors.length > 0 ? `${summary}\n${formatDiagnostics(errors)}` : summary, { stage, diagnostics: bounded }, options);
    this.name = 'ConfigError';
    this.diagnostics = bounded;
    this.errorCount = errorCount;
  }

  /** Every diagnostic as `file:line:column: /pointer: message`, one per line. */
  format(): string {
    return formatDiagnostics(this.diagnostics);
  }
}
