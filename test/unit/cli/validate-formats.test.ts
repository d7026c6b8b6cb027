// `lb validate --format json|sarif`: the fields of each diagnostic, the exit code, and SARIF output
// that the published SARIF 2.1.0 schema (vendored in test/fixtures/sarif, source in its README)
// accepts, for valid, invalid, unreadable and many-error configs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AjvModule from 'ajv';
import addFormatsModule from 'ajv-formats';
import { afterAll, describe, expect, it } from 'vitest';
import { runValidate, type CommandOutput } from '../../../src/cli/commands/validate.js';
import { artifactUri } from '../../../src/cli/validate-formats.js';
import { FIXTURES, SEEDS } from '../config/helpers.js';

// The schema declares draft-04, which Ajv 8 does not ship; apart from the name of its root `id`
// (draft-07: `$id`) its keywords mean the same in draft-07 (see the README), so it is compiled as
// draft-07 with that one key renamed.
const { id, $schema: _draft04, ...published } = JSON.parse(readFileSync('test/fixtures/sarif/sarif-schema-2.1.0.json', 'utf8')) as Record<string, unknown>;
const ajv = new AjvModule.default({ strict: false, allErrors: true });
addFormatsModule.default(ajv);
const validateSarif = ajv.compile({ $id: id as string, ...published });

