// `lb fmt`: the canonical YAML (schema key order, flow style for short targets, stable quoting),
// the same config after formatting, comments kept, idempotence on every YAML config of the
// project and every seed config converted to YAML, and --check for CI.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runFmt } from '../../../src/cli/commands/fmt.js';
import type { CliIo } from '../../../src/cli/output.js';
import { checkConfig } from '../../../src/core/config/index.js';
import { convertConfigText } from '../../../src/core/config/convert/index.js';
import { formatYamlText } from '../../../src/core/config/format/index.js';
import { FIXTURES, SEEDS, withoutSources } from '../config/helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'lb-fmt-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function fmt(text: string, file = 'lb.yaml'): string {
  const r = formatYamlText(file, text);
  if (!r.ok) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.text;
}

function collector(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, color: false, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

const SCRAMBLED = [
  "# yaml-language-server: $schema=../schemas/lb-config.schema.json",
  "settings:",
  "  max-connections: 1000",
  "  stats-enabled: true",
  "  connection-timeout-sec: 60",
  "proxies:",
  "  - default-target:",
  "      - port: 8080",
  "        weight: 3",
  "        ip: '10.0.0.1'",
  "      - {weight: 1, port: 8080, ip: \"10.0.0.2\"}   # the small one",
  "    # where it listens",
  "    listen:",
  "      port: 80",
  "      interfaces:",
  "        - eth0",
  "    name: '007'",
  "",
].join('\n');

describe('lb fmt, the canonical form', () => {
  it('orders keys as the schema lists them, writes short targets in flow style, and quotes only what must stay a string', () => {
    expect(fmt(SCRAMBLED)).toBe([
      '# yaml-language-server: $schema=../schemas/lb-config.schema.json',
      'proxies:',
      '  - name: "007"',
      '    # where it listens',
      '    listen:',
      '      interfaces: [eth0]',
      '      port: 80',
      '    default-target:',
      '      - {ip: 10.0.0.1, port: 8080, weight: 3}',
      '      - {ip: 10.0.0.2, port: 8080, weight: 1} # the small one',
      'settings:',
      '  stats-enabled: true',
      '  connection-timeout-sec: 60',
      '  max-connections: 1000',
      '',
    ].join('\n'));
  });

  it('keeps keys the schema does not know after the known ones, in their order', () => {
    const out = fmt('proxies: []\nzeta: 1\nsettings: {}\nalpha: 2\n');
    expect(out).toBe('proxies: []\nsettings: {}\nzeta: 1\nalpha: 2\n');
  });

  it('keeps the config the same, and every comment', () => {
    const a = checkConfig([{ file: 'a.yaml', text: SCRAMBLED }]);
    const b = checkConfig([{ file: 'b.yaml', text: fmt(SCRAMBLED) }]);
    expect(a.ok && b.ok).toBe(true);
    if (a.ok && b.ok) expect(withoutSources(b.config)).toEqual(withoutSources(a.config));
    for (const c of ['yaml-language-server', 'the small one', 'where it listens']) expect(fmt(SCRAMBLED)).toContain(c);
  });
});

describe('lb fmt is idempotent', () => {
  const yamlFixtures = readdirSync(FIXTURES, { recursive: true, encoding: 'utf8' }).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(FIXTURES, f));
  const files = [...yamlFixtures, 'examples/repo/lb.yaml'];
  it.each(files)('%s', (file) => {
    const once = fmt(readFileSync(file, 'utf8'), file);
    expect(fmt(once, file)).toBe(once);
  });

  const seeds = readdirSync(SEEDS).filter((f) => f.endsWith('.edn'));
  it.each(seeds)('%s converted to YAML', (seed) => {
    const r = convertConfigText(seed, readFileSync(join(SEEDS, seed), 'utf8'), 'yaml');
    if (!r.ok) throw new Error('conversion failed');
    const once = fmt(r.text);
    expect(fmt(once)).toBe(once);
  });

  it('the scrambled config', () => {
    expect(fmt(fmt(SCRAMBLED))).toBe(fmt(SCRAMBLED));
  });
});

describe('lb fmt, the command', () => {
  it('--check exits 1 and names the file without writing; fmt rewrites it; then --check exits 0', async () => {
    const dir = join(scratch, 'conf.d');
    rmSync(dir, { recursive: true, force: true });
    const file = join(dir, 'web.yaml');
    mkdirSync(dir);
    writeFileSync(file, SCRAMBLED);
    writeFileSync(join(dir, 'old.edn'), '{:settings {:max-connections 5}}\n');

    const check = collector();
    expect(await runFmt({ path: dir, check: true }, check)).toBe(1);
    expect(check.stdout).toEqual([file]);
    expect(readFileSync(file, 'utf8')).toBe(SCRAMBLED);
    expect(check.stderr.join('\n')).toMatch(/old\.edn: not YAML, left as it is/);

    const write = collector();
    expect(await runFmt({ path: dir, check: false }, write)).toBe(0);
    expect(write.stdout).toEqual([file]);
    expect(readFileSync(file, 'utf8')).toBe(fmt(SCRAMBLED));

    const again = collector();
    expect(await runFmt({ path: dir, check: true }, again)).toBe(0);
    expect(again.stdout).toEqual([]);
  });

  it('reports a file that does not parse, and leaves it alone', async () => {
    const file = join(scratch, 'broken.yaml');
    writeFileSync(file, 'proxies: [\n');
    const io = collector();
    expect(await runFmt({ path: file, check: false }, io)).toBe(1);
    expect(io.stderr[0]).toMatch(/broken\.yaml:\d+:\d+: /);
    expect(readFileSync(file, 'utf8')).toBe('proxies: [\n');
  });
});
