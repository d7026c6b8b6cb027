// The error a rejected config raises: an LbError whose code names the stage that failed and whose
// data holds every diagnostic. The reconcile loop treats it as stalling (a human must fix the
// config; retrying the same revision cannot help).

import { LbError, type ErrorCode } from '../errors.js';
import { formatDiagnostics, type Diagnostic, type DiagnosticStage } from './diagnostics.js';

const CODES: Record<DiagnosticStage, ErrorCode> = {
  io: 'LB_CONFIG_IO',
  parse: 'LB_CONFIG_PARSE',
  schema: 'LB_CONFIG_SCHEMA',
  semantic: 'LB_CONFIG_SEMANTIC',
  compile: 'LB_COMPILE_INVALID',
};

export class ConfigError extends LbError {
  readonly diagnostics: readonly Diagnostic[];

  constructor(stage: DiagnosticStage, diagnostics: readonly Diagnostic[], options?: { cause?: unknown }) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    const first = errors[0];
    const summary = `config invalid: ${errors.length} error${errors.length === 1 ? '' : 's'}`;
    super(CODES[stage], first ? `${summary}\n${formatDiagnostics(errors)}` : summary, { stage, diagnostics }, options);
    this.name = 'ConfigError';
    this.diagnostics = diagnostics;
  }

  /** Every diagnostic as `file:line:column: /pointer: message`, one per line. */
  format(): string {
    return formatDiagnostics(this.diagnostics);
  }
}
