// The fast YAML reader against the `yaml`-package reader it stands in for: for every YAML file of
// the repository, tricky snippets and generated documents, the same value, the same syntax errors,
// the same position for every JSON pointer (looked up one by one, and listed in full), and the
// same schema diagnostics. The fast path must also really be taken for ordinary configs.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ReadResult } from '../../../src/core/config/diagnostics.js';
import { readYamlFast, tryReadYamlFast } from '../../../src/core/config/fast-yaml-reader.js';
import { readSource } from '../../../src/core/config/read-source.js';
import { validateSchema } from '../../../src/core/config/validate.js';
import { readYaml } from '../../../src/core/config/yaml-reader.js';

/** Every .yaml/.yml file under a directory (node_modules and dot-directories left out). */
function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || e.name === 'node_modules') continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(e.name)) out.push(path);
  }
  return out;
}

/** Asserts the fast reader and the reference agree on `text` in every observable way. */
function expectSameAsReference(text: string): void {
  const reference = readYaml(text);
  const fast = readYamlFast(text);
  expect(fast.ok).toBe(reference.ok);
  if (!reference.ok || !fast.ok) {
    expect(fast).toEqual(reference);
    return;
  }
  expect(fast.value).toEqual(reference.value);
  // Lookups first, while a lazy index is still lazy; then the full listing.
  for (const [pointer, position] of reference.positions) expect([pointer, fast.positions.get(pointer)]).toEqual([pointer, position]);
  for (const missing of ['/nope', '/0x', '/proxies/01', '/proxies/0/nope/deeper', '/-1']) {
    expect(fast.positions.get(missing)).toEqual(reference.positions.get(missing));
  }
  expect(new Map(fast.positions)).toEqual(reference.positions);
  expect(validateSchema('f.yaml', fast.value ?? {}, fast.positions)).toEqual(validateSchema('f.yaml', reference.value ?? {}, reference.positions));
}

function fastPathTaken(text: string): boolean {
  return tryReadYamlFast(text) !== undefined;
}

