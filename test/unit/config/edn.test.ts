// The EDN reader: values as the config layer sees them, positions, and every rejection with its
// line:column.
import { describe, expect, it } from 'vitest';
import { readEdn } from '../../../src/core/config/edn.js';

function read(text: string): unknown {
  const r = readEdn(text);
  if (!r.ok) throw new Error(`unexpected EDN error: ${JSON.stringify(r.errors)}`);
  return r.value;
}

function failure(text: string): string {
  const r = readEdn(text);
  if (r.ok) throw new Error('expected an EDN error');
  const [e] = r.errors;
  return `${e!.line}:${e!.column}: ${e!.message}`;
}

describe('EDN values', () => {
  it('reads maps with keyword keys, vectors, lists and sets as plain data', () => {
    expect(read('{:a 1, :b [1 2 3] :c (4 5) :d #{6 7} :e {:f "g"}}')).toEqual({ a: 1, b: [1, 2, 3], c: [4, 5], d: [6, 7], e: { f: 'g' } });
  });

  it('turns keywords in value position into their names', () => {
    expect(read('{:type :http :ns :a/b}')).toEqual({ type: 'http', ns: 'a/b' });
  });

  it('reads booleans, nil and numbers', () => {
    expect(read('[true false nil 0 -7 +3 42N 1.5 -2e3 1.25M 10.]')).toEqual([true, false, null, 0, -7, 3, 42, 1.5, -2000, 1.25, 10]);
  });

  it('reads strings with escapes', () => {
    expect(read(String.raw`"a\"b\\c\nd\te\u00e9"`)).toBe('a"b\\c\nd\te\u00e9');
  });

  it('skips comments, commas and #_ discarded forms (also nested and inside maps)', () => {
    expect(read(';; header\n{:a 1 ; trailing\n #_ :b #_ #_ 2 3 :c [1 #_ [x y] 2],}')).toEqual({ a: 1, c: [1, 2] });
  });

  it('reads an empty or comment-only file as nil', () => {
    expect(read('')).toBeNull();
    expect(read(' ;; nothing here\n')).toBeNull();
  });

  it('keeps "__proto__" as a plain key', () => {
    const v = read('{:__proto__ {:polluted true}}') as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
  });
});

describe('EDN positions', () => {
  it('records key and value positions under JSON pointers', () => {
    const r = readEdn('{:proxies\n [{:name "web"\n   :listen {:port 80}}]}');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.positions.get('')).toEqual({ value: { line: 1, column: 1 } });
    expect(r.positions.get('/proxies')).toEqual({ key: { line: 1, column: 2 }, value: { line: 2, column: 2 } });
    expect(r.positions.get('/proxies/0')).toEqual({ value: { line: 2, column: 3 } });
    expect(r.positions.get('/proxies/0/name')).toEqual({ key: { line: 2, column: 4 }, value: { line: 2, column: 10 } });
    expect(r.positions.get('/proxies/0/listen/port')).toEqual({ key: { line: 3, column: 13 }, value: { line: 3, column: 19 } });
  });

  it('escapes pointer tokens (a namespaced keyword has a /)', () => {
    const r = readEdn('{:a/b {:c 1}}');
    expect(r.ok && [...r.positions.keys()].sort()).toEqual(['', '/a~1b', '/a~1b/c']);
  });

  it('records nothing for discarded forms', () => {
    const r = readEdn('{:a #_ {:hidden 1} 2}');
    expect(r.ok && [...r.positions.keys()].sort()).toEqual(['', '/a']);
  });
});

describe('EDN rejections', () => {
  it.each([
    ['unbalanced: unterminated map', '{:a [1 2]\n', "1:1: unterminated map: '{' is never closed with '}'"],
    ['unbalanced: wrong closer', '{:a [1 2}}', "1:9: expected ']' to close the vector opened at 1:5, found '}'"],
    ['unbalanced: stray closer', '{:a 1}}', '1:7: unexpected content after the top-level form; a config file holds one map'],
    ['unmatched closer first', ']', "1:1: unmatched ']'"],
    ['tagged literal', '{:at #inst "2020-01-01"}', '1:6: tagged literal #inst is not supported; a config holds plain data (maps, vectors, strings, numbers, keywords, booleans, nil)'],
    ['custom tag', '{:x #my/thing 1}', '1:5: tagged literal #my/thing is not supported; a config holds plain data (maps, vectors, strings, numbers, keywords, booleans, nil)'],
    ['key without value', '{:a 1 :b}', '1:7: map key :b has no value'],
    ['non-keyword key', '{"name" "web"}', '1:2: map keys must be keywords like :name, found the string "name"'],
    ['duplicate key', '{:a 1\n :a 2}', '2:2: duplicate key :a (first at 1:2)'],
    ['duplicate set element', '#{1 2 1}', '1:7: duplicate set element 1'],
    ['unterminated string', '{:a "abc}', '1:5: unterminated string'],
    ['bad escape', '"a\\qb"', '1:3: invalid escape \\q in string'],
    ['bare symbol', '{:type http}', '1:8: unexpected symbol http; write a string "http" or a keyword :http'],
    ['symbol as key', '{name 1}', '1:2: map keys must be keywords like :name, found the symbol name'],
    ['leading zero', '{:port 080}', '1:8: number 080 has a leading zero (Clojure would read it as octal); write it without'],
    ['ratio', '{:w 1/2}', '1:5: ratio 1/2 is not supported; write an integer'],
    ['hex', '{:w 0x10}', '1:5: invalid number 0x10'],
    ['too large', '{:w 123456789012345678901}', '1:5: integer 123456789012345678901 is too large'],
    ['character literal', '{:c \\a}', '1:5: character literals (\\c) are not supported; write a string'],
    ['metadata', '^:private {}', '1:1: metadata (^) is not supported in a config'],
    ['quote', "'(1 2)", "1:1: reader macro ''' is not EDN"],
    ['auto-resolved keyword', '{::a 1}', '1:2: auto-resolved keyword ::a is not EDN'],
    ['symbolic value', '[##Inf]', '1:2: symbolic values (##Inf, ##NaN) are not supported'],
    ['discard at end', '[1 #_]', '1:4: #_ must be followed by the form it discards'],
    ['regex', '#"a+"', `1:1: '#"' is not EDN (only #{...} sets and #_ discard are)`],
  ])('%s', (_name, text, expected) => {
    expect(failure(text)).toBe(expected);
  });

  it('bounds nesting instead of overflowing the stack', () => {
    expect(failure('['.repeat(5000))).toMatch(/nesting deeper than 100 levels/);
    expect(failure(`[${'#_ '.repeat(5000)}1 2]`)).toMatch(/nesting deeper than 100 levels/);
  });
});
