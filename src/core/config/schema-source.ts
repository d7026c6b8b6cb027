// The config format's one definition, schemas/lb-config.schema.json, and its digest. The
// x-expected / x-error / x-at keywords are lb's annotations for plain-words messages (see
// validate.ts); ajv treats them as vocabulary without validation.

import { createHash } from 'node:crypto';
import schemaJson from '../../../schemas/lb-config.schema.json' with { type: 'json' };

export const CONFIG_SCHEMA: Record<string, unknown> = schemaJson;

/** Annotation keywords lb adds to JSON Schema; editors ignore them. */
export const ANNOTATION_KEYWORDS = ['x-expected', 'x-error', 'x-at'] as const;

let digest: string | undefined;

/** Names the schema a precompiled validator was generated from (schema.ts compares the two). */
export function configSchemaDigest(): string {
  digest ??= createHash('sha256').update(JSON.stringify(CONFIG_SCHEMA)).digest('hex');
  return digest;
}
