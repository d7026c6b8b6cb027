// ajv, with allErrors, joins the errors of a failing call into a referenced schema ($ref) to the
// caller's list with `vErrors.concat(callee.errors)`: a copy of every error found so far, for
// every failing call. Over an array of failing items (proxies, targets) that is quadratic: 8000
// targets lacking ip and host took 1.8 s in ajv alone (4000: 80 ms). Compiling the schema with
// every $ref inlined avoids the calls but yields 0.5 MB of code and 0.3-0.7 s more at every start.
// So the generated code is adjusted through ajv's documented hook for it (code.process): the
// join appends in place, linear in the callee's errors. If a later ajv words the join otherwise,
// nothing breaks, and the growth-ratio test (test/unit/config/linear-checks.test.ts) fails.

const JOIN = /vErrors\.concat\(([\w$]+\.errors)\)/g;

/** Declared once at the top of each generated module; ajv's own names never start with lb. */
const APPEND = 'function lbAppendErrors(list, more) { for (let i = 0; i < more.length; i++) list.push(more[i]); return list; }\n';

export function joinErrorsInPlace(code: string): string {
  return code.includes('vErrors.concat(') ? APPEND + code.replace(JOIN, 'lbAppendErrors(vErrors, $1)') : code;
}

/**
 * The same rewrite over a standalone module (ajv keeps the source it generated before
 * code.process): the helper is declared once, after the module's "use strict" directive.
 */
export function joinErrorsInPlaceModule(code: string): string {
  if (!code.includes('vErrors.concat(')) return code;
  const strict = '"use strict";';
  const body = code.replace(JOIN, 'lbAppendErrors(vErrors, $1)');
  return body.startsWith(strict) ? `${strict}\n${APPEND}${body.slice(strict.length)}` : APPEND + body;
}
