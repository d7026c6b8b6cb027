// Whether two values have the same JSON with object keys sorted (stableJson in
// src/apply/transaction.ts), without building the text when they are plain data: the apply's
// read-back compares the decoded generation with the desired LogicalState this way, and at 10,000
// proxies writing both out with sorted keys costs more than the decode itself.

/**
 * True when `a` and `b` are equal plain data: primitives equal by ===, arrays element by element,
 * plain objects by their own enumerable keys (keys whose value JSON leaves out, undefined and
 * functions, ignored). Then their sorted-key JSON is equal. False says nothing: anything else
 * (a class instance, NaN, nesting deeper than 64) is left to the text comparison.
 */
export function plainEqual(a: unknown, b: unknown, depth = 0): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || depth > 64) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!plainEqual(a[i], b[i], depth + 1)) return false;
    return true;
  }
  if (!isPlain(a) || !isPlain(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let n = 0;
  for (const k of Object.keys(ra)) {
    const v = ra[k];
    if (!inJson(v)) continue;
    n++;
    if (!Object.hasOwn(rb, k) || !plainEqual(v, rb[k], depth + 1)) return false;
  }
  let m = 0;
  for (const k of Object.keys(rb)) if (inJson(rb[k])) m++;
  return n === m;
}

/** Whether JSON.stringify writes an object property with this value. */
function inJson(v: unknown): boolean {
  return v !== undefined && typeof v !== 'function' && typeof v !== 'symbol';
}

function isPlain(o: object): boolean {
  const p: unknown = Object.getPrototypeOf(o);
  return (p === Object.prototype || p === null) && typeof (o as { toJSON?: unknown }).toJSON !== 'function';
}

/** plainEqual, else the comparison of the texts `text` makes (the exact answer, at its cost). */
export function sameJson(a: unknown, b: unknown, text: (v: unknown) => string): boolean {
  return plainEqual(a, b) || text(a) === text(b);
}
