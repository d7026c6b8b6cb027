// The validator a build precompiles (ajv's standalone code, scripts/precompile-schema.mjs) must
// judge every config exactly as the one compiled at run time: same verdict, same errors in the
// same order, with the same params, schema, parent schema and data (validate.ts words its
// diagnostics from those). Both are generated here from the sources, and run on the seed
// configs, the fixtures and a list of invalid configs that reaches every kind of error lb words.

import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { readSource } from '../../../src/core/config/read-source.js';
import { compileConfigValidator, configValidatorModule } from '../../../src/core/config/schema-compile.js';
import { configSchemaDigest } from '../../../src/core/config/schema-source.js';
import { FIXTURES, SEEDS } from './helpers.js';

/**
 * The generated module, imported from a scratch directory, with a require of ajv's runtime
 * helpers that resolves from this repository.
 */
async function loadModule(code: string): Promise<ValidateFunction & { schemaDigest: string }> {
  // As scripts/precompile-schema.mjs declares it, resolving from here.
  const text = `import { createRequire } from "node:module";\nconst require = createRequire(${JSON.stringify(import.meta.url)});\n${code}`;
  const dir = mkdtempSync(join(tmpdir(), 'lb-validator-'));
  try {
    const file = join(dir, 'config-validator.generated.mjs');
    writeFileSync(file, text);
    const mod = (await import(pathToFileURL(file).href)) as { default: ValidateFunction; schemaDigest: string };
    return Object.assign(mod.default, { schemaDigest: mod.schemaDigest });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parse(file: string, text: string): unknown {
  const read = readSource(file, text);
  if (!read.ok) throw new Error(`${file}: ${read.errors[0]!.message}`);
  return read.value ?? {};
}

const PROXY = { name: 'web', listen: { interfaces: ['eth0'], port: 80 }, 'default-target': [{ ip: '10.0.0.1', port: 8080 }] };
const withProxy = (patch: Record<string, unknown>): unknown => ({ proxies: [{ ...PROXY, ...patch }] });

/** Each of these fails the schema in its own way. */
const INVALID: Array<[string, unknown]> = [
  ['not an object', 42],
  ['unknown top-level key', { proxies: [PROXY], cluster: {} }],
  ['unknown proxy key, misspelt', withProxy({ 'defualt-target': [] })],
  ['a global setting under a proxy', withProxy({ 'connection-timeout-sec': 5 })],
  ['missing required key', { proxies: [{ name: 'web', listen: { interfaces: ['eth0'], port: 80 } }] }],
  ['wrong type', withProxy({ name: 7 })],
  ['port out of range', withProxy({ listen: { interfaces: ['eth0'], port: 70000 } })],
  ['IPv6 address', withProxy({ 'default-target': [{ ip: '::1', port: 80 }] })],
  ['target with neither ip nor host (anyOf)', withProxy({ 'default-target': [{ port: 80 }] })],
  ['target with both ip and host', withProxy({ 'default-target': [{ ip: '10.0.0.1', host: 'a.example', port: 80 }] })],
  ['repeated interfaces (uniqueItems)', withProxy({ listen: { interfaces: ['eth0', 'eth1', 'eth0', 'eth1'], port: 80 } })],
  ['empty interface list', withProxy({ listen: { interfaces: [], port: 80 } })],
  ['misspelt enum value', withProxy({ listen: { interfaces: ['eth0'], port: 80, protocol: 'tpc' } })],
  ['source route with a hostname', withProxy({ 'source-routes': [{ source: 'example.com', target: { ip: '10.0.0.2', port: 80 } }] })],
  ['sni route without hostname', withProxy({ 'sni-routes': [{ target: { ip: '10.0.0.2', port: 443 } }] })],
  ['bad settings', { proxies: [PROXY], settings: { 'connection-timeout-sec': -1, 'no-such-setting': true, 'health-check-defaults': { interval: 'x' } } }],
  ['many invalid proxies', { proxies: Array.from({ length: 300 }, (_, i) => ({ name: i % 2 ? `p${i}` : i, listen: { port: 'x' }, 'default-target': [{ port: i }] })) }],
  ['a key named __proto__', withProxy({ ['__proto__']: 1 })],
];

function corpus(): Array<[string, unknown]> {
  const files = [
    ...readdirSync(SEEDS).filter((f) => f.endsWith('.edn')).map((f) => join(SEEDS, f)),
    join(FIXTURES, 'full', 'lb.yaml'),
    ...readdirSync(join(FIXTURES, 'yaml-equivalents')).map((f) => join(FIXTURES, 'yaml-equivalents', f)),
  ];
  return [...files.map((f): [string, unknown] => [f, parse(f, readFileSync(f, 'utf8'))]), ...INVALID];
}

describe('the precompiled config validator', () => {
  let precompiled: ValidateFunction & { schemaDigest: string };
  const compiled = compileConfigValidator();

  beforeAll(async () => {
    precompiled = await loadModule(configValidatorModule());
  });

  it('is an ES module that requires only ajv\'s runtime helpers, not its compiler', () => {
    const code = configValidatorModule();
    expect(code).toMatch(/\bexport default validate\d+;/);
    const required = [...code.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]);
    expect(required.length).toBeGreaterThan(0);
    expect(required.filter((spec) => !spec!.startsWith('ajv/dist/runtime/'))).toEqual([]);
  });

  it('names the schema it was generated from', () => {
    expect(precompiled.schemaDigest).toBe(configSchemaDigest());
  });

  it.each(corpus())('judges %s as the run-time compiled one does', (_name, value) => {
    const verdict = compiled(value);
    expect(precompiled(value)).toBe(verdict);
    expect(precompiled.errors).toEqual(compiled.errors);
  });

  it('fails where expected: the invalid list is invalid, the files are valid', () => {
    for (const [name, value] of INVALID) expect(compiled(value), name).toBe(false);
    expect(INVALID.flatMap(([, v]) => (compiled(v) ? [] : compiled.errors!.map((e) => e.keyword)))).toEqual(expect.arrayContaining(
      ['type', 'required', 'additionalProperties', 'anyOf', 'uniqueItems', 'enum', 'maximum', 'minItems'],
    ));
  });
});
