// The key order the schema lists (schemas/lb-config.schema.json): for a value at some place in a
// config, the properties its schema declares, in declaration order. Follows $ref, if/then/else,
// allOf/anyOf/oneOf, items and prefixItems, choosing by the value's kind (map or list) where a
// schema allows both (a target group: one target or a list). Pure.

import { CONFIG_SCHEMA } from '../schema.js';

type Schema = Record<string, unknown>;
export type Kind = 'map' | 'list' | 'scalar';

const MAX_DEPTH = 32;

function deref(s: unknown, root: Schema): Schema | undefined {
  if (s === null || typeof s !== 'object') return undefined;
  const ref = (s as Schema).$ref;
  if (typeof ref === 'string' && ref.startsWith('#/')) {
    let t: unknown = root;
    for (const part of ref.slice(2).split('/')) t = (t as Schema | undefined)?.[part];
    return deref(t, root);
  }
  return s as Schema;
}

function typeAllows(s: Schema, kind: Kind): boolean {
  const t = s.type;
  if (t === undefined) return true;
  const want = kind === 'map' ? 'object' : kind === 'list' ? 'array' : null;
  const types = Array.isArray(t) ? t : [t];
  return want === null ? !types.includes('object') && !types.includes('array') : types.includes(want);
}

/** The schemas that describe a value of `kind` at `s` (the branches it may take), flattened. */
function branches(s: unknown, kind: Kind, root: Schema, depth = 0): Schema[] {
  const d = deref(s, root);
  if (!d || depth > MAX_DEPTH || !typeAllows(d, kind)) return [];
  const out: Schema[] = [d];
  const condition = deref(d.if, root);
  if (condition) {
    const ifMatches = condition.type === undefined || typeAllows(condition, kind);
    out.push(...branches(ifMatches ? d.then : d.else, kind, root, depth + 1));
  }
  for (const key of ['allOf', 'anyOf', 'oneOf'] as const) {
    const list = d[key];
    if (Array.isArray(list)) for (const b of list) out.push(...branches(b, kind, root, depth + 1));
  }
  return out;
}

/** A place in the schema: the schemas that apply to the value there. */
export interface SchemaPlace {
  schemas: Schema[];
}

export function rootPlace(): SchemaPlace {
  return { schemas: [CONFIG_SCHEMA] };
}

/** The declared keys of a map at `place`, in schema order. */
export function keyOrder(place: SchemaPlace): string[] {
  const keys: string[] = [];
  for (const s of place.schemas.flatMap((x) => branches(x, 'map', CONFIG_SCHEMA))) {
    const props = s.properties;
    if (props && typeof props === 'object') for (const k of Object.keys(props)) if (!keys.includes(k)) keys.push(k);
  }
  return keys;
}

/** The place of the value under `key` of a map at `place`. */
export function childOfMap(place: SchemaPlace, key: string): SchemaPlace {
  const out: Schema[] = [];
  for (const s of place.schemas.flatMap((x) => branches(x, 'map', CONFIG_SCHEMA))) {
    const p = (s.properties as Schema | undefined)?.[key];
    if (p !== undefined) out.push(p as Schema);
  }
  return { schemas: out };
}

/** The place of item `index` of a list at `place`. */
export function childOfList(place: SchemaPlace, index: number): SchemaPlace {
  const out: Schema[] = [];
  for (const s of place.schemas.flatMap((x) => branches(x, 'list', CONFIG_SCHEMA))) {
    const prefix = s.prefixItems;
    if (Array.isArray(prefix) && index < prefix.length) out.push(prefix[index] as Schema);
    else if (s.items && typeof s.items === 'object') out.push(s.items as Schema);
  }
  return { schemas: out };
}

/** Where a key goes: its index in the schema order; keys the schema does not list go last. */
export function orderIndex(order: readonly string[], key: string): number {
  const i = order.indexOf(key);
  return i < 0 ? order.length : i;
}
