// JSON Schema's uniqueItems in linear time, replacing ajv's own. ajv compares every pair of items
// (O(n²)) unless the items schema names a scalar type directly; interfaces are items by $ref, so
// a listener with 100k interface names took over 30 s. Here every item gets a canonical key and a
// Map finds repeats in one pass. The error is the one ajv gives (keyword uniqueItems, params i and
// j) for the same pair: the last item that repeats an earlier one, and the nearest earlier copy.
//
// The keyword generates code (a code keyword, not a validate function) so that the validator can
// be precompiled to a standalone module at build time (schema-compile.ts): the search is embedded
// in that module from its source text, so lastDuplicate uses nothing outside its own body.

import { _, str } from 'ajv/dist/2020.js';
import type { CodeKeywordDefinition, KeywordCxt, KeywordErrorDefinition } from 'ajv/dist/2020.js';
import { _Code } from 'ajv/dist/compile/codegen/code.js';

/** The last (i, j) with j < i and items[j] equal to items[i], j the largest such; or undefined. */
export function lastDuplicate(items: readonly unknown[]): { i: number; j: number } | undefined {
  // Equal keys exactly for deep-equal JSON values (object key order does not matter).
  const sortedKeys = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map(sortedKeys);
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return entries.map(([k, v]) => [k, sortedKeys(v)]);
  };
  const canonicalKey = (value: unknown): string => (value === null || typeof value !== 'object'
    ? `${typeof value}:${String(value)}`
    : `json:${JSON.stringify(sortedKeys(value))}`);
  const lastIndex = new Map<string, number>();
  let found: { i: number; j: number } | undefined;
  items.forEach((item, i) => {
    const key = canonicalKey(item);
    const j = lastIndex.get(key);
    if (j !== undefined) found = { i, j };
    lastIndex.set(key, i);
  });
  return found;
}

const error: KeywordErrorDefinition = {
  message: ({ params }) => str`must NOT have duplicate items (items ## ${params.j} and ${params.i} are identical)`,
  params: ({ params }) => _`{i: ${params.i}, j: ${params.j}}`,
};

/** Registered in place of ajv's uniqueItems (see schema-compile.ts). */
export const LINEAR_UNIQUE_ITEMS: CodeKeywordDefinition = {
  keyword: 'uniqueItems',
  type: 'array',
  schemaType: 'boolean',
  error,
  code(cxt: KeywordCxt) {
    const { gen, data, schema } = cxt;
    if (schema !== true) return;
    // `code` is what a standalone module declares for it: the function's own source text.
    const find = gen.scopeValue('func', { ref: lastDuplicate, code: new _Code(`(${lastDuplicate.toString()})`) });
    const found = gen.const('dup', _`${find}(${data})`);
    cxt.setParams({ i: _`${found}.i`, j: _`${found}.j` });
    cxt.fail(_`${found} !== undefined`);
  },
};
