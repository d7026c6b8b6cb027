// The config validator: schemas/lb-config.schema.json compiled by ajv (schema-compile.ts). A
// build (`make build`, scripts/precompile-schema.mjs) writes it as a standalone module next to
// this file in dist, so that no run compiles the schema nor loads ajv's compiler; without that
// module (tests run from src), or when it was generated from another schema than the one beside
// it, the schema is compiled here on first use. Both give the same validation code.

import type { ValidateFunction } from 'ajv/dist/2020.js';
import { ANNOTATION_KEYWORDS, CONFIG_SCHEMA, configSchemaDigest } from './schema-source.js';

export { ANNOTATION_KEYWORDS, CONFIG_SCHEMA };

/** A variable: the module exists only in dist, and tsc must not look for it in src. */
const PRECOMPILED = './config-validator.generated.js';

interface Precompiled {
  default: ValidateFunction;
  schemaDigest?: unknown;
}

async function loadPrecompiled(): Promise<ValidateFunction | undefined> {
  let mod: Precompiled;
  try {
    mod = (await import(PRECOMPILED)) as Precompiled;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
  return mod.schemaDigest === configSchemaDigest() ? mod.default : undefined;
}

const precompiled = await loadPrecompiled();
const compiler = precompiled ? undefined : await import('./schema-compile.js');
let compiled: ValidateFunction | undefined = precompiled;

/** Where this process's validator comes from: the build's standalone module, or ajv now. */
export const CONFIG_VALIDATOR_ORIGIN: 'precompiled' | 'compiled' = precompiled ? 'precompiled' : 'compiled';

export function configValidator(): ValidateFunction {
  compiled ??= compiler!.compileConfigValidator();
  return compiled;
}
