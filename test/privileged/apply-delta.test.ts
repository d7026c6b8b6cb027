// Crash safety of the delta apply (src/apply/delta.ts): a process that applied BASE and then V1
// applies V2 as a delta (only the touched keys diffed, journaled, hashed and read back). That apply
// is made to fail before EVERY raw operation, before the flip and after it, in process, and is
// killed with SIGKILL at the same points in a child process; the outcome must be what a full apply
// of V2 gives: every config map byte-identical to before it (failed, or killed before the flip),
// or to a completed apply of V2 (killed after the flip: recovery verifies the delta's digest
// against the whole generation and finishes it). The same kills are made with the delta turned off
// (forgetApplied), and must end in the same bytes. Needs root; fails (never skips) without it.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { applyGeneration, forgetApplied, journalPath, recoverInstance } from '../../src/apply/index.js';
import { DataPlane, encodeU32, groupIndex, interfaceName, readCtl, type GenerationConfig } from '../../src/dataplane/index.js';
import { decodeGeneration as decodeLogical } from '../../src/core/compile/decode.js';
import type { LogicalListener, LogicalState } from '../../src/core/state.js';
import { isLbError } from '../../src/core/errors.js';
import { runDir } from '../../src/state/run-dir.js';
import { ensureBuilt } from '../lib/build.js';
import { ROOT } from '../lib/cli.js';
import { TargetIds, buildGeneration, snapshotConfigMaps, synAnswer, type ListenerSpec } from '../lib/apply-fixtures.js';

if (process.getuid?.() !== 0) throw new Error('apply-delta.test.ts must run as root: it loads BPF programs');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'lb-delta-'));
const ids = new TargetIds();
const vip = (k: number): string => `10.101.${k >> 8}.${k & 255}`;

// 60 listeners (every 5th persistent: Maglev tables; every 3rd with a source route). V1 changes one
// listener; V2 changes three more (targets, a route, a persistent listener's table), moves one to
// another port (a listener deleted and one added), and changes the settings: a small change of
// every kind, under the quarter of the entries beyond which the full path runs.
const listener = (k: number, net: number, port = 80): ListenerSpec => ({
  vip: vip(k + 1), port, targets: [`10.${net}.${k}.1:80`, ...(k % 5 === 0 ? [`10.${net}.${k}.2:80@2`] : [])], persist: k % 5 === 0,
  ...(k % 3 === 0 ? { routes: [{ prefix: `192.168.${k}.0/24`, targets: [`10.${net}.${k}.3:80`] }] } : {}),
});
const specs = (changes: Record<number, ListenerSpec>): ListenerSpec[] => Array.from({ length: 60 }, (_, k) => changes[k] ?? listener(k, 1));
const BASE = buildGeneration(specs({}), ids);
const V1 = buildGeneration(specs({ 4: listener(4, 2) }), ids);
const V2 = buildGeneration(specs({
  4: listener(4, 2), 7: listener(7, 3), 10: listener(10, 3), 12: { ...listener(12, 1), routes: [{ prefix: '172.20.0.0/16', targets: ['10.3.12.3:80'] }] },
  31: listener(31, 1, 8080),
}), ids, { tcpIdleSec: 120 });

function fresh(): void {
  forgetApplied(instance);
  DataPlane.down(instance);
  rmSync(runDir(instance), { recursive: true, force: true });
}

/** Applies BASE then V1 in this process, so that V2 is applied as a delta; returns the log of V2's apply. */
function applyV2(faultAt?: number | 'after-flip' | 'commit'): { lines: string[]; error?: unknown } {
  const lines: string[] = [];
  try {
    applyGeneration({ instance, generation: V2, interfaces: [], log: (l) => lines.push(l), ...(faultAt !== undefined ? { faultAt, faultAction: 'throw' as const } : {}) });
    return { lines };
  } catch (error) {
    return { lines, error };
  }
}
const apply = (g: GenerationConfig): void => void applyGeneration({ instance, generation: g, interfaces: [] });
const announced = (lines: string[]): number => Number(/journal written: generation \d, (\d+) raw operation/.exec(lines.join('\n'))?.[1] ?? NaN);

