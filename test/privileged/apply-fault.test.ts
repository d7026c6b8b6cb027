// Fault injection into the apply transaction: a change of many raw operations (listeners added,
// changed and removed, groups rewritten and cleared, source routes added and removed, Maglev tables
// of persistent listeners written and deleted, settings) is
// made to fail before EVERY operation, before the flip and after it. Each time the raw content of
// every config map, both generations and lb_ctl, must be byte-identical to before, no journal may
// be left, and the program must keep forwarding with the old configuration.
// Needs root; fails (never skips) without it.
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyGeneration, diffGeneration, journalPath, readJournal, recoverInstance } from '../../src/apply/index.js';
import { legacyJournalPath } from '../../src/apply/journal.js';
import { DataPlane, encodeGeneration, instanceDir, readCtl, readGenerationRaw, type GenerationConfig } from '../../src/dataplane/index.js';
import { isLbError } from '../../src/core/errors.js';
import { runDir } from '../../src/state/run-dir.js';
import { TargetIds, buildGeneration, snapshotConfigMaps, synAnswer, type ListenerSpec } from '../lib/apply-fixtures.js';

if (process.getuid?.() !== 0) throw new Error('apply-fault.test.ts must run as root: it loads BPF programs');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const ids = new TargetIds();
const vip = (i: number): string => `10.100.0.${i}`;

// A and B: the same 10 listeners, every backend different, so an answer tells which one is live.
const listenersAB = (net: number): ListenerSpec[] => Array.from({ length: 10 }, (_, k) => ({
  vip: vip(k + 1), port: 80, targets: [`10.${net}.${k + 1}.1:80`], persist: k === 0 || k === 3 || k === 4,
  ...(k < 3 ? { routes: [{ prefix: `192.168.${k}.0/24`, targets: [`10.${net}.${k + 1}.2:80`] }, { prefix: `172.16.${k}.0/24`, targets: [`10.${net}.${k + 1}.3:80`] }] } : {}),
}));
const A = buildGeneration(listenersAB(1), ids);
const B = buildGeneration(listenersAB(2), ids);
// C against A: listeners 1-6 kept with other targets and routes, 7-10 removed, 11-15 added, settings changed.
const C = buildGeneration([
  ...Array.from({ length: 6 }, (_, k) => ({
    vip: vip(k + 1), port: 80, targets: [`10.3.${k + 1}.1:80@3`, `10.3.${k + 1}.9:80@0`, ...(k === 1 ? ['10.3.2.8:80@1'] : [])], persist: k < 2,
    ...(k % 2 === 0 ? { routes: [{ prefix: `10.${k}.0.0/16`, targets: [`10.3.${k + 1}.2:80`] }] } : {}),
  })),
  ...Array.from({ length: 5 }, (_, k) => ({ vip: vip(k + 11), port: 443, targets: [`10.3.${k + 11}.1:443`] })),
], ids, { tcpIdleSec: 120 });

function apply(gen: GenerationConfig, faultAt?: number | 'after-flip' | 'commit'): ReturnType<typeof applyGeneration> {
  return applyGeneration({ instance, generation: gen, interfaces: [], ...(faultAt !== undefined ? { faultAt, faultAction: 'throw' as const } : {}) });
}

