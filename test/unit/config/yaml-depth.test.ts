// YAML flow nesting is bounded before either YAML reader runs (src/core/config/yaml-depth.ts), as
// EDN nesting is in its reader: 200,000 nested `[` took the `yaml` package 127 s and 900 MB.
import { describe, expect, it } from 'vitest';
import { MAX_NESTING } from '../../../src/core/config/limits.js';
import { yamlTooDeep } from '../../../src/core/config/yaml-depth.js';
import { checkText, rejection } from './helpers.js';

describe('yamlTooDeep', () => {
  it('finds the bracket that opens level 101, with its line and column', () => {
    expect(yamlTooDeep(`proxies: ${'['.repeat(MAX_NESTING + 1)}`)).toEqual({ message: 'nesting deeper than 100 levels', line: 1, column: 10 + MAX_NESTING });
    expect(yamlTooDeep(`a: 1\nproxies:\n${Array.from({ length: 200_000 }, () => '[').join('\n')}`)).toMatchObject({ line: 103, column: 1 });
    expect(yamlTooDeep(`x: ${'{a: '.repeat(MAX_NESTING + 5)}`)).toMatchObject({ line: 1, column: 4 + 4 * MAX_NESTING });
  });

  it('counts what closes, and 100 levels pass', () => {
    expect(yamlTooDeep(`x: ${'['.repeat(MAX_NESTING)}${']'.repeat(MAX_NESTING)}\ny: ${'['.repeat(MAX_NESTING)}`)).toBeUndefined();
    expect(yamlTooDeep(`x: ${'[]'.repeat(100_000)}`)).toBeUndefined();
  });

  it('does not count brackets in quoted scalars or comments, and keeps counting lines through them', () => {
    const many = '['.repeat(500);
    expect(yamlTooDeep(`a: "${many}\\"${many}"\nb: '${many}''${many}'\n# ${many}\nc: x # ${many}`)).toBeUndefined();
    expect(yamlTooDeep(`a: "multi\n${many}\nline"\nb: ${'['.repeat(101)}`)).toMatchObject({ line: 4, column: 104 });
  });

  it('counts brackets after a quote inside a plain scalar (no quoted scalar starts there)', () => {
    expect(yamlTooDeep(`a: it's ${'['.repeat(101)}`)).toMatchObject({ line: 1, column: 109 });
  });
});

describe('yamlTooDeep on block collections', () => {
  const indented = (levels: number, step = 1): string => Array.from({ length: levels }, (_, i) => `${' '.repeat(i * step)}k${i}:`).join('\n') + ' 1\n';

  it('finds the line that opens block level 101, located at its content', () => {
    expect(yamlTooDeep(indented(MAX_NESTING))).toBeUndefined();
    expect(yamlTooDeep(indented(1500))).toEqual({ message: 'nesting deeper than 100 levels', line: 101, column: 101 });
    expect(yamlTooDeep(indented(200, 2))).toMatchObject({ line: 101, column: 201 });
  });

  it('counts each `- ` that starts a line as a level, and closes levels by indentation', () => {
    expect(yamlTooDeep(`a:\n  ${'- '.repeat(98)}x\n`)).toBeUndefined();
    expect(yamlTooDeep(`a:\n  ${'- '.repeat(99)}x\n`)).toMatchObject({ line: 2, column: 3 + 2 * 99 });
    // A thousand siblings, each two levels deep: never more than three levels open.
    expect(yamlTooDeep(`proxies:\n${'  - name: a\n    port: 1\n'.repeat(1000)}`)).toBeUndefined();
  });

  it('skips the lines of block scalars, blank lines and comments', () => {
    const scalar = Array.from({ length: 300 }, (_, i) => `${' '.repeat(4 + i)}text ${i}`).join('\n');
    expect(yamlTooDeep(`a: |\n${scalar}\nb: >-\n${scalar}\n\n# x\nc: 1\n`)).toBeUndefined();
    expect(yamlTooDeep(`- |\n${scalar}\n`)).toBeUndefined();
    // The scalar ends where a line is no deeper than its key: counting starts again.
    expect(yamlTooDeep(`a: |\n  t\n${indented(101)}`)).toMatchObject({ line: 103 });
  });
});

describe('a deeply nested YAML config', () => {
  it('of 1,500 block mappings is refused with a located error, not a stack overflow', () => {
    const text = Array.from({ length: 1500 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n') + ' 1\n';
    expect(rejection(checkText('lb.yaml', text))).toEqual(['lb.yaml:101:101: nesting deeper than 100 levels']);
  });

  it('is refused at once with a located error', () => {
    expect(rejection(checkText('lb.yaml', `proxies: ${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}\n`))).toEqual(['lb.yaml:1:110: nesting deeper than 100 levels']);
  });
});
