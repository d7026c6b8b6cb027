// The layering rule of docs/design.md ("Layout"), checked on the source text:
// - src/core is the pure core: it imports only itself, a few pure packages, and the schema file;
//   it reads no clock, environment, file, socket or process;
// - the folders of the shell depend on the core and on each other without cycles.
// A failure names the offending import, so the fix is where the message points.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = normalize(join(import.meta.dirname, '..', '..', '..'));
const SRC = join(ROOT, 'src');

/** Packages the core may import: parsing and hashing, nothing that touches the host. */
/** (ajv's standalone and codegen modules: the schema's validator as code text, schema-compile.ts.) */
const CORE_PACKAGES = new Set([
  'ajv/dist/2020.js', 'ajv/dist/types/index.js', 'ajv/dist/standalone/index.js', 'ajv/dist/compile/codegen/code.js',
  'yaml', 'js-yaml', 'node:crypto',
]);
/** What the core must not call: time, randomness, the environment and the process belong to the shell. */
const CORE_FORBIDDEN: Array<[RegExp, string]> = [
  [/\bDate\.now\(|\bnew Date\(\)/, 'reads the clock'],
  [/\bMath\.random\(/, 'draws random numbers'],
  [/\bprocess\./, 'touches the process'],
  [/\bset(?:Timeout|Interval|Immediate)\(/, 'schedules timers'],
  [/\brequire\(/, 'loads modules at run time'],
];

interface Edge { from: string; to: string; spec: string }

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every module specifier of a file: static and type imports, re-exports, dynamic imports. */
function specifiers(text: string): string[] {
  const out: string[] = [];
  const re = /(?:^|[^\w.])(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]|(?:^|[^\w.])import\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;
  for (const m of text.matchAll(re)) out.push((m[1] ?? m[2] ?? m[3])!);
  return out;
}

/** The unit a file belongs to: 'core', a shell folder, or '(base)' for the files at src/'s top. */
function unitOf(file: string): string {
  const parts = relative(SRC, file).split(sep);
  return parts.length === 1 ? '(base)' : parts[0]!;
}

const files = sourceFiles(SRC);
const edges: Edge[] = files.flatMap((file) => specifiers(readFileSync(file, 'utf8')).map((spec) => {
  const to = spec.startsWith('.') ? normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts') : spec;
  return { from: file, to, spec };
}));
const rel = (p: string): string => relative(ROOT, p);

/** Cycles between units, each as a path A -> B -> ... -> A, with one import per step. */
function unitCycles(list: readonly Edge[]): string[] {
  const graph = new Map<string, Map<string, Edge>>();
  for (const e of list) {
    if (!e.to.startsWith(SRC + sep)) continue;
    const a = unitOf(e.from);
    const b = unitOf(e.to);
    if (a === b) continue;
    if (!graph.has(a)) graph.set(a, new Map());
    if (!graph.get(a)!.has(b)) graph.get(a)!.set(b, e);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (u: string): void => {
    state.set(u, 'open');
    stack.push(u);
    for (const [v, e] of graph.get(u) ?? []) {
      if (state.get(v) === 'open') {
        const loop = [...stack.slice(stack.indexOf(v)), v];
        cycles.push(`${loop.join(' -> ')} (e.g. ${rel(e.from)} imports ${e.spec})`);
      } else if (!state.has(v)) visit(v);
    }
    stack.pop();
    state.set(u, 'done');
  };
  for (const u of [...graph.keys()].sort()) if (!state.has(u)) visit(u);
  return cycles;
}

describe('layers', () => {
  it('finds the imports it checks (the scanner is not blind)', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(edges.some((e) => rel(e.from) === 'src/core/compile/encode.ts' && rel(e.to) === 'src/core/maglev.ts')).toBe(true);
    expect(specifiers(`import type { A } from './a.js';\nexport * from "../b.js";\nconst m = await import('./c.js');\nimport './d.js';`))
      .toEqual(['./a.js', '../b.js', './c.js', './d.js']);
  });

  it('the core imports only the core, pure packages and the schema', () => {
    const bad = edges.filter((e) => unitOf(e.from) === 'core').filter((e) => {
      if (e.spec.startsWith('.')) return !(e.to.startsWith(join(SRC, 'core') + sep) || rel(e.to).startsWith(`schemas${sep}`));
      return !CORE_PACKAGES.has(e.spec);
    });
    expect(bad.map((e) => `${rel(e.from)} imports ${e.spec}`)).toEqual([]);
  });

  it('the core reads no clock, randomness, process or timers', () => {
    const bad = files.filter((f) => unitOf(f) === 'core').flatMap((f) => {
      const text = readFileSync(f, 'utf8').replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
      return CORE_FORBIDDEN.filter(([re]) => re.test(text)).map(([, what]) => `${rel(f)} ${what}`);
    });
    expect(bad).toEqual([]);
  });

  it('no folder of the shell is imported by the core, and no two folders import each other in a cycle', () => {
    expect(unitCycles(edges)).toEqual([]);
  });

  it('the cycle check finds a cycle when there is one', () => {
    const a = join(SRC, 'apply', 'x.ts');
    const b = join(SRC, 'reconcile', 'y.ts');
    expect(unitCycles([{ from: a, to: b, spec: '../reconcile/y.js' }, { from: b, to: a, spec: '../apply/x.js' }]))
      .toEqual(['apply -> reconcile -> apply (e.g. src/reconcile/y.ts imports ../apply/x.js)']);
  });
});
