// `lb validate --config` (the built CLI) against every hostile input of the [ingest] issue and those
// found since (bench/lib/hostile-configs.ts, the list bench/hostile.ts times): each must end with
// exit 1 and a located error, bounded (at most 100 diagnostics and a count of the rest, ~1,000
// characters a line) and escaped (no control character reaches the terminal), in under 512 MiB,
// without hanging, reading a device, or echoing a file it refused. Each run's wall time and peak
// RSS (reported by the child itself) are printed; the time is never asserted (the goal, 5 s, is
// held by the benchmark's figures).

import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTILE_CASES, HOSTILE_MAX_RSS_MIB, validateHostile, writeRssPreload, type HostileRun } from '../../bench/lib/hostile-configs.js';
import { MAX_DIAGNOSTICS, MAX_MESSAGE_CHARS } from '../../src/core/config/limits.js';
import { removeDir, tempDir } from '../lib/git-fixtures.js';

const PROXY = 'proxies:\n  - name: web\n    listen: {interfaces: [lo], port: 80}\n    default-target: [{ip: 10.0.0.1, port: 8080}]\n';
// eslint-disable-next-line no-control-regex -- matching control characters is the point: none may reach the terminal
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

let base: string;
/** A preload that makes the child print its own peak RSS on exit (spawnSync gives no rusage). */
let preload: string;

beforeAll(async () => {
  base = await tempDir('lb-hostile-cli-');
  preload = await writeRssPreload(base);
});

afterAll(async () => {
  await removeDir(base);
});

function validate(label: string, path: string): HostileRun {
  const r = validateHostile(path, preload);
  console.log(`[hostile-cli] ${label}: exit ${r.code ?? r.signal} in ${r.ms.toFixed(0)} ms, peak RSS ${r.rssMiB !== null ? `${r.rssMiB.toFixed(0)} MiB` : 'unknown'}, ${r.output.length} B of output`);
  return r;
}

describe('lb validate against hostile configs', () => {
  HOSTILE_CASES.forEach((c, i) => {
    it(`${c.name}: exit 1 with a located, escaped, bounded error`, async () => {
      const dir = join(base, `case-${i}`);
      await mkdir(dir);
      const path = await c.make(dir);
      const r = validate(c.name, path);
      expect(r).toMatchObject({ code: 1, signal: null });
      for (const text of c.expect(path)) expect(r.output).toContain(text);
      for (const text of c.never ?? []) expect(r.output).not.toContain(text);
      const lines = r.output.trimEnd().split('\n');
      expect(lines.length).toBeLessThanOrEqual(MAX_DIAGNOSTICS + 2);
      for (const line of lines) expect(line.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS + path.length + 100);
      expect(r.output).not.toMatch(UNSAFE);
      expect(r.rssMiB, 'the child reported its peak RSS').not.toBeNull();
      expect(r.rssMiB!).toBeLessThan(HOSTILE_MAX_RSS_MIB);
    }, 60_000);
  });

  it('a symlink that stays inside the directory is followed', async () => {
    const dir = join(base, 'inside');
    await mkdir(join(dir, '..2026'), { recursive: true });
    await writeFile(join(dir, '..2026', 'lb.yaml'), PROXY);
    await symlink('..2026/lb.yaml', join(dir, 'lb.yaml'));
    const r = validate('link inside the directory', dir);
    // lo exists everywhere: the config is valid.
    expect(r).toMatchObject({ code: 0, signal: null });
  });
});
