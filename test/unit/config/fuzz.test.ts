// Fuzz: thousands of mutated configs (from the seed configs and the fixtures), deterministic
// (seeded PRNG). The pipeline must never throw, and every rejection must carry a file, a line
// and a column, and a message in plain words.
import { readFileSync, readdirSync } from 'node:fs';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkConfig, type ConfigSource } from '../../../src/core/config/index.js';
import { readSource } from '../../../src/core/config/read-source.js';
import { FIXTURES, SEEDS } from './helpers.js';
import { prng } from '../../lib/prng.js';

const CASES = 5000;
const SEED = 0x1b5eed;

interface Base {
  file: string;
  text: string;
  value: unknown;
}

function loadBases(): Base[] {
  const files = [
    ...readdirSync(SEEDS).filter((f) => f.endsWith('.edn')).map((f) => `${SEEDS}/${f}`),
    `${FIXTURES}/full/lb.yaml`,
    ...readdirSync(`${FIXTURES}/yaml-equivalents`).map((f) => `${FIXTURES}/yaml-equivalents/${f}`),
    `${FIXTURES}/dir-merge/10-web.yaml`,
    `${FIXTURES}/dir-merge/20-api.edn`,
  ];
  return files.map((file) => {
    const text = readFileSync(file, 'utf8');
    const read = readSource(file, text);
    if (!read.ok) throw new Error(`fixture ${file} does not parse`);
    return { file, text, value: read.value };
  });
}

const ODD_VALUES: unknown[] = [
  '', 'x', 'eth0', '10.0.0.5/24', '10.0.0.0/8', '300.1.1.1', '0.0.0.0', '*.example.com', 'a..b', 'fe80::1', 'v2', 'both', 'udp', 'none', 'http',
  '__proto__', -1, 0, 1, 64, 65535, 65536, 1.5, 1e20, Number.MAX_SAFE_INTEGER, true, false, null, [], {}, [1, 2], { a: 1 }, [{ ip: '10.0.0.1', port: 1 }],
  { ip: '10.0.0.1', host: 'x.y', port: 80 }, Array.from({ length: 70 }, (_, i) => ({ ip: `10.9.0.${i}`, port: 80 })),
];
const KEY_NAMES = [
  'name', 'listen', 'port', 'ip', 'host', 'weight', 'targets', 'target', 'source', 'sni-hostname', 'health-check', 'type', 'interfaces', 'address',
  'protocol', 'settings', 'proxies', 'dns-refresh-seconds', 'proxy-protocol', 'wieght', 'cluster', 'metrics', '<<', '__proto__', 'timeout-ms',
];
/** Wording that would mean an ajv message or a JS value leaked through unrewritten. */
const RAW_WORDING = /undefined|\[object Object\]|\bmust (NOT|have required|match|be (integer|string|number|boolean|object|array|equal|<=|>=))/;
const NOISE = '{}[]():,;#"\'\\\n\t -_/.*&!|>@`0a9zZ:^~%\u00e9\u2028\uFEFF';

type Node = { parent: Record<string, unknown> | unknown[]; key: string | number };

function nodes(root: unknown): Node[] {
  const out: Node[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        out.push({ parent: v, key: i });
        walk(item);
      });
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        out.push({ parent: v as Record<string, unknown>, key: k });
        walk(item);
      }
    }
  };
  walk(root);
  return out;
}

function get(n: Node): unknown {
  return (n.parent as Record<string | number, unknown>)[n.key];
}
function set(n: Node, value: unknown): void {
  (n.parent as Record<string | number, unknown>)[n.key] = value;
}

function mutateValue(value: unknown, rnd: () => number): unknown {
  const root = structuredClone(value) as unknown;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const rounds = 1 + Math.floor(rnd() * 3);
  for (let r = 0; r < rounds; r++) {
    const all = nodes(root);
    if (all.length === 0) break;
    const n = pick(all);
    switch (Math.floor(rnd() * 6)) {
      case 0: // delete a key or an element
        if (Array.isArray(n.parent)) n.parent.splice(n.key as number, 1);
        else delete n.parent[n.key as string];
        break;
      case 1: // duplicate an element (names, listeners, prefixes, targets) or add a key
        if (Array.isArray(n.parent)) n.parent.push(structuredClone(get(n)));
        else Object.defineProperty(n.parent, pick(KEY_NAMES), { value: structuredClone(get(n)), enumerable: true, writable: true, configurable: true });
        break;
      case 2: // retype
        set(n, structuredClone(pick(ODD_VALUES)));
        break;
      case 3: {
        // swap two values
        const m = pick(all);
        const a = get(n);
        set(n, get(m));
        set(m, a);
        break;
      }
      case 4: {
        // nudge a number
        const v = get(n);
        if (typeof v === 'number') set(n, pick([v + 1, v - 1, v * 2, 0, -v]));
        else set(n, structuredClone(pick(ODD_VALUES)));
        break;
      }
      default: // rename a key
        if (!Array.isArray(n.parent)) {
          const v = get(n);
          delete n.parent[n.key as string];
          n.parent[pick(KEY_NAMES)] = v;
        }
    }
  }
  return root;
}

