// Schema validation of one parsed file: ajv with allErrors against schemas/, and every ajv error
// rewritten as a diagnostic that says what was expected, in plain words, at the file position of
// the offending key or value. Pure.

import type { ErrorObject } from 'ajv/dist/2020.js';
import { describeSchema, describeValue } from './describe.js';
import type { Diagnostic, PositionIndex } from './diagnostics.js';
import { echo } from './echo.js';
import { MAX_DIAGNOSTICS } from './limits.js';
import { locateInFile } from './locate.js';
import { joinPointer } from './pointer.js';
import { CONFIG_SCHEMA, configValidator } from './schema.js';
import { closest } from './suggest.js';

type Schema = Record<string, unknown>;

/** Keys of the original (or of YAML) that lb rejects on purpose, and why. */
const UNSUPPORTED_KEYS = new Map<string, string>(Object.entries({
  'admin-api':
    'admin-api is not supported: lb has no HTTP admin API; use the lb CLI (lb status, lb drain), which talks to the daemon over its local control socket',
  cluster:
    'cluster is not supported: every lb node follows the Git branch on its own and reports to the status branch; there is no gossip between nodes',
  ip6: 'ip6 is not supported: the data plane is IPv4-only; use ip with an IPv4 address',
  '<<': 'YAML merge keys (<<) are not supported (YAML 1.2); repeat the keys, or anchor and alias a whole value',
}));

/** Values of the original or of other balancers that lb does not offer, and what to use. */
const UNSUPPORTED_VALUES = new Map<string, string>(Object.entries({
  'round-robin': 'lb picks a backend per new flow by flow hash in the kernel; weighted-random with equal weights spreads flows evenly',
}));

const SETTINGS_KEYS = Object.keys(((CONFIG_SCHEMA.$defs as Schema).settings as Schema).properties as Schema);

/** Keywords whose error is about the value itself; describeSchema covers all of them at once. */
const VALUE_KEYWORDS = new Set([
  'type', 'enum', 'const', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf',
  'minLength', 'maxLength', 'pattern', 'format', 'minItems', 'maxItems',
]);

export function validateSchema(file: string, value: unknown, positions: PositionIndex): Diagnostic[] {
  const validate = configValidator();
  if (validate(value)) return [];
  const errors = dropBranchErrors(validate.errors ?? []);
  const out: Diagnostic[] = [];
  const seenValueErrors = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'if') continue;
    if (VALUE_KEYWORDS.has(e.keyword)) {
      if (seenValueErrors.has(e.instancePath)) continue;
      seenValueErrors.add(e.instancePath);
    }
    // Past the diagnostics that will be listed, an error is only counted: no "did you mean"
    // (40,000 unknown keys spent 1.6 s finding suggestions nobody would see).
    const d = rewrite(e, out.length < SUGGEST_FOR);
    const at = locateInFile(positions, d.pointer, d.onKey);
    out.push({ severity: 'error', stage: 'schema', file, pointer: d.pointer, ...at, message: d.message, ...(d.expected ? { expected: d.expected } : {}) });
  }
  return dedupe(out);
}

interface Rewritten {
  pointer: string;
  message: string;
  expected?: string;
  /** Point at the key rather than the value (unknown keys, x-at). */
  onKey: boolean;
}

/** Diagnostics given a suggestion: those listed, and a margin for the duplicates dedupe drops. */
const SUGGEST_FOR = 2 * MAX_DIAGNOSTICS;

function rewrite(e: ErrorObject, suggest: boolean): Rewritten {
  const parent = (e.parentSchema ?? {}) as Schema;
  const data = e.data;
  if (typeof parent['x-error'] === 'string') {
    const atKey = typeof parent['x-at'] === 'string' ? parent['x-at'] : undefined;
    const hasKey = atKey !== undefined && data !== null && typeof data === 'object' && Object.hasOwn(data, atKey);
    return { pointer: hasKey ? joinPointer(e.instancePath, atKey) : e.instancePath, message: parent['x-error'], onKey: hasKey };
  }
  if (e.keyword === 'additionalProperties') return unknownKey(e.instancePath, String(e.params.additionalProperty), parent, suggest);
  if (e.keyword === 'required') {
    const missing = String(e.params.missingProperty);
    const expected = describeSchema(propertySchema(parent, missing));
    return { pointer: e.instancePath, message: `missing key "${missing}": expected ${expected}`, expected, onKey: false };
  }
  if (e.keyword === 'uniqueItems') {
    const [first, later] = [Number(e.params.j), Number(e.params.i)].sort((a, b) => a - b) as [number, number];
    const item = Array.isArray(data) ? data[later] : undefined;
    return {
      pointer: joinPointer(e.instancePath, later),
      message: `${describeValue(item)} appears twice in this list (first at index ${first})`,
      expected: describeSchema(parent),
      onKey: false,
    };
  }
  if (VALUE_KEYWORDS.has(e.keyword)) {
    const expected = describeSchema(parent);
    return { pointer: e.instancePath, message: `expected ${expected}, got ${describeValue(data)}${hint(parent, data)}`, expected, onKey: false };
  }
  if (e.keyword === 'anyOf' || e.keyword === 'oneOf') {
    const expected = describeSchema(parent);
    return { pointer: e.instancePath, message: `expected ${expected}`, expected, onKey: false };
  }
  return { pointer: e.instancePath, message: e.message ?? `invalid (${e.keyword})`, onKey: false };
}