const scratch = mkdtempSync(join(tmpdir(), 'lb-validate-formats-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function run(config: string, format: 'json' | 'sarif'): Promise<{ code: number; doc: Record<string, unknown>; stderr: string[] }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: CommandOutput = { out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
  const code = await runValidate({ config, format }, io);
  expect(stdout).toHaveLength(1); // one document, nothing else on stdout
  return { code, doc: JSON.parse(stdout[0]!) as Record<string, unknown>, stderr };
}

function expectSchemaValid(doc: unknown): void {
  const ok = validateSarif(doc);
  expect(ok ? [] : ajv.errorsText(validateSarif.errors, { separator: '\n' }).split('\n')).toEqual([]);
}

interface SarifResult { ruleId: string; level: string; message: { text: string }; locations?: Array<{ physicalLocation: { artifactLocation: { uri: string }; region?: { startLine: number; startColumn: number } } }> }
const resultsOf = (doc: Record<string, unknown>): SarifResult[] => (doc.runs as Array<{ results: SarifResult[] }>)[0]!.results;

describe('lb validate --format json', () => {
  it('gives every field of each diagnostic and exits 1 for an invalid config', async () => {
    const { code, doc, stderr } = await run(`${SEEDS}/sni-routing.edn`, 'json');
    expect(code).toBe(1);
    expect(stderr).toEqual([]);
    expect(doc).toMatchObject({ valid: false, errors: 3, warnings: 0 });
    expect((doc.diagnostics as unknown[])[0]).toEqual({
      file: `${SEEDS}/sni-routing.edn`, line: 52, column: 18, pointer: '/proxies/1/listen/interfaces/0', code: 'LB_CONFIG_SEMANTIC',
      message: expect.stringMatching(/^listener eth0:443\/tcp conflicts with proxy "saas-gateway"/) as unknown, severity: 'error', stage: 'semantic',
    });
  });

  it('exits 0 for a valid config, with its warnings and a summary', async () => {
    const { code, doc } = await run(`${SEEDS}/high-availability.edn`, 'json');
    expect(code).toBe(0);
    expect(doc).toMatchObject({ valid: true, errors: 0, summary: { proxies: 2, targets: 9 } });
    const diags = doc.diagnostics as Array<{ severity: string; pointer: string }>;
    expect(diags.length).toBe(doc.warnings);
    expect(diags.every((d) => d.severity === 'warning')).toBe(true);
    expect(diags.map((d) => d.pointer)).toContain('/settings/max-connections');
  });

  it('reports an unreadable path with null line and column', async () => {
    const { code, doc } = await run(`${FIXTURES}/nope.yaml`, 'json');
    expect(code).toBe(1);
    expect(doc.diagnostics).toEqual([{
      file: `${FIXTURES}/nope.yaml`, line: null, column: null, pointer: '', code: 'LB_CONFIG_IO',
      message: 'cannot read: no such file or directory', severity: 'error', stage: 'io',
    }]);
  });
});

describe('lb validate --format sarif', () => {
  it('is valid SARIF 2.1.0 for an invalid config, one result per diagnostic at its line and column', async () => {
    const { code, doc } = await run(`${SEEDS}/sni-routing.edn`, 'sarif');
    expect(code).toBe(1);
    expectSchemaValid(doc);
    const results = resultsOf(doc);
    expect(results).toHaveLength(3);
    expect(results[0]).toMatchObject({
      ruleId: 'LB_CONFIG_SEMANTIC', level: 'error',
      locations: [{ physicalLocation: { artifactLocation: { uri: `${SEEDS}/sni-routing.edn` }, region: { startLine: 52, startColumn: 18 } } }],
    });
    expect(results[0]!.message.text).toMatch(/^\/proxies\/1\/listen\/interfaces\/0: listener eth0:443/);
  });

  it('is valid for a valid config with warnings, an unreadable file, and a schema error', async () => {
    const warned = await run(`${SEEDS}/high-availability.edn`, 'sarif');
    expect(warned.code).toBe(0);
    expectSchemaValid(warned.doc);
    expect(resultsOf(warned.doc).every((r) => r.level === 'warning')).toBe(true);

    const missing = await run(`${FIXTURES}/nope.yaml`, 'sarif');
    expectSchemaValid(missing.doc);
    expect(resultsOf(missing.doc)[0]!.locations![0]!.physicalLocation.region).toBeUndefined();

    const bad = join(scratch, 'a config.yaml');
    writeFileSync(bad, 'proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: eighty}\n    default-target: {ip: 10.0.0.1, port: 80}\n');
    const schemaError = await run(bad, 'sarif');
    expect(schemaError.code).toBe(1);
    expectSchemaValid(schemaError.doc);
    const r = resultsOf(schemaError.doc)[0]!;
    expect(r.ruleId).toBe('LB_CONFIG_SCHEMA');
    expect(r.locations![0]!.physicalLocation.artifactLocation.uri).toBe(`file://${scratch.split('/').map(encodeURIComponent).join('/')}/a%20config.yaml`);
    expect(r.locations![0]!.physicalLocation.region).toEqual({ startLine: 3, startColumn: 40 });
  });

  it('stays valid past the cap of listed diagnostics (the closing "and N more" is a result of its own)', async () => {
    const many = join(scratch, 'many.yaml');
    const proxies = Array.from({ length: 150 }, (_, i) => `  - name: p${i}\n    listen: {interfaces: [eth0], port: ${70000 + i}}\n    default-target: {ip: 10.0.0.1, port: 80}\n`);
    writeFileSync(many, `proxies:\n${proxies.join('')}`);
    const { code, doc } = await run(many, 'sarif');
    expect(code).toBe(1);
    expectSchemaValid(doc);
    const last = resultsOf(doc).at(-1)!;
    expect(last.ruleId).toBe('more-diagnostics');
    expect(last.message.text).toMatch(/and \d+ more/);
  });

  it('the schema check can fail: a result with an unknown level is rejected', async () => {
    const { doc } = await run(`${SEEDS}/sni-routing.edn`, 'sarif');
    resultsOf(doc)[0]!.level = 'fatal';
    expect(validateSarif(doc)).toBe(false);
  });

  it('artifact URIs: relative paths stay relative, absolute ones become file URIs, odd characters encoded', () => {
    expect(artifactUri('./conf/lb.yaml')).toBe('conf/lb.yaml');
    expect(artifactUri('/etc/lb/a b#1.yaml')).toBe('file:///etc/lb/a%20b%231.yaml');
  });
});
