// Every check of the config pipeline is linear (or n log n) in the size of the config, for each
// shape that once went quadratic: EDN sets (each member compared with every earlier one), a list
// with uniqueItems whose items come by $ref (ajv compared every pair), thousands of invalid
// proxies or targets (ajv copied its error list for every failing $ref, and every error was
// compared with every failed anyOf), thousands of unknown keys.
//
// No timed assertion: each shape is checked at n and 4n items and the ratio of the times is
// compared. Linear work gives 4, quadratic 16. Measured linear ratios run from 4 to about 7.5
// rather than 4: the hash tables of the larger run (the position index, a set's members) outgrow
// the CPU caches and each access costs more. The bound of 10 sits between that and 16; the
// quadratic code this replaced measured 13 to 19 here. What is measured is this process's CPU
// time, so other processes on a busy machine do not count; each size is timed five times after a
// warm-up, and the fastest run counts (noise only ever adds time). EDN files, so that what is
// measured is the checks rather than the YAML parser (the YAML reader is tested on its own).
import { describe, expect, it } from 'vitest';
import { checkConfig, type CheckResult } from '../../../src/core/config/index.js';
import { MAX_DIAGNOSTICS } from '../../../src/core/config/limits.js';

const RATIO_BOUND = 10;
const RUNS = 5;

interface Shape {
  name: string;
  /** Items at the smaller size; large enough that the fixed cost of a run does not dominate. */
  n: number;
  text(n: number): string;
  /** What the run must find: the shape exercises the path it means to. */
  expectInvalid: boolean;
}

const target = '{:ip "10.0.0.1" :port 80}';
const proxy = (name: string, listen = '{:interfaces ["eth0"] :port 80}', targets = `[${target}]`): string =>
  `{:name "${name}" :listen ${listen} :default-target ${targets}}`;
const range = (n: number, f: (i: number) => string): string => Array.from({ length: n }, (_, i) => f(i)).join(' ');

const SHAPES: Shape[] = [
  { name: 'EDN set of integers', n: 12_000, expectInvalid: true, text: (n) => `{:proxies [] :settings {:x #{${range(n, String)}}}}` },
  { name: 'EDN set of strings', n: 16_000, expectInvalid: true, text: (n) => `{:proxies [] :settings {:x #{${range(n, (i) => `"s${i}"`)}}}}` },
  {
    name: 'listener with many interfaces (uniqueItems by $ref)',
    n: 16_000,
    expectInvalid: true, // the first name comes again at the end
    text: (n) => `{:proxies [${proxy('a', `{:port 80 :interfaces [${range(n, (i) => `"e${i}"`)} "e0"]}`)}]}`,
  },
  {
    name: 'invalid proxies',
    n: 600,
    expectInvalid: true,
    text: (n) => `{:proxies [${range(n, (i) => proxy(`p${i}`, '{:interfaces ["eth0"] :port "x"}'))}]}`,
  },
  {
    name: 'targets with neither ip nor host (anyOf)',
    n: 1_000,
    expectInvalid: true,
    text: (n) => `{:proxies [${proxy('a', undefined, `[${range(n, (i) => `{:port ${1 + i}}`)}]`)}]}`,
  },
  {
    name: 'unknown settings keys',
    n: 1_000,
    expectInvalid: true,
    text: (n) => `{:proxies [${proxy('a')}] :settings {${range(n, (i) => `:unknown-key-${i} 1`)}}}`,
  },
  {
    name: 'valid proxies',
    n: 300,
    expectInvalid: false,
    text: (n) => `{:proxies [${range(n, (i) => proxy(`p${i}`, `{:interfaces ["eth0"] :port ${1 + i}}`))}]}`,
  },
];

/** CPU time, not wall-clock time: other processes on a busy machine do not count. */
function timeRun(text: string): { ms: number; result: CheckResult } {
  const start = process.cpuUsage();
  const result = checkConfig([{ file: 'hostile.edn', text }]);
  const used = process.cpuUsage(start);
  return { ms: (used.user + used.system) / 1000, result };
}

/** The fastest times at n and 4n, the sizes interleaved so a slow spell hits both alike. */
function measure(small: string, large: string): { small: number; large: number; ratio: number; result: CheckResult } {
  // Warm-up at both sizes: the schema is compiled and the JIT has settled on both shapes.
  timeRun(small);
  timeRun(large);
  const a: number[] = [];
  const b: number[] = [];
  let result: CheckResult | undefined;
  for (let run = 0; run < RUNS; run++) {
    a.push(timeRun(small).ms);
    const l = timeRun(large);
    b.push(l.ms);
    result = l.result;
  }
  const s = Math.min(...a);
  const l = Math.min(...b);
  return { small: s, large: l, ratio: l / s, result: result! };
}

describe('config checks grow linearly with the config', () => {
  for (const shape of SHAPES) {
    it(`${shape.name}: 4x the items take well under 16x the CPU time`, () => {
      const small = shape.text(shape.n);
      const large = shape.text(4 * shape.n);
      let m = measure(small, large);
      // One more measurement if the first looks too slow: a burst of load on a shared machine can
      // land on the larger runs. A quadratic check stays near 16x on both.
      if (m.ratio >= RATIO_BOUND) m = measure(small, large);
      console.log(`${shape.name}: n=${shape.n} ${m.small.toFixed(1)} ms, 4n ${m.large.toFixed(1)} ms, ratio ${m.ratio.toFixed(2)}`);
      expect(m.result.ok).toBe(!shape.expectInvalid);
      if (!m.result.ok) expect(m.result.diagnostics.length).toBeLessThanOrEqual(MAX_DIAGNOSTICS + 1);
      expect(m.ratio).toBeLessThan(RATIO_BOUND);
    }, 60_000);
  }
});
