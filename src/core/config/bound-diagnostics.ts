// The last step of every list of diagnostics the config layer hands out: each one bounded and
// escaped (see echo.ts), and at most MAX_DIAGNOSTICS of them, the rest counted in one closing
// "and N more" diagnostic. Done where diagnostics leave the layer (checkConfig, ConfigError), so
// the terminal, the logs, the status branch and /readyz all receive the same short, inert text.

import { isError, MORE_DIAGNOSTICS_CODE, type Diagnostic } from './diagnostics.js';
import { echo } from './echo.js';
import { MAX_DIAGNOSTICS, MAX_ECHO_CHARS, MAX_MESSAGE_CHARS } from './limits.js';

/** A diagnostic whose text fields are bounded and escaped; idempotent. */
export function boundDiagnostic(d: Diagnostic): Diagnostic {
  return {
    ...d,
    file: echo(d.file, MAX_MESSAGE_CHARS),
    pointer: boundPointer(d.pointer),
    message: echo(d.message, MAX_MESSAGE_CHARS),
    ...(d.expected !== undefined ? { expected: echo(d.expected, MAX_MESSAGE_CHARS) } : {}),
    ...(d.code !== undefined ? { code: echo(d.code, MAX_ECHO_CHARS) } : {}),
  };
}

/** Each reference token bounded on its own, so a pointer keeps its shape: /settings/<key>. */
export function boundPointer(pointer: string): string {
  if (pointer.length <= MAX_ECHO_CHARS && echo(pointer, MAX_ECHO_CHARS) === pointer) return pointer;
  return pointer
    .split('/')
    .map((token) => echo(token, MAX_ECHO_CHARS))
    .join('/');
}

/**
 * At most MAX_DIAGNOSTICS of `list` (already in report order; errors are kept before warnings),
 * then one diagnostic that counts the rest: "and 19900 more errors (only the first 100
 * diagnostics are listed)". Idempotent: a list that already ends in such a diagnostic is counted
 * through it.
 */
export function capDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  const shown = list.filter((d) => d.code !== MORE_DIAGNOSTICS_CODE);
  const earlier = list.filter((d) => d.code === MORE_DIAGNOSTICS_CODE);
  if (earlier.length === 0 && shown.length <= MAX_DIAGNOSTICS) return [...list];
  const errorCount = shown.filter(isError).length;
  const roomForWarnings = MAX_DIAGNOSTICS - Math.min(errorCount, MAX_DIAGNOSTICS);
  const omitted = { errors: 0, warnings: 0 };
  let errors = 0;
  let warnings = 0;
  let firstOmitted: Diagnostic | undefined = earlier[0];
  const kept = shown.filter((d) => {
    if (isError(d) ? errors++ < MAX_DIAGNOSTICS : warnings++ < roomForWarnings) return true;
    firstOmitted ??= d;
    if (isError(d)) omitted.errors++;
    else omitted.warnings++;
    return false;
  });
  for (const d of earlier) {
    omitted.errors += d.omitted?.errors ?? 0;
    omitted.warnings += d.omitted?.warnings ?? 0;
  }
  if (omitted.errors + omitted.warnings === 0 || firstOmitted === undefined) return kept;
  return [...kept, moreDiagnostic(omitted, firstOmitted)];
}

/** Placed where the first diagnostic left out is, so the reader knows where to look next. */
function moreDiagnostic(omitted: { errors: number; warnings: number }, at: Diagnostic): Diagnostic {
  const parts = [
    ...(omitted.errors > 0 ? [`${omitted.errors} more error${omitted.errors === 1 ? '' : 's'}`] : []),
    ...(omitted.warnings > 0 ? [`${omitted.warnings} more warning${omitted.warnings === 1 ? '' : 's'}`] : []),
  ];
  return {
    severity: omitted.errors > 0 ? 'error' : 'warning',
    stage: at.stage,
    file: at.file,
    pointer: '',
    ...(at.line !== undefined && at.column !== undefined ? { line: at.line, column: at.column } : {}),
    message: `and ${parts.join(' and ')} (only the first ${MAX_DIAGNOSTICS} diagnostics are listed)`,
    code: MORE_DIAGNOSTICS_CODE,
    omitted,
  };
}

/** Bounded, escaped and capped: what every consumer of a list of diagnostics should receive. */
export function boundDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  return capDiagnostics(list).map(boundDiagnostic);
}

/** How many errors a (possibly capped) list stands for, the omitted ones included. */
export function countErrors(list: readonly Diagnostic[]): number {
  let n = 0;
  for (const d of list) {
    if (d.code === MORE_DIAGNOSTICS_CODE) n += d.omitted?.errors ?? 0;
    else if (isError(d)) n++;
  }
  return n;
}
