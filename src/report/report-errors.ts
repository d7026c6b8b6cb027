// Turns whatever stopped a reconcile into report errors with positions: a ConfigError yields one
// entry per diagnostic (file relative to the repository root, line, column, pointer); any other
// LbError one entry with its code.

import { isAbsolute, relative, sep } from 'node:path';
import { ConfigError } from '../core/config/config-error.js';
import { LbError } from '../core/errors.js';
import type { ReportError } from './types.js';

/** `rootDir` is SourceRevision.rootDir: files below it are reported repository-relative. */
export function reportErrorsFrom(err: unknown, rootDir?: string): ReportError[] {
  if (err instanceof ConfigError) {
    const errors = err.diagnostics.filter((d) => d.severity === 'error');
    return errors.map((d) => ({
      code: err.code,
      message: d.message,
      file: repoPath(d.file, rootDir),
      ...(d.line !== undefined ? { line: d.line } : {}),
      ...(d.column !== undefined ? { column: d.column } : {}),
      pointer: d.pointer,
    }));
  }
  if (err instanceof LbError) return [{ code: err.code, message: scrub(err.message, rootDir) }];
  return [{ code: 'LB_INTERNAL', message: err instanceof Error ? err.message : String(err) }];
}

function repoPath(file: string, rootDir: string | undefined): string {
  if (rootDir === undefined || !isAbsolute(file)) return file;
  const rel = relative(rootDir, file);
  return rel.startsWith('..') || isAbsolute(rel) ? file : rel.split(sep).join('/');
}

/** Work-directory paths mean nothing to a reader of the status branch: make them repo-relative. */
function scrub(message: string, rootDir: string | undefined): string {
  return rootDir === undefined ? message : message.split(`${rootDir}/`).join('').split(rootDir).join('.');
}
