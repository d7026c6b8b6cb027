// The YAML reader: plain values, positions under JSON pointers, and rejections with line:column.
import { describe, expect, it } from 'vitest';
import { readYaml } from '../../../src/core/config/yaml-reader.js';

function failures(text: string): string[] {
  const r = readYaml(text);
  if (r.ok) throw new Error('expected a YAML error');
  return r.errors.map((e) => `${e.line}:${e.column}: ${e.message}`);
}

describe('YAML reader', () => {
  it('reads YAML 1.2 core: on/yes stay strings, 010 is ten, addresses are strings', () => {
    const r = readYaml('a: on\nb: yes\nc: 010\nd: 10.0.0.1\ne: ~\nf: [1, "2"]\n');
    expect(r.ok && r.value).toEqual({ a: 'on', b: 'yes', c: 10, d: '10.0.0.1', e: null, f: [1, '2'] });
  });

  it('records key and value positions under JSON pointers', () => {
    const r = readYaml('proxies:\n  - name: web\n    listen: {port: 80}\n    x/y~z: 1\n');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.positions.get('/proxies')).toEqual({ key: { line: 1, column: 1 }, value: { line: 2, column: 3 } });
    expect(r.positions.get('/proxies/0')).toEqual({ value: { line: 2, column: 5 } });
    expect(r.positions.get('/proxies/0/name')).toEqual({ key: { line: 2, column: 5 }, value: { line: 2, column: 11 } });
    expect(r.positions.get('/proxies/0/listen/port')).toEqual({ key: { line: 3, column: 14 }, value: { line: 3, column: 20 } });
    expect(r.positions.has('/proxies/0/x~1y~0z')).toBe(true);
  });

  it('gives an empty value the position right after its key', () => {
    const r = readYaml('a:\nb: 1\n');
    expect(r.ok && r.value).toEqual({ a: null, b: 1 });
    expect(r.ok && r.positions.get('/a')?.key).toEqual({ line: 1, column: 1 });
  });

  it('reads an empty or comment-only file as null', () => {
    expect(readYaml('')).toMatchObject({ ok: true, value: null });
    expect(readYaml('# nothing\n')).toMatchObject({ ok: true, value: null });
  });

  it('resolves aliases; their values point at the alias', () => {
    const r = readYaml('a: &t {ip: 10.0.0.1, port: 80}\nb: *t\n');
    expect(r.ok && r.value).toEqual({ a: { ip: '10.0.0.1', port: 80 }, b: { ip: '10.0.0.1', port: 80 } });
    expect(r.ok && r.positions.get('/b')?.value).toEqual({ line: 2, column: 4 });
    expect(r.ok && r.positions.has('/b/ip')).toBe(false);
  });

  it('keeps "__proto__" as a plain key', () => {
    const r = readYaml('__proto__: {polluted: true}\n');
    expect(r.ok && Object.keys(r.value as object)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['syntax error', 'a: [1, 2\nb: 3\n', ['2:1: Flow sequence in block collection must be sufficiently indented and end with a ]']],
    ['duplicate key', 'a: 1\na: 2\n', ['2:1: Map keys must be unique']],
    ['custom tag', 'a: !vault secret\n', ['1:4: Unresolved tag: !vault']],
    ['bad indentation', 'a:\n  b: 1\n c: 2\n', ['3:1: All mapping items must start at the same column']],
    ['tab indentation', 'a:\n\tb: 1\n', ['2:1: Tabs are not allowed as indentation']],
    ['second document', 'a: 1\n---\nb: 2\n', ['2:1: a config file holds one YAML document; put further proxies in the same list or in another file']],
    ['collection key', '? [a, b]\n: 1\n', ['1:3: map keys must be plain strings']],
    ['unknown alias', 'a: *nope\n', ['1:4: unknown alias *nope']],
  ])('%s', (_name, text, expected) => {
    expect(failures(text)).toEqual(expected);
  });

  it('bounds alias expansion ("billion laughs")', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    // Once, where the expansion passed the bound: not once per alias still to walk.
    expect(failures(lines.join('\n'))).toEqual(['1:13: aliases expand to more than 10000 values']);
  });

  it('bounds nesting instead of overflowing the stack', () => {
    const r = readYaml(`${'['.repeat(3000)}${']'.repeat(3000)}`);
    expect(r.ok).toBe(false);
  });
});
