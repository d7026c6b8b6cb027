// Plain words for schema fragments and values: what a diagnostic says was expected and what it got.

import { echo } from './echo.js';

type Schema = Record<string, unknown>;

/** "an integer 1..65535", "one of tcp, udp, both", or the schema's own x-expected phrase. */
export function describeSchema(schema: Schema | undefined): string {
  if (!schema) return 'a valid value';
  if (typeof schema['x-expected'] === 'string') return schema['x-expected'];
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => String(v)).join(', ')}`;
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  switch (schema.type) {
    case 'integer':
      return `an integer${range(schema)}`;
    case 'number':
      return `a number${range(schema)}`;
    case 'boolean':
      return 'true or false';
    case 'string':
      return `a string${lengthRange(schema)}`;
    case 'array':
      return 'a list';
    case 'object':
      return 'a map';
    default:
      return 'a valid value';
  }
}

function range(schema: Schema): string {
  const min = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const max = typeof schema.maximum === 'number' ? schema.maximum : undefined;
  if (min !== undefined && max !== undefined) return ` ${min}..${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return '';
}

function lengthRange(schema: Schema): string {
  const min = typeof schema.minLength === 'number' ? schema.minLength : undefined;
  const max = typeof schema.maxLength === 'number' ? schema.maxLength : undefined;
  if (min !== undefined && max !== undefined) return ` of ${min}..${max} characters`;
  if (min !== undefined) return ` of at least ${min} character${min === 1 ? '' : 's'}`;
  if (max !== undefined) return ` of at most ${max} characters`;
  return '';
}

/** A value as a diagnostic quotes it: strings in quotes (shortened, escaped), collections by kind. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)';
  // JSON escapes quotes and C0 controls; echo the rest (DEL, C1, bidirectional controls).
  if (typeof value === 'string') return echo(JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value));
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : `a list of ${value.length}`;
  if (typeof value === 'object') return 'a map';
  return String(value);
}
