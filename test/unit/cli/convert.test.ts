// `lb convert`: EDN <-> YAML on every seed config of the original (test/fixtures/seed-configs).
// The round trip gives the same normalized config (or, for the seeds lb rejects, the same
// diagnostics), every comment is carried over, and a second round trip changes nothing.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runConvert } from '../../../src/cli/commands/convert.js';
import type { CliIo } from '../../../src/cli/output.js';
import { checkConfig, type CheckResult } from '../../../src/core/config/index.js';
import { canonical, convertConfigText } from '../../../src/core/config/convert/index.js';
import { scanEdnComments } from '../../../src/core/config/convert/edn-comments.js';
import { readSource } from '../../../src/core/config/read-source.js';
import { SEEDS, withoutSources } from '../config/helpers.js';

const seeds = readdirSync(SEEDS).filter((f) => f.endsWith('.edn')).sort();
const scratch = mkdtempSync(join(tmpdir(), 'lb-convert-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function convert(file: string, text: string, to: 'yaml' | 'edn'): string {
  const r = convertConfigText(file, text, to);
  if (!r.ok) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.text;
}

/** What the check makes of a config, wherever it came from: the config, or the diagnostics without their file positions. */
function outcome(r: CheckResult): unknown {
  if (r.ok) return { config: withoutSources(r.config), warnings: r.warnings.map((d) => [d.pointer, d.message]) };
  return { stage: r.stage, diagnostics: r.diagnostics.map((d) => [d.pointer, d.message.replace(/\(line \d+\)/g, '(line N)')]) };
}

function collector(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, color: false, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describe('lb convert, every seed config', () => {
  it.each(seeds)('%s: EDN -> YAML -> EDN gives the same value and the same normalized config', (name) => {
    const edn = readFileSync(join(SEEDS, name), 'utf8');
    const yaml = convert(`${name}`, edn, 'yaml');
    const back = convert('back.yaml', yaml, 'edn');
    const values = [edn, yaml, back].map((t, i) => readSource(['a.edn', 'b.yaml', 'c.edn'][i]!, t));
    for (const v of values) expect(v.ok).toBe(true);
    const [a, b, c] = values.map((v) => (v.ok ? canonical(v.value) : ''));
    expect(b).toBe(a);
    expect(c).toBe(a);
    const checks = [checkConfig([{ file: 'a.edn', text: edn }]), checkConfig([{ file: 'b.yaml', text: yaml }]), checkConfig([{ file: 'c.edn', text: back }])];
    expect(outcome(checks[1]!)).toEqual(outcome(checks[0]!));
    expect(outcome(checks[2]!)).toEqual(outcome(checks[0]!));
  });

  it.each(seeds)('%s: every comment is carried to YAML and back to EDN', (name) => {
    const edn = readFileSync(join(SEEDS, name), 'utf8');
    const yaml = convert(name, edn, 'yaml');
    const back = convert('back.yaml', yaml, 'edn');
    const texts = scanEdnComments(edn).map((c) => c.text.trim()).filter((t) => t !== '');
    expect(texts.length).toBeGreaterThan(0);
    const yamlComments = yaml.split('\n').flatMap((l) => (l.includes('#') ? [l.slice(l.indexOf('#') + 1).trim()] : []));
    const ednComments = scanEdnComments(back).map((c) => c.text.trim());
    for (const t of texts) {
      expect(yamlComments, `comment "${t}" in the YAML`).toContain(t);
      expect(ednComments, `comment "${t}" back in the EDN`).toContain(t);
    }
  });

  it.each(seeds)('%s: a second round trip changes nothing (conversion is stable)', (name) => {
    const yaml = convert(name, readFileSync(join(SEEDS, name), 'utf8'), 'yaml');
    const edn = convert('a.yaml', yaml, 'edn');
    expect(convert('b.edn', edn, 'yaml')).toBe(yaml);
    expect(convert('c.yaml', convert('b.edn', edn, 'yaml'), 'edn')).toBe(edn);
  });
});

describe('lb convert, YAML to EDN', () => {
  it('carries comments above and after values, quotes what must stay a string, and resolves aliases', () => {
    const yaml = [
      '# the head',
      'proxies:',
      '  # the web proxy',
      '  - name: web',
      '    listen: {interfaces: [eth0], port: 80} # public',
      '    default-target: &t {ip: 10.0.0.1, port: 8080}',
      '    source-routes:',
      '      - {source: 10.1.0.0/16, target: *t}',
      'settings:',
      '  max-connections: 1000 # enough',
      '',
    ].join('\n');
    const edn = convert('lb.yaml', yaml, 'edn');
    expect(edn.startsWith(';; the head\n{:proxies [;; the web proxy\n')).toBe(true);
    expect(edn).toMatch(/:listen \{:interfaces \["eth0"\]\n +:port 80\} ; public\n/);
    expect(edn).toMatch(/:max-connections 1000 ; enough\n/);
    expect(edn).toContain(':target {:ip "10.0.0.1" :port 8080}');
    const a = readSource('lb.yaml', yaml);
    const b = readSource('lb.edn', edn);
    expect(a.ok && b.ok && canonical(b.value)).toBe(a.ok && canonical(a.value));
  });

  it('refuses a key that cannot be an EDN keyword, and writes nothing', async () => {
    const src = join(scratch, 'bad.yaml');
    writeFileSync(src, 'proxies: []\n"a key": 1\n');
    const io = collector();
    expect(await runConvert({ path: src, out: join(scratch, 'bad.edn') }, io)).toBe(1);
    expect(io.stderr.join('\n')).toMatch(/cannot be an EDN keyword/);
    expect(existsSync(join(scratch, 'bad.edn'))).toBe(false);
  });
});

describe('lb convert, the command', () => {
  it('prints a file converted to the other format, or writes it with --out', async () => {
    const io = collector();
    expect(await runConvert({ path: join(SEEDS, 'simple-proxy.edn') }, io)).toBe(0);
    expect(io.stdout.join('\n')).toMatch(/^proxies:\n {2}- name: simple\n/m);
    const out = join(scratch, 'simple.yaml');
    expect(await runConvert({ path: join(SEEDS, 'simple-proxy.edn'), out }, collector())).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(`${io.stdout.join('\n')}\n`);
  });

  it('converts a directory into --out, and refuses one without --out', async () => {
    expect(await runConvert({ path: SEEDS }, collector())).toBe(1);
    const out = join(scratch, 'yaml.d');
    expect(await runConvert({ path: SEEDS, out }, collector())).toBe(0);
    expect(readdirSync(out).sort()).toEqual(seeds.map((s) => s.replace(/\.edn$/, '.yaml')));
    const back = join(scratch, 'edn.d');
    expect(await runConvert({ path: out, to: 'edn', out: back }, collector())).toBe(0);
    expect(readdirSync(back).sort()).toEqual(seeds);
  });

  it('refuses a directory where two files would become one', async () => {
    const src = join(scratch, 'clash.d');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'a.edn'), '{:settings {:max-connections 5}}\n');
    writeFileSync(join(src, 'a.yml'), 'proxies: []\n');
    const io = collector();
    expect(await runConvert({ path: src, to: 'yaml', out: join(scratch, 'clash.out') }, io)).toBe(1);
    expect(io.stderr.join('\n')).toMatch(/two files of .*clash\.d convert to a\.yaml/);
    expect(existsSync(join(scratch, 'clash.out'))).toBe(false);
  });

  it('reports a syntax error with its position and writes nothing', async () => {
    const src = join(scratch, 'broken.edn');
    writeFileSync(src, '{:proxies [}\n');
    const io = collector();
    expect(await runConvert({ path: src, out: join(scratch, 'broken.yaml') }, io)).toBe(1);
    expect(io.stderr[0]).toMatch(/broken\.edn:1:\d+: /);
    expect(existsSync(join(scratch, 'broken.yaml'))).toBe(false);
  });
});
