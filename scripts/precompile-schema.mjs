// The config validator precompiled at build time (`make ts` runs this after tsc): ajv's standalone
// code for schemas/lb-config.schema.json, written next to dist/src/core/config/schema.js, which
// loads it instead of compiling the schema at every start (src/core/config/schema.ts).

import { writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { configValidatorModule } = await import(join(root, 'dist/src/core/config/schema-compile.js'));
const target = join(root, 'dist/src/core/config/config-validator.generated.cjs');
const code = configValidatorModule();
// Written whole, then renamed: a process starting meanwhile sees the old module or the new one.
writeFileSync(`${target}.tmp`, code);
renameSync(`${target}.tmp`, target);
process.stdout.write(`precompile-schema: ${target.slice(root.length + 1)} (${code.length} bytes)\n`);
