// The config format's one definition, schemas/lb-config.schema.json, compiled once with ajv.
// The x-expected / x-error / x-at keywords are lb's annotations for plain-words messages
// (see validate.ts); ajv treats them as vocabulary without validation.

import Ajv2020Module from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import schemaJson from '../../../schemas/lb-config.schema.json' with { type: 'json' };
import { joinErrorsInPlace } from './ajv-join-in-place.js';
import { LINEAR_UNIQUE_ITEMS } from './unique-items.js';

export const CONFIG_SCHEMA: Record<string, unknown> = schemaJson;

/** Annotation keywords lb adds to JSON Schema; editors ignore them. */
export const ANNOTATION_KEYWORDS = ['x-expected', 'x-error', 'x-at'] as const;

let compiled: ValidateFunction | undefined;

export function configValidator(): ValidateFunction {
  if (compiled) return compiled;
  const Ajv2020 = Ajv2020Module.default;
  // strictRequired off: `required` inside anyOf/oneOf branches names properties declared by the
  // enclosing schema, which is the point of those branches.
  // code.process: errors of failing $ref calls are appended in place (see ajv-join-in-place.ts).
  const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, strictRequired: false, code: { process: joinErrorsInPlace } });
  ajv.addVocabulary([...ANNOTATION_KEYWORDS]);
  // ajv's uniqueItems is quadratic on items given by $ref; see unique-items.ts.
  ajv.removeKeyword('uniqueItems');
  ajv.addKeyword(LINEAR_UNIQUE_ITEMS);
  compiled = ajv.compile(CONFIG_SCHEMA);
  return compiled;
}