const SNIPPETS: Record<string, string> = {
  'YAML 1.1 booleans stay strings': 'a: on\nb: yes\nc: no\nd: off\ne: y\nf: n\ng: True\nh: FALSE\ni: tRue\n',
  'null forms': 'a: ~\nb: null\nc: Null\nd: NULL\ne: nUll\nf:\ng: "~"\n',
  'integers': 'a: 0o17\nb: 0x1F\nc: 010\nd: -12\ne: +12\nf: 0b11\ng: -0x1F\nh: 1_000\ni: 0o8\nj: 0xG\nk: 99999999999999999999\nl: -0\n',
  'floats': 'a: 1e3\nb: 1E-3\nc: .inf\nd: -.Inf\ne: +.INF\nf: .nan\ng: .NaN\nh: -.5\ni: 5.\nj: .5\nk: 1.50\nl: +1.0e+3\nm: 1e\nn: .e3\no: -.nan\n',
  'timestamps and versions stay strings': 'a: 2001-12-14\nb: 2001-12-14t21:59:43.10-05:00\nc: 1.2.3\nd: 10.0.0.1\ne: 10.0.0.0/8\nf: 12:30:00\n',
  'quoted scalars': 'a: "on"\nb: \'yes\'\nc: "x\\ty\\u00e9\\x41\\N\\_\\/\\\\"\nd: \'it\'\'s\'\ne: ""\nf: \'\'\ng: "\\ud83d\\ude00"\n',
  'keys of every scalar type': '1: a\n0x10: b\ntrue: c\n1.50: d\n.nan: e\n"2": f\n\'x y\': g\n-0: h\n',
  'null keys': '~: a\n',
  'null key, spelt': 'null: a\n',
  'empty key': '"": a\n',
  'proto key': '__proto__: {polluted: true}\nconstructor: 1\n',
  'pointer escapes in keys': 'a/b: 1\nc~d: 2\n"~1": 3\n',
  'empty values': 'a:\nb:   \nc:   # comment\nd: 1\ne:\n',
  'empty value at end of file': 'a: 1\nb:',
  'empty flow values': 'a: {b: , c: 1}\n',
  'flow key without value': 'a: {b, c: 1}\n',
  'empty sequence item': 'a:\n  - 1\n  -\n  - 3\n',
  'flow pairs': 'a: [b: 1, c]\n',
  'nested flow': 'a: {b: [1, {c: d}], e: {}}\nf: []\n',
  'trailing flow comma': 'a: [1, 2,]\nb: {c: 1,}\n',
  'JSON-style flow': '{"a": 1, "b": [true, null, "x"]}\n',
  'anchors and aliases': 'a: &t {ip: 10.0.0.1, port: 80}\nb: *t\n',
  'anchor on a scalar': 'a: &x 5\nb: *x\n',
  'anchor only': 'a: &x 5\n',
  'merge key': 'base: &b {port: 80}\nproxy:\n  <<: *b\n  name: web\n',
  'merge key without alias': '<<: {a: 1}\n',
  'duplicate keys': 'a: 1\na: 2\n',
  'duplicate keys, string and number': '1: a\n"1": b\n',
  'duplicate keys, 1 and 1.0': '1: a\n1.0: b\n',
  'duplicate keys in flow': 'a: {b: 1, b: 2}\n',
  'tab indentation': 'a:\n\tb: 1\n',
  'tab after value': 'a: 1\t\nb: 2\n',
  'tab in a quoted string': 'a: "x\ty"\n',
  'empty document': '',
  'comments only': '# nothing\n# more\n',
  'document start only': '---\n',
  'leading document start': '---\na: 1\nb: [2]\n',
  'leading document start with CRLF': '---\r\na: 1\r\n',
  'document start with content': '--- a: 1\n',
  'document end': 'a: 1\n...\n',
  'two documents': 'a: 1\n---\nb: 2\n',
  'directive': '%YAML 1.2\n---\na: 1\n',
  'YAML 1.1 directive': '%YAML 1.1\n---\na: yes\n',
  'CRLF line ends': 'proxies:\r\n  - name: web\r\n    listen: {interfaces: [eth0], port: 80}\r\n    default-target: {ip: 10.0.0.1, port: 8080}\r\n',
  'lone CR': 'a: 1\rb: 2\n',
  'BOM inside': 'a: \uFEFFx\n',
  'comment right after a quoted value': 'a: "b"#c\n',
  'comment right after a flow collection': 'a: [x]#c\n',
  'hash inside a plain value': 'a: b#c\n',
  'multi-line plain scalar': 'a: one\n  two\nb: 3\n',
  'multi-line quoted scalar': 'a: "one\n  two"\n',
  'block scalars': 'a: |\n  one\n  two\nb: >-\n  three\n  four\n\nc: |+\n  x\n\n',
  'multi-line flow': 'a: [1,\n  2]\nb: {c: 1,\n  d: 2}\n',
  'multi-line flow, under-indented': 'a: [1,\n2]\n',
  'explicit key': '? a\n: b\n',
  'explicit key without value': '? a\n',
  'collection key': '? [a, b]\n: 1\n',
  'flow map as key': '{a: 1}: b\n',
  'tags': 'a: !!str 1\nb: !!int "2"\n',
  'custom tag': 'a: !vault secret\n',
  'non-specific tag': 'a: ! 1\n',
  'unknown alias': 'a: *nope\n',
  'root scalar': 'hello\n',
  'root sequence': '- a\n- b: 1\n  c: [2]\n- - x\n  - y\n',
  'root flow sequence': '[1, 2]\n',
  'sequence at map indentation': 'a:\n- 1\n- 2\nb: 3\n',
  'compact nested sequences': '- - - a\n    - b\n  - c\n',
  'scalar on the next line': 'a:\n  hello\nb:\n\n  # comment\n  world\n',
  'comments everywhere': '# head\na: # after key\n  # before value\n  b: 1 # after value\n\n  # between\n  c: 2\n# tail\n',
  'indentation of 1 and 5': 'a:\n b:\n      c: 1\n d: 2\n',
  'bad indentation': 'a:\n  b: 1\n c: 2\n',
  'nested mapping on one line': 'a: b: c\n',
  'sequence on a key line': 'a: - b\n',
  'syntax error': 'a: [1, 2\nb: 3\n',
  'unterminated string': 'a: "x\n',
  'reserved indicator': 'a: @x\n',
  'control character': 'a: x\u0001\n',
  'control character quoted': 'a: "\u0007"\n',
  'bad escape': 'a: "x\\q"\n',
  'no space after colon': 'a:b\nc: d:e\n',
  'colon in flow plain': '{a:1}\n',
  'long key': `${'k'.repeat(1100)}: 1\n`,
  'long value': `a: ${'v'.repeat(1100)}\n`,
  'long spaces before colon': `a${' '.repeat(1030)}: 1\n`,
  'unicode': 'ключ: "значение"\nemoji: 😀 x\na: 😀\n',
  'non-breaking space': 'a: \u00a0x\nb:\u00a0c\n',
  'deep nesting': `${'['.repeat(150)}${']'.repeat(150)}\n`,
  'deep block nesting': Array.from({ length: 120 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n'),
  'alias bomb': ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 7 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`)].join('\n'),
  'trailing spaces': 'a: x   \nb:    [1]   \n',
  'space before colon': 'a   : 1\n',
  'seq item with trailing comment': '- a # c\n- "b" # d\n',
  'schema errors at many places': 'proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: eighty}\n    default-target: [{ip: 10.0.0.256, port: 8080, wieght: 5}]\n    source-routes:\n      - {source: 10.0.0.0/33, target: {ip: 10.0.0.2, port: 70000}}\nsettings:\n  log-level: loud\n  bogus:\n',
};

describe('fast YAML reader = yaml-package reader', () => {
  const files = [...yamlFiles('test'), ...yamlFiles('examples')];

  it('finds the repository YAML files it compares (fixtures, seed configs, examples)', () => {
    expect(files.length).toBeGreaterThan(20);
    expect(files).toContain(join('examples', 'repo', 'lb.yaml'));
  });

  it.each(files)('%s', (file) => {
    const text = readFileSync(file, 'utf8');
    expectSameAsReference(text.startsWith('\uFEFF') ? text.slice(1) : text);
  });

  it.each(Object.entries(SNIPPETS))('%s', (_name, text) => {
    expectSameAsReference(text);
  });

  it('takes the fast path for ordinary configs (the examples, and the benchmark shape)', () => {
    expect(fastPathTaken(readFileSync(join('examples', 'repo', 'lb.yaml'), 'utf8'))).toBe(true);
    expect(fastPathTaken(generatedProxies(50))).toBe(true);
    expectSameAsReference(generatedProxies(50));
    const taken = files.filter((f) => fastPathTaken(readFileSync(f, 'utf8')));
    expect(taken.length).toBeGreaterThan(files.length / 2);
  });

  it('goes to the yaml package for what it cannot vouch for', () => {
    for (const name of ['anchors and aliases', 'merge key', 'tab indentation', 'two documents', 'comment right after a quoted value', 'multi-line flow', 'block scalars', 'tags', 'empty document', 'null keys', 'long key', 'deep nesting']) {
      expect([name, fastPathTaken(SNIPPETS[name]!)]).toEqual([name, false]);
    }
  });

  it('agrees on generated documents, valid and broken (seeded, 1500 of them)', () => {
    const random = mulberry32(20261206);
    let fast = 0;
    for (let i = 0; i < 1500; i++) {
      const text = mutate(random, generateDocument(random), i % 3 === 0 ? 1 : 0);
      if (fastPathTaken(text)) fast++;
      try {
        expectSameAsReference(text);
      } catch (err) {
        throw new Error(`document ${i} differs:\n${JSON.stringify(text)}\n${(err as Error).message}`, { cause: err });
      }
    }
    // The comparison means little if the generated documents all go to the reference reader.
    expect(fast).toBeGreaterThan(500);
  });

  it('reads through readSource: a leading byte-order mark is dropped first', () => {
    const r = readSource('lb.yaml', '\uFEFFa: 1\n');
    expect(r).toMatchObject({ ok: true, value: { a: 1 } });
    expect(r.ok && r.positions.get('/a')).toEqual({ key: { line: 1, column: 1 }, value: { line: 1, column: 4 } });
  });

  it('keeps a filled index consistent with its lookups', () => {
    const r = tryReadYamlFast('a: {b: 1}\nc: [x, y]\n') as Extract<ReadResult, { ok: true }>;
    expect(r.positions.size).toBe(6);
    expect(r.positions.get('/c/1')).toEqual({ value: { line: 2, column: 8 } });
    expect([...r.positions.keys()]).toEqual(['', '/a', '/a/b', '/c', '/c/0', '/c/1']);
  });
});

/** The plan benchmark's config shape (bench/plan-apply-child.ts). */
function generatedProxies(n: number): string {
  const lines = ['proxies:'];
  for (let i = 0; i < n; i++) {
    lines.push(
      `  - name: svc-${i}`,
      `    listen: {interfaces: [eth0], port: ${1 + i}, address: 10.100.0.1}`,
      '    default-target:',
      `      - {ip: 10.1.0.${1 + i}, port: 8080, weight: 50}`,
      `      - {ip: 10.2.0.${1 + i}, port: 8080, weight: 50}`,
    );
  }
  lines.push('settings: {connection-timeout-sec: 300}');
  return `${lines.join('\n')}\n`;
}

type Random = () => number;

function mulberry32(seed: number): Random {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: Random, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}

const SCALARS = [
  'web', 'on', 'yes', 'No', 'true', 'False', 'null', '~', '0', '010', '0o17', '0x1F', '-0x1F', '1e3', '-.5', '.inf', '.NaN', '1_000',
  '10.0.0.1', '10.0.0.0/8', 'eth0', '"quoted"', "'single'", '"esc\\t\\u00e9"', '""', "'it''s'", 'a b c', 'x:y', '-x', '?x', 'é', '2001-12-14',
  '"on"', '12:30', '+1', '1.', '*.example.com', '"*.example.com"',
];
const KEYS = ['name', 'port', 'ip', 'listen', 'a', 'b', '1', 'true', '"q"', 'x y', '0x10', 'on', '__proto__', 'a/b', 'k~1'];

/** A random document in block style with flow collections, comments and blank lines. */
function generateDocument(random: Random): string {
  const indent = 1 + Math.floor(random() * 3);
  const lines: string[] = [];
  if (random() < 0.1) lines.push('---');
  if (random() < 0.2) lines.push('# header');
  blockNode(random, lines, 0, indent, 0, random() < 0.8 ? 'map' : 'seq');
  const eol = random() < 0.15 ? '\r\n' : '\n';
  return lines.join(eol) + (random() < 0.9 ? eol : '');
}

function blockNode(random: Random, lines: string[], level: number, indent: number, depth: number, shape: 'map' | 'seq'): void {
  const pad = ' '.repeat(level);
  const count = 1 + Math.floor(random() * 4);
  const keys = new Set<string>();
  for (let i = 0; i < count; i++) {
    if (random() < 0.1) lines.push(random() < 0.5 ? '' : `${pad}# comment ${i}`);
    let head: string;
    if (shape === 'map') {
      const key = pick(random, KEYS);
      if (keys.has(key) && random() < 0.8) continue;
      keys.add(key);
      head = `${pad}${key}:`;
    } else {
      head = `${pad}-`;
    }
    const r = random();
    const comment = random() < 0.1 ? ' # trailing' : '';
    if (depth < 4 && r < 0.3) {
      lines.push(head + comment);
      const nested = random() < 0.6 ? 'map' : 'seq';
      const sameLevel = shape === 'map' && nested === 'seq' && random() < 0.3;
      blockNode(random, lines, sameLevel ? level : level + indent, indent, depth + 1, nested);
    } else if (depth < 4 && r < 0.5) {
      lines.push(`${head} ${flowNode(random, depth + 1)}${comment}`);
    } else if (r < 0.55) {
      lines.push(head + (random() < 0.5 ? '' : '   ') + comment);
    } else {
      lines.push(`${head} ${pick(random, SCALARS)}${comment}`);
    }
  }
}

function flowNode(random: Random, depth: number): string {
  if (depth > 5 || random() < 0.4) return pick(random, SCALARS.filter((s) => !s.startsWith('*') && !s.startsWith('?')));
  const n = Math.floor(random() * 4);
  if (random() < 0.5) return `[${Array.from({ length: n }, () => flowNode(random, depth + 1)).join(', ')}]`;
  const keys = [...new Set(Array.from({ length: n }, () => pick(random, KEYS)))];
  return `{${keys.map((k) => `${k}: ${flowNode(random, depth + 1)}`).join(', ')}}`;
}

/** `times` random edits: a deleted, duplicated or inserted character (indicators and spaces). */
function mutate(random: Random, text: string, times: number): string {
  let out = text;
  for (let i = 0; i < times; i++) {
    const at = Math.floor(random() * (out.length + 1));
    const edit = random();
    if (edit < 0.3) out = out.slice(0, at) + out.slice(at + 1);
    else if (edit < 0.5) out = out.slice(0, at) + out.slice(at, at + 1) + out.slice(at);
    else out = out.slice(0, at) + pick(random, [' ', ':', '-', '#', '{', '[', ',', '"', '\n', '&a ', '*a', '? ', '!']) + out.slice(at);
  }
  return out;
}
