// How the CLI reports an error that ends a command: one clear message, no stack trace. A refused
// privileged operation says what is missing (./permission.ts); an lb error its message; anything
// else is an internal error. LB_DEBUG=1 adds the details: the stack and the error's data.

import { inspect } from 'node:util';
import { isLbError } from '../core/errors.js';
import { permissionError, permissionRefusal } from './permission.js';

/** The text written to stderr (ends with a newline). */
export function describeFailure(err: unknown, debug: boolean): string {
  const refused = permissionRefusal(err);
  if (refused !== null) {
    const e = permissionError(refused, err);
    return `lb: ${e.message}\n${debug ? details(err) : ''}`;
  }
  if (isLbError(err)) return `lb: ${err.message}\n${debug ? details(err) : ''}`;
  if (debug) return `lb: internal error: ${err instanceof Error ? err.stack : String(err)}\n`;
  return `lb: internal error: ${err instanceof Error ? err.message : String(err)} (LB_DEBUG=1 shows where)\n`;
}

function details(err: unknown): string {
  return `lb: details (LB_DEBUG): ${inspect(err, { depth: 4, breakLength: 120 })}\n`;
}
