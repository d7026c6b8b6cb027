// Compiling schemas/lb-config.schema.json with ajv: at build time into a standalone module
// (scripts/precompile-schema.mjs writes it next to schema.js in dist), or at run time when that
// module is missing or was built from another schema (schema.ts decides). Both come from the one
// ajv set-up below, so they generate the same validation code. Compiling costs ~0.2-0.4 s of CPU
// at every start (ajv's code generation, and the meta-schema compiled to check the schema); the
// standalone module loads in milliseconds.

import Ajv2020Module from 'ajv/dist/2020.js';
import type { Ajv2020 as Ajv2020Instance, ValidateFunction } from 'ajv/dist/2020.js';
import standaloneModule from 'ajv/dist/standalone/index.js';
import { joinErrorsInPlace, joinErrorsInPlaceModule } from './ajv-join-in-place.js';
import { ANNOTATION_KEYWORDS, CONFIG_SCHEMA, configSchemaDigest } from './schema-source.js';
import { LINEAR_UNIQUE_ITEMS } from './unique-items.js';

/** `standalone`: keep the generated source, for an ES module (see configValidatorModule). */
function configAjv(standalone: boolean): Ajv2020Instance {
  const Ajv2020 = Ajv2020Module.default;
  // strictRequired off: `required` inside anyOf/oneOf branches names properties declared by the
  // enclosing schema, which is the point of those branches.
  // code.process: errors of failing $ref calls are appended in place (see ajv-join-in-place.ts);
  // a standalone module gets the same rewrite as a whole (ajv keeps the unprocessed source).
  const ajv = new Ajv2020({
    allErrors: true, verbose: true, strict: true, strictRequired: false,
    code: { process: joinErrorsInPlace, source: standalone, esm: standalone },
  });
  ajv.addVocabulary([...ANNOTATION_KEYWORDS]);
  // ajv's uniqueItems is quadratic on items given by $ref; see unique-items.ts.
  ajv.removeKeyword('uniqueItems');
  ajv.addKeyword(LINEAR_UNIQUE_ITEMS);
  return ajv;
}

/** The config validator, compiled now. */
export function compileConfigValidator(): ValidateFunction {
  return configAjv(false).compile(CONFIG_SCHEMA);
}

/**
 * The config validator as the text of an ES module: the default export is the validate function,
 * `schemaDigest` the digest of the schema it was generated from. ES, not CommonJS: Node scans a
 * CommonJS module imported from ES for its exports, ~25 ms of CPU for this one at every start.
 * The text calls `require` for ajv's small runtime helpers (ajv/dist/runtime/*, CommonJS), not
 * its compiler; whoever writes the module out declares that `require` (scripts/precompile-schema.mjs).
 */
export function configValidatorModule(): string {
  const ajv = configAjv(true);
  const validate = ajv.compile(CONFIG_SCHEMA);
  const code = joinErrorsInPlaceModule(standaloneModule.default(ajv, validate));
  return `${code}\nexport const schemaDigest = ${JSON.stringify(configSchemaDigest())};\n`;
}