function unknownKey(objectPointer: string, key: string, parent: Schema, suggest: boolean): Rewritten {
  const pointer = joinPointer(objectPointer, key);
  const allowed = Object.keys((parent.properties as Schema | undefined) ?? {});
  const expected = `one of the keys ${allowed.join(', ')}`;
  // Maps, not objects: a key such as "__proto__" must not find Object.prototype.
  const reason = UNSUPPORTED_KEYS.get(key);
  if (reason !== undefined) return { pointer, message: reason, onKey: true };
  if (!objectPointer.startsWith('/settings') && SETTINGS_KEYS.includes(key) && !allowed.includes(key)) {
    return { pointer, message: `${key} is a global setting: move it under settings`, onKey: true };
  }
  const guess = suggest ? closest(key, allowed) : undefined;
  const suggestion = guess !== undefined ? ` (did you mean "${guess}"?)` : '';
  return { pointer, message: `unknown key "${echo(key)}"${suggestion}; expected ${expected}`, expected, onKey: true };
}

function propertySchema(parent: Schema, key: string): Schema | undefined {
  const props = parent.properties as Record<string, Schema> | undefined;
  const prop = props?.[key];
  if (!prop) return undefined;
  const ref = prop.$ref;
  if (typeof ref === 'string' && ref.startsWith('#/$defs/')) {
    const resolved = (CONFIG_SCHEMA.$defs as Record<string, Schema>)[ref.slice('#/$defs/'.length)];
    return { ...resolved, ...stripRef(prop) };
  }
  return prop;
}

function stripRef(prop: Schema): Schema {
  const { $ref: _ref, description: _d, default: _def, ...rest } = prop;
  return rest;
}

/** A likely reason for a rejected value: a misspelt enum member, an IPv6 address, a hostname. */
function hint(parent: Schema, data: unknown): string {
  if (typeof data !== 'string') return '';
  if (Array.isArray(parent.enum)) {
    const why = UNSUPPORTED_VALUES.get(data);
    if (why !== undefined) return ` (${why})`;
    const guess = closest(data, parent.enum.map(String));
    return guess !== undefined ? ` (did you mean "${guess}"?)` : '';
  }
  const expected = typeof parent['x-expected'] === 'string' ? parent['x-expected'] : '';
  if (expected.includes('IPv4') && data.includes(':')) return ' (IPv6 is not supported: the data plane is IPv4-only)';
  if (expected.includes('IPv4 address or CIDR') && /[A-Za-z]/.test(data)) {
    return ' (source routes match client addresses; hostnames are not resolved here)';
  }
  return '';
}

/**
 * Errors inside the branches of a failed anyOf/oneOf say why each alternative failed; the
 * combinator's own error (worded by its x-error) says what was wanted, so the branches go.
 * Combinators are indexed by instance path, and each error looks only at the combinators on its
 * own path and its ancestors': linear in the number of errors, where comparing every error with
 * every combinator was quadratic (20k targets lacking ip and host).
 */
function dropBranchErrors(errors: ErrorObject[]): ErrorObject[] {
  const combinatorsAt = new Map<string, ErrorObject[]>();
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && e.keyword !== 'oneOf') continue;
    const list = combinatorsAt.get(e.instancePath);
    if (list) list.push(e);
    else combinatorsAt.set(e.instancePath, [e]);
  }
  if (combinatorsAt.size === 0) return errors;
  return errors.filter((e) => !insideFailedCombinator(e, combinatorsAt));
}

function insideFailedCombinator(e: ErrorObject, combinatorsAt: Map<string, ErrorObject[]>): boolean {
  for (let path = e.instancePath; ; path = path.slice(0, path.lastIndexOf('/'))) {
    for (const c of combinatorsAt.get(path) ?? []) {
      if (c !== e && e.schemaPath.startsWith(`${c.schemaPath}/`)) return true;
    }
    if (path === '') return false;
  }
}

/** Drops repeats of a pointer and message. By pointer first: most differ, and messages are long to hash. */
function dedupe(list: Diagnostic[]): Diagnostic[] {
  const seen = new Map<string, string[]>();
  return list.filter((d) => {
    const messages = seen.get(d.pointer);
    if (messages === undefined) {
      seen.set(d.pointer, [d.message]);
      return true;
    }
    if (messages.includes(d.message)) return false;
    messages.push(d.message);
    return true;
  });
}