describe('apply fault injection', () => {
  let dp: DataPlane | undefined;
  const d = (): DataPlane => dp!;
  let opCount = 0;

  beforeAll(() => {
    apply(A);
    apply(B);
    dp = DataPlane.open({ instance });
  });

  afterAll(() => {
    dp?.close();
    DataPlane.down(instance);
    rmSync(runDir(instance), { recursive: true, force: true });
  });

  it('B is live, A waits in the inactive generation, and C differs from A by at least 30 raw operations', () => {
    const ctl = readCtl(d());
    expect(synAnswer(d(), vip(1), 80)).toBe('10.2.1.1:80');
    expect(synAnswer(d(), vip(2), 80, '192.168.1.5')).toBe('10.2.2.2:80');
    const inactive = 1 - ctl.activeGen;
    const ops = diffGeneration(inactive, readGenerationRaw(d(), inactive), encodeGeneration(inactive, C));
    opCount = ops.length;
    const kinds = new Set(ops.map((o) => `${o.map}:${o.kind}`));
    expect(opCount).toBeGreaterThanOrEqual(30);
    for (const k of ['lb_settings:put', 'lb_groups:put', 'lb_listeners:put', 'lb_listeners:delete', 'lb_src_routes:put', 'lb_src_routes:delete',
      'lb_maglev:put', 'lb_maglev:delete']) expect(kinds).toContain(k);
    console.log(`fault injection: C is ${opCount} raw operations away from the inactive generation`);
  });

  it('a failure before every raw operation and before the flip leaves every config map byte-identical', () => {
    const before = snapshotConfigMaps(d());
    for (let at = 0; at <= opCount; at++) {
      let error: unknown;
      try {
        apply(C, at);
      } catch (err) {
        error = err;
      }
      expect(isLbError(error, 'LB_APPLY_FAILED'), `fault at ${at}: ${String(error)}`).toBe(true);
      expect((error as Error).message).toMatch(/nothing changed/);
      expect(snapshotConfigMaps(d()), `maps after a fault before operation ${at}`).toEqual(before);
      expect(existsSync(journalPath(runDir(instance)))).toBe(false);
      // The old configuration keeps forwarding: default group and a source route.
      expect(synAnswer(d(), vip(1), 80)).toBe('10.2.1.1:80');
      expect(synAnswer(d(), vip(3), 80, '172.16.2.9')).toBe('10.2.3.3:80');
      expect(synAnswer(d(), vip(12), 443)).toBe('pass');
    }
  });

  it('a failure right after the flip flips back: same content, same active generation, serial moved on', () => {
    const before = snapshotConfigMaps(d());
    const ctl = readCtl(d());
    expect(() => apply(C, 'after-flip')).toThrow(/rolled back: nothing changed/);
    const after = snapshotConfigMaps(d());
    expect({ ...after, lb_ctl: '' }).toEqual({ ...before, lb_ctl: '' });
    expect(readCtl(d())).toEqual({ activeGen: ctl.activeGen, serial: ctl.serial + 2 });
    expect(synAnswer(d(), vip(1), 80)).toBe('10.2.1.1:80');
  });

  it('a failure after the read-back (a crash before the commit) is finished by recovery', () => {
    let error: unknown;
    try {
      apply(C, 'commit');
    } catch (err) {
      error = err;
    }
    expect(isLbError(error, 'LB_APPLY_FAULT')).toBe(true);
    expect(readJournal(runDir(instance))).not.toBeNull();
    const r = recoverInstance(instance);
    expect(r?.outcome).toBe('completed');
    expect(readJournal(runDir(instance))).toBeNull();
    expect(synAnswer(d(), vip(1), 80)).toBe('10.3.1.1:80');
    expect(synAnswer(d(), vip(1), 80, '10.0.1.1')).toBe('10.3.1.2:80');
    expect(synAnswer(d(), vip(12), 443)).toBe('10.3.12.1:443');
    expect(synAnswer(d(), vip(8), 80)).toBe('pass');
  });

  it("an older lb's journal.json (format 1) is recovered: the saved bytes it holds restore the generation exactly", () => {
    const dir = runDir(instance);
    const before = snapshotConfigMaps(d());
    const ctl = readCtl(d());
    expect(() => apply(A, 'commit')).toThrow(/fault injected/);
    const journal = readJournal(dir)!;
    // The journal as lb wrote it before the binary format: hex in JSON, one saved item per key.
    const { saved, ...fields } = journal;
    writeFileSync(legacyJournalPath(dir), JSON.stringify({
      format_version: 1, ...fields, saved: saved.map((e) => ({ map: e.map, key: e.key.toString('hex'), value: e.value?.toString('hex') ?? null })),
    }));
    rmSync(journalPath(dir));
    // A key the apply wrote damaged in the flipped generation: recovery must flip back and restore every saved key from the old file.
    const slot = saved.find((e) => e.map === 'lb_groups')!;
    d().maps.lb_groups.update(slot.key, Buffer.alloc(d().maps.lb_groups.valueSize, 7));
    const r = recoverInstance(instance);
    expect(r?.outcome).toBe('rolled-back');
    expect(readJournal(dir)).toBeNull();
    expect(existsSync(legacyJournalPath(dir))).toBe(false);
    expect({ ...snapshotConfigMaps(d()), lb_ctl: '' }).toEqual({ ...before, lb_ctl: '' });
    expect(readCtl(d())).toEqual({ activeGen: ctl.activeGen, serial: ctl.serial + 2 });
    expect(synAnswer(d(), vip(1), 80)).toBe('10.3.1.1:80');
  });

  it('a change of more than 256 groups (previous bytes taken from one read of the generation) rolls back byte for byte', () => {
    const many = `${instance}-g`;
    const spec = (net: number, n: number): ListenerSpec[] => Array.from({ length: n }, (_, k) => ({
      vip: `10.101.${k >> 8}.${k & 255}`, port: 80, targets: [`10.${net}.${k >> 8}.${k & 255}:80`, ...(k % 3 === 0 ? [`10.9.${k >> 8}.${k & 255}:81@2`] : [])],
    }));
    const manyIds = new TargetIds();
    const G1 = buildGeneration(spec(1, 300), manyIds);
    const G2 = buildGeneration(spec(2, 350), manyIds);
    const G3 = buildGeneration(spec(3, 320), manyIds); // against G1: 300 groups rewritten, 20 into empty slots
    try {
      applyGeneration({ instance: many, generation: G1, interfaces: [] });
      const dpMany = DataPlane.open({ instance: many });
      try {
        // Into the empty generation (every touched slot zero: found by one compare), then, G2 applied,
        // into the generation that holds G1 (slot by slot).
        for (const next of [null, G2]) {
          if (next !== null) applyGeneration({ instance: many, generation: next, interfaces: [] });
          const before = snapshotConfigMaps(dpMany);
          for (const faultAt of [0, 'after-flip'] as const) {
            expect(() => applyGeneration({ instance: many, generation: G3, interfaces: [], faultAt, faultAction: 'throw' }))
              .toThrow(/rolled back: nothing changed/);
            expect({ ...snapshotConfigMaps(dpMany), lb_ctl: '' }).toEqual({ ...before, lb_ctl: '' });
          }
        }
      } finally {
        dpMany.close();
      }
    } finally {
      DataPlane.down(many);
      rmSync(runDir(many), { recursive: true, force: true });
    }
  });

  it('a failed first apply leaves no instance behind', () => {
    const fresh = `${instance}-f`;
    try {
      expect(() => applyGeneration({ instance: fresh, generation: A, interfaces: [], faultAt: 3, faultAction: 'throw' })).toThrow(/nothing changed/);
      expect(existsSync(instanceDir(fresh))).toBe(false);
      expect(existsSync(journalPath(runDir(fresh)))).toBe(false);
    } finally {
      DataPlane.down(fresh);
      rmSync(runDir(fresh), { recursive: true, force: true });
    }
  });

  it('without a fault the apply goes through; the same apply again is a no-op', () => {
    const r = apply(B);
    expect(r.changed).toBe(true);
    expect(synAnswer(d(), vip(5), 80)).toBe('10.2.5.1:80');
    const again = apply(B);
    expect(again.changed).toBe(false);
    expect(again.ops).toBe(0);
  });
});
