// JSON Schema's uniqueItems in linear time, replacing ajv's own. ajv compares every pair of items
// (O(n²)) unless the items schema names a scalar type directly; interfaces are items by $ref, so
// a listener with 100k interface names took over 30 s. Here every item gets a canonical key and a
// Map finds repeats in one pass. The error is the one ajv gives (keyword uniqueItems, params i and
// j) for the same pair: the last item that repeats an earlier one, and the nearest earlier copy.

import type { AnySchemaObject, FuncKeywordDefinition } from 'ajv/dist/2020.js';
import type { SchemaValidateFunction } from 'ajv/dist/types/index.js';

/** The last (i, j) with j < i and items[j] equal to items[i], j the largest such; or undefined. */
export function lastDuplicate(items: readonly unknown[]): { i: number; j: number } | undefined {
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

/** Equal keys exactly for deep-equal JSON values (object key order does not matter). */
function canonicalKey(value: unknown): string {
  if (value === null || typeof value !== 'object') return `${typeof value}:${String(value)}`;
  return `json:${JSON.stringify(sortedKeys(value))}`;
}

function sortedKeys(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(sortedKeys);
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.map(([k, v]) => [k, sortedKeys(v)]);
}

const validateUniqueItems: SchemaValidateFunction = (schema: unknown, data: unknown, parentSchema?: AnySchemaObject): boolean => {
  if (schema !== true || !Array.isArray(data)) return true;
  const duplicate = lastDuplicate(data);
  if (duplicate === undefined) return true;
  validateUniqueItems.errors = [
    {
      keyword: 'uniqueItems',
      params: duplicate,
      message: `must NOT have duplicate items (items ## ${duplicate.j} and ${duplicate.i} are identical)`,
      // ajv adds the schema and data (verbose) but not the parent schema, which carries x-expected.
      ...(parentSchema ? { parentSchema } : {}),
    },
  ];
  return false;
};

/** Registered in place of ajv's uniqueItems (see schema.ts). */
export const LINEAR_UNIQUE_ITEMS: FuncKeywordDefinition = {
  keyword: 'uniqueItems',
  type: 'array',
  schemaType: 'boolean',
  errors: true,
  validate: validateUniqueItems,
};