// The child: BASE, V1, then V2 killed at a point (or not), in one process; `full` forgets what the
// process knows before V2, so that V2 takes the full path.
const CHILD = `
import { readFileSync } from 'node:fs';
const [modUrl, instance, file, point, mode] = process.argv.slice(1);
const { applyGeneration, forgetApplied } = await import(modUrl);
const seq = JSON.parse(readFileSync(file, 'utf8'), (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data) : v));
applyGeneration({ instance, generation: seq[0], interfaces: [] });
applyGeneration({ instance, generation: seq[1], interfaces: [] });
if (point === 'V1') process.exit(0);
if (mode === 'full') forgetApplied(instance);
const fault = point === 'none' ? {} : { faultAt: /^\\d+$/.test(point) ? Number(point) : point, faultAction: 'kill' };
applyGeneration({ instance, generation: seq[2], interfaces: [], log: (l) => process.stderr.write(l + '\\n'), ...fault });
`;

function child(point: string, mode: 'delta' | 'full'): { signal: NodeJS.Signals | null; stderr: string } {
  const file = join(dir, 'sequence.json');
  writeFileSync(file, JSON.stringify([BASE, V1, V2]));
  const mod = pathToFileURL(join(ROOT, 'dist', 'src', 'apply', 'index.js')).href;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, mod, instance, file, point, mode], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0 && r.signal !== 'SIGKILL') throw new Error(`child ${point} ${mode} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return { signal: r.signal, stderr: r.stderr };
}

describe('delta apply: failures and crashes end as a full apply would', () => {
  afterEach(() => forgetApplied(instance));
  afterAll(() => {
    fresh();
    rmSync(dir, { recursive: true, force: true });
  });

  let ops = 0;

  it('V2 after BASE and V1 is a delta (listener and route puts and deletes, groups, a Maglev table, settings) of the full path\'s op count', () => {
    fresh();
    apply(BASE);
    apply(V1);
    const { lines, error } = applyV2();
    expect(error).toBeUndefined();
    expect(lines.some((l) => l.startsWith('delta apply:')), lines.join('\n')).toBe(true);
    ops = announced(lines);
    fresh();
    apply(BASE);
    apply(V1);
    forgetApplied(instance);
    const full = applyV2();
    expect(full.lines.some((l) => l.startsWith('delta apply:'))).toBe(false);
    expect(announced(full.lines)).toBe(ops);
    expect(ops).toBeGreaterThanOrEqual(10);
    console.log(`delta apply: V2 is ${ops} raw operations from the inactive generation`);
  });

  it('a failure before every raw operation, before the flip and after it leaves every config map as it was', () => {
    fresh();
    apply(BASE);
    apply(V1);
    const dp = DataPlane.open({ instance });
    try {
      for (const at of [...Array.from({ length: ops + 1 }, (_, i) => i), 'after-flip' as const]) {
        // Back to a delta: V1's generation and BASE's, both written by this process (no raw operation: both are in place).
        apply(BASE);
        apply(V1);
        const before = snapshotConfigMaps(dp);
        const { lines, error } = applyV2(at);
        expect(lines.some((l) => l.startsWith('delta apply:')), `fault at ${at}: ${lines.join(' | ')}`).toBe(true);
        expect(isLbError(error, 'LB_APPLY_FAILED'), `fault at ${at}: ${String(error)}`).toBe(true);
        const after = snapshotConfigMaps(dp);
        // A flip undone moves the serial on by two; all else is byte-identical.
        expect(at === 'after-flip' ? { ...after, lb_ctl: '' } : after, `maps after a fault at ${at}`).toEqual(at === 'after-flip' ? { ...before, lb_ctl: '' } : before);
        expect(existsSync(journalPath(runDir(instance)))).toBe(false);
        expect(synAnswer(dp, vip(8), 80)).toBe('10.1.7.1:80');
      }
      // After all those failures the delta still goes through, and V2 answers.
      apply(BASE);
      apply(V1);
      expect(applyV2().error).toBeUndefined();
      expect(synAnswer(dp, vip(8), 80)).toBe('10.3.7.1:80');
      expect(synAnswer(dp, vip(32), 8080)).toBe('10.1.31.1:80');
      expect(synAnswer(dp, vip(32), 80)).toBe('pass');
    } finally {
      dp.close();
    }
  }, 180_000);

  it('after a drift heal the next apply takes the full path: a drifted entry in the generation it writes is rewritten', () => {
    fresh();
    apply(BASE);
    apply(V1);
    const dp = DataPlane.open({ instance });
    try {
      // Drift behind lb's back in the active generation: listener 22's group slot gets listener 23's group.
      const gen = readCtl(dp).activeGen;
      const slot = (k: number): Buffer => encodeU32(groupIndex(gen, V1.listeners[k]!.value.defaultGroup));
      dp.maps.lb_groups.update(slot(22), dp.maps.lb_groups.lookup(slot(23))!);
      expect(synAnswer(dp, vip(23), 80)).toBe('10.1.23.1:80');
      apply(V1); // the drift heal: the same configuration, the maps read, the other generation written and flipped to
      expect(synAnswer(dp, vip(23), 80)).toBe('10.1.22.1:80');
      // V2 goes into the drifted generation: a delta would leave slot 22 as it found it.
      const { lines, error } = applyV2();
      expect(error).toBeUndefined();
      expect(lines.some((l) => l.startsWith('delta apply:')), lines.join(' | ')).toBe(false);
      expect(synAnswer(dp, vip(23), 80)).toBe('10.1.22.1:80');
      // And the apply after it is a delta again.
      const back: string[] = [];
      applyGeneration({ instance, generation: V1, interfaces: [], log: (l) => back.push(l) });
      expect(back.some((l) => l.startsWith('delta apply:')), back.join(' | ')).toBe(true);
      expect(synAnswer(dp, vip(23), 80)).toBe('10.1.22.1:80');
    } finally {
      dp.close();
    }
  });

  it('a delta with a desired LogicalState decodes its change: a changed listener that differs fails, one outside the change is not decoded', () => {
    const env = { ifname: (i: number) => interfaceName(i), proxyOf: () => null, interfaces: [] };
    const withDesired = (edit: (d: LogicalState) => void): { lines: string[]; error?: unknown } => {
      fresh();
      apply(BASE);
      apply(V1);
      const desired = decodeLogical(V2, env);
      edit(desired);
      const lines: string[] = [];
      try {
        applyGeneration({ instance, generation: V2, interfaces: [], desired, log: (l) => lines.push(l) });
        return { lines };
      } catch (error) {
        return { lines, error };
      }
    };
    const listenerAt = (d: LogicalState, k: number): LogicalListener => d.listeners.find((l) => l.vip === vip(k + 1) && l.port === 80)!;
    const ok = withDesired(() => {});
    expect(ok.error).toBeUndefined();
    expect(ok.lines.some((l) => l.startsWith('delta apply:')), ok.lines.join(' | ')).toBe(true);
    // Listener 7's targets are part of V2's change: a desired state that says otherwise fails the read-back.
    const changed = withDesired((d) => { listenerAt(d, 7).defaultTargets[0]!.weight += 1; });
    expect(isLbError(changed.error, 'LB_APPLY_FAILED') && (changed.error as { data: { code?: string } }).data.code, String(changed.error)).toBe('LB_APPLY_VERIFY');
    expect(String(changed.error)).toMatch(/decodes to a state different/);
    // Listener 20 is outside it: the delta's read-back does not decode it (a full apply's does).
    const outside = withDesired((d) => { listenerAt(d, 20).defaultTargets[0]!.weight += 1; });
    expect(outside.error).toBeUndefined();
    fresh();
    apply(BASE);
    apply(V1);
    forgetApplied(instance);
    const desired = decodeLogical(V2, env);
    listenerAt(desired, 20).defaultTargets[0]!.weight += 1;
    expect(() => applyGeneration({ instance, generation: V2, interfaces: [], desired })).toThrow(/decodes to a state different/);
  });

  it('SIGKILL at each step, recovered by the next process: the same bytes as a full apply killed there', () => {
    ensureBuilt();
    const snapshot = (): Record<string, string> => {
      const dp = DataPlane.open({ instance });
      try {
        return snapshotConfigMaps(dp);
      } finally {
        dp.close();
      }
    };
    fresh();
    child('V1', 'delta');
    const pre = snapshot();
    fresh();
    const done = child('none', 'delta');
    expect(done.stderr).toMatch(/delta apply:/);
    const post = snapshot();
    for (const point of ['0', '1', String(ops >> 1), String(ops - 1), String(ops), 'after-flip', 'commit']) {
      const ends: Record<string, string>[] = [];
      for (const mode of ['delta', 'full'] as const) {
        fresh();
        const r = child(point, mode);
        expect(r.signal, `${mode} killed at ${point}: ${r.stderr}`).toBe('SIGKILL');
        expect(r.stderr.includes('delta apply:'), `${mode} at ${point}`).toBe(mode === 'delta');
        const recovered = recoverInstance(instance);
        const flipped = point === 'after-flip' || point === 'commit';
        expect(recovered?.outcome, `${mode} killed at ${point}: ${recovered?.message}`).toBe(flipped ? 'completed' : 'rolled-back');
        const s = snapshot();
        expect(s, `${mode} killed at ${point}`).toEqual(flipped ? post : pre);
        ends.push(s);
      }
      expect(ends[0]).toEqual(ends[1]);
    }
  }, 300_000); // 16 child processes, each loading the programs: minutes on a loaded 2-CPU machine
});