function mutateText(text: string, rnd: () => number): string {
  const at = () => Math.floor(rnd() * (text.length + 1));
  const noise = (n: number) => Array.from({ length: n }, () => NOISE[Math.floor(rnd() * NOISE.length)]).join('');
  switch (Math.floor(rnd() * 5)) {
    case 0: {
      let t = text;
      for (let i = 0, k = 1 + Math.floor(rnd() * 4); i < k; i++) {
        const p = Math.floor(rnd() * t.length);
        t = t.slice(0, p) + noise(1) + t.slice(p + 1);
      }
      return t;
    }
    case 1: {
      const p = at();
      return text.slice(0, p) + noise(1 + Math.floor(rnd() * 6)) + text.slice(p);
    }
    case 2: {
      const p = at();
      return text.slice(0, p) + text.slice(p + Math.floor(rnd() * 40));
    }
    case 3:
      return text.slice(0, at());
    default: {
      const lines = text.split('\n');
      const i = Math.floor(rnd() * lines.length);
      const j = Math.floor(rnd() * lines.length);
      if (rnd() < 0.5) [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      else lines.splice(i, 0, lines[j]!);
      return lines.join('\n');
    }
  }
}

/** An EDN writer for the mutated values (keys as keywords, whatever they are). */
function writeEdn(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '##NaN';
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(writeEdn).join(' ')}]`;
  return `{${Object.entries(v as object).map(([k, x]) => `:${k} ${writeEdn(x)}`).join(', ')}}`;
}

function makeCase(bases: Base[], i: number, rnd: () => number): ConfigSource[] {
  const base = bases[i % bases.length]!;
  let source: ConfigSource;
  if (rnd() < 0.45) {
    source = { file: base.file, text: mutateText(base.text, rnd) };
  } else {
    const value = mutateValue(base.value, rnd);
    source = rnd() < 0.7 ? { file: 'mutated.edn', text: writeEdn(value) } : { file: 'mutated.yaml', text: stringify(value) };
  }
  if (rnd() < 0.1) {
    const other = bases[Math.floor(rnd() * bases.length)]!;
    return [source, { file: `zz-${other.file.split('/').pop()}`, text: other.text }];
  }
  return [source];
}

describe('fuzz', () => {
  // About 8 s of CPU; the timeout only keeps a loaded CI machine from failing it.
  it(`${CASES} mutated configs: no exception, every rejection located`, { timeout: 180_000 }, () => {
    const bases = loadBases();
    const rnd = prng(SEED);
    const stages: Record<string, number> = { ok: 0, parse: 0, schema: 0, semantic: 0, io: 0 };
    const problems: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const sources = makeCase(bases, i, rnd);
      const files = new Set(sources.map((s) => s.file));
      let result: ReturnType<typeof checkConfig>;
      try {
        result = checkConfig(sources);
      } catch (err) {
        problems.push(`case ${i}: threw ${(err as Error).stack}\n--- ${sources[0]!.file}\n${sources[0]!.text.slice(0, 2000)}`);
        continue;
      }
      if (result.ok) {
        stages.ok!++;
        if (result.config.proxies.length === 0) problems.push(`case ${i}: accepted with no proxies`);
        continue;
      }
      stages[result.stage]!++;
      if (result.diagnostics.length === 0) problems.push(`case ${i}: rejected without diagnostics`);
      for (const d of result.diagnostics) {
        const located = files.has(d.file) && typeof d.pointer === 'string' && (d.line ?? 0) >= 1 && (d.column ?? 0) >= 1;
        const worded = d.message.length > 0 && !RAW_WORDING.test(d.message);
        if (!located || !worded) problems.push(`case ${i}: ${JSON.stringify(d)}`);
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
    // The mutations reach every stage, and some survive as valid configs.
    expect(stages.ok).toBeGreaterThan(100);
    expect(stages.parse).toBeGreaterThan(100);
    expect(stages.schema).toBeGreaterThan(100);
    expect(stages.semantic).toBeGreaterThan(100);
  });
});
