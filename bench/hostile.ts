// Hostile configs (the [ingest] issue's table and the cases found since, bench/lib/hostile-configs.ts):
// each through the built `lb validate --config` in a fresh process, three times; reported per case:
// the median wall time and the largest peak RSS, against the goal of every case under 5 s and
// 512 MiB (and exit 1: a run that exits otherwise fails the suite). The same cases are tests in
// `make test` (test/integration/hostile-config-files.test.ts).

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchError } from './lib/errors.js';
import { HOSTILE_CASES, HOSTILE_MAX_MS, HOSTILE_MAX_RSS_MIB, validateHostile, writeRssPreload } from './lib/hostile-configs.js';
import { median, ratio } from './lib/stats.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const ROUNDS = 3;

async function runSuite(ctx: SuiteContext): Promise<SuiteResult> {
  const base = await mkdtemp(join(tmpdir(), 'lb-bench-hostile-'));
  const measurements: Measurement[] = [];
  let worstMs = 0;
  let worstRss = 0;
  try {
    const preload = await writeRssPreload(base);
    for (const [i, c] of HOSTILE_CASES.entries()) {
      const dir = join(base, `case-${i}`);
      await mkdir(dir);
      const path = await c.make(dir);
      const ms: number[] = [];
      const rss: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        ctx.log(`${c.name}, round ${round + 1}/${ROUNDS}`);
        const r = validateHostile(path, preload);
        if (r.code !== 1 || r.rssMiB === null) throw new BenchError(`${c.name}: lb validate exited ${r.code ?? r.signal} (expected 1): ${r.output.slice(0, 300)}`);
        ms.push(r.ms);
        rss.push(r.rssMiB);
      }
      const key = `hostile_${i}`;
      measurements.push(
        { key, label: c.name, value: median(ms), unit: 'ms', samples: ms },
        { key: `${key}_rss`, label: `peak RSS, ${c.name}`, value: Math.max(...rss), unit: 'MiB', samples: rss },
      );
      worstMs = Math.max(worstMs, median(ms));
      worstRss = Math.max(worstRss, ...rss);
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  return {
    suite: 'hostile',
    title: 'Hostile configs through lb validate',
    method: [
      `Each case (bench/lib/hostile-configs.ts) is made in a scratch directory and given to the built CLI, \`lb validate --config PATH\`, ${ROUNDS} times, each a fresh Node process (its start included).`,
      'Reported: the median wall time and the largest peak RSS (the child\'s own getrusage, printed on exit) of each case; every run must exit 1.',
    ],
    measurements,
    ratios: [
      { key: 'hostile_time_vs_goal', label: `slowest case: ${HOSTILE_MAX_MS / 1000} s / its median time (goal: every case under 5 s)`, value: ratio(HOSTILE_MAX_MS, worstMs), goal: 1 },
      { key: 'hostile_rss_vs_goal', label: `largest peak RSS: ${HOSTILE_MAX_RSS_MIB} MiB / measured (goal: under 512 MiB)`, value: ratio(HOSTILE_MAX_RSS_MIB, worstRss), goal: 1 },
    ],
    notes: [],
  };
}

export const hostileSuite: Suite = { name: 'hostile', title: 'Hostile configs through lb validate', run: runSuite };
