// The config validator precompiled at build time (`make ts` runs this after tsc): ajv's standalone
// code for schemas/lb-config.schema.json as an ES module, written next to
// dist/src/core/config/schema.js, which loads it instead of compiling the schema at every start
// (src/core/config/schema.ts, schema-compile.ts).

import { writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { configValidatorModule } = await import(join(root, 'dist/src/core/config/schema-compile.js'));
const target = join(root, 'dist/src/core/config/config-validator.generated.js');
// ajv's standalone code requires its runtime helpers (CommonJS) even as an ES module: it gets a
// require of its own. (Not imports: a CommonJS module's default import is its module.exports in
// Node but its `default` export under bundlers and vitest, so `.default` would not mean one thing.)
const code = `import { createRequire } from "node:module";\nconst require = createRequire(import.meta.url);\n${configValidatorModule()}`;
// Written whole, then renamed: a process starting meanwhile sees the old module or the new one.
writeFileSync(`${target}.tmp`, code);
renameSync(`${target}.tmp`, target);
process.stdout.write(`precompile-schema: ${target.slice(root.length + 1)} (${code.length} bytes)\n`);
