// What every semantic check gets: the merged config and a way to report at a merged pointer.

import type { Diagnostic } from '../diagnostics.js';
import type { MergedConfig } from '../merge.js';

export interface SemanticContext {
  readonly merged: MergedConfig;
  error(pointer: string, message: string, options?: ReportOptions): void;
  warning(pointer: string, message: string, options?: ReportOptions): void;
  /** How a message names another place: "line 12" in the same file, "b.yaml:12:5" in another. */
  where(pointer: string, from: string): string;
}

export interface ReportOptions {
  onKey?: boolean;
  expected?: string;
}

export function createContext(merged: MergedConfig, out: Diagnostic[]): SemanticContext {
  const report = (severity: Diagnostic['severity'], pointer: string, message: string, options: ReportOptions = {}): void => {
    const at = merged.locate(pointer, options.onKey ?? false);
    out.push({
      severity,
      stage: 'semantic',
      file: at.file,
      pointer: at.pointer,
      ...(at.line !== undefined ? { line: at.line, column: at.column } : {}),
      message,
      ...(options.expected ? { expected: options.expected } : {}),
    });
  };
  return {
    merged,
    error: (p, m, o) => report('error', p, m, o),
    warning: (p, m, o) => report('warning', p, m, o),
    where(pointer, from) {
      const there = merged.locate(pointer);
      const here = merged.locate(from);
      if (there.line === undefined) return there.file;
      if (there.file !== here.file) return `${there.file}:${there.line}:${there.column}`;
      return there.line === here.line ? `line ${there.line}, column ${there.column}` : `line ${there.line}`;
    },
  };
}
