// Atomicity: a child process applies a coupled change back and forth (A, B, A, B, ...) through
// the real transaction while this process sends SYNs through the same pinned XDP program with
// BPF_PROG_TEST_RUN. The change is coupled so that half of it gives a third answer:
//
//   A: listener L -> group g   = [T1]      B: listener L -> group g+1 = [T2]
//               M -> group g+1 = [T4]                  M -> group g   = [T3]
//
// A packet that saw B's listener with A's groups would go to T4, A's listener with B's groups to
// T3 (or be dropped or passed if a slot were half cleared). The group slots move on every cycle
// (g = 0, 2, 4), so every apply really rewrites the inactive generation (listeners, group puts and
// clears) rather than flipping between two ready ones. Every answer must be T1 or T2; both must
// be seen. Needs root; fails (never skips) without it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { applyGeneration } from '../../src/apply/index.js';
import { DataPlane, type GenerationConfig } from '../../src/dataplane/index.js';
import { runDir } from '../../src/state/run-dir.js';
import { TargetIds, buildGeneration, synAnswer } from '../lib/apply-fixtures.js';
import { ROOT } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('apply-atomicity.test.ts must run as root: it loads BPF programs');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'lb-atomic-'));
const L = { vip: '10.100.0.1', port: 80 };
const M = { vip: '10.100.0.2', port: 80 };
const [T1, T2, T3, T4] = ['10.9.0.1:80', '10.9.0.2:80', '10.9.0.3:80', '10.9.0.4:80'];
const MAX_APPLIES = 300;
const MAX_MS = 12_000;
const MAX_PACKETS = 400_000;

const ids = new TargetIds();
const sequence: GenerationConfig[] = [];
// L is persistent: its group slots also carry Maglev tables (lb_maglev), written and deleted with
// the groups on every cycle.
for (const base of [0, 2, 4]) {
  sequence.push(buildGeneration([{ ...L, targets: [T1!], persist: true }, { ...M, targets: [T4!] }], ids, { groupBase: base }));
  sequence.push(buildGeneration([{ ...M, targets: [T3!] }, { ...L, targets: [T2!], persist: true }], ids, { groupBase: base }));
}

// The child: the compiled apply layer, applying the sequence round and round (bounded).
const CHILD = `
import { readFileSync } from 'node:fs';
const [modUrl, instance, file, maxApplies, maxMs] = process.argv.slice(1);
const { applyGeneration } = await import(modUrl);
// Buffers (the Maglev tables) come back from JSON as {type: 'Buffer', data}.
const seq = JSON.parse(readFileSync(file, 'utf8'), (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data) : v));
const deadline = Date.now() + Number(maxMs);
let applies = 0, ops = 0;
while (applies < Number(maxApplies) && Date.now() < deadline) {
  const r = applyGeneration({ instance, generation: seq[applies % seq.length], interfaces: [] });
  applies++;
  ops += r.ops;
}
process.stdout.write(JSON.stringify({ applies, ops }));
`;

describe('atomicity of apply under traffic', () => {
  afterAll(() => {
    DataPlane.down(instance);
    rmSync(runDir(instance), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('every packet sees exactly the old or the new configuration, never a mix', async () => {
    ensureBuilt();
    applyGeneration({ instance, generation: sequence[sequence.length - 1]!, interfaces: [] });
    const dp = DataPlane.open({ instance });
    try {
      expect(synAnswer(dp, L.vip, L.port)).toBe(T2);
      const file = join(dir, 'sequence.json');
      writeFileSync(file, JSON.stringify(sequence));
      const mod = pathToFileURL(join(ROOT, 'dist', 'src', 'apply', 'index.js')).href;
      const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, mod, instance, file, String(MAX_APPLIES), String(MAX_MS)],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      let exited = false;
      const done = new Promise<number | null>((resolve) => child.on('close', (code) => { exited = true; resolve(code); }));
      const kill = setTimeout(() => child.kill('SIGKILL'), MAX_MS + 10_000);

      const answers = new Map<string, number>();
      let packets = 0;
      const started = Date.now();
      while (!exited && packets < MAX_PACKETS && Date.now() - started < MAX_MS + 10_000) {
        for (let i = 0; i < 500; i++, packets++) {
          // A fresh 5-tuple every time, so conntrack never answers for the configuration.
          const client = `192.0.${2 + Math.floor(packets / 40_000)}.${1 + (Math.floor(packets / 40_000) % 250)}`;
          const a = synAnswer(dp, L.vip, L.port, client, 20_000 + (packets % 40_000));
          answers.set(a, (answers.get(a) ?? 0) + 1);
        }
        await new Promise((r) => setImmediate(r));
      }
      clearTimeout(kill);
      const code = await done;
      expect(code, stderr).toBe(0);
      const { applies, ops } = JSON.parse(stdout) as { applies: number; ops: number };
      console.log(`atomicity: ${applies} applies (${ops} raw operations) by the child, ${packets} packets: ${JSON.stringify(Object.fromEntries(answers))}`);
      expect(applies).toBeGreaterThanOrEqual(20);
      expect(ops).toBeGreaterThanOrEqual(applies * 4);
      expect([...answers.keys()].filter((a) => a !== T1 && a !== T2), 'answers that mix A and B').toEqual([]);
      expect(answers.get(T1) ?? 0).toBeGreaterThan(0);
      expect(answers.get(T2) ?? 0).toBeGreaterThan(0);
    } finally {
      dp.close();
    }
  });
});
