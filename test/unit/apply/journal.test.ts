// The apply's files: the journal (exact round trip of saved bytes, refusal of anything malformed),
// the inventory, atomic writes, the instance lock, fault-injection specs and saved-plan files.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeJournal, encodeJournal, readJournal, removeJournal, writeJournal, type Journal } from '../../../src/apply/journal.js';
import { acquireLock } from '../../../src/apply/lock.js';
import { readPlanFile } from '../../../src/apply/plan-file.js';
import { parseFaultSpec, stableJson } from '../../../src/apply/transaction.js';
import { isLbError } from '../../../src/core/errors.js';
import { INVENTORY_FORMAT_VERSION, readInventory, writeInventory, type Inventory } from '../../../src/state/inventory.js';

const dir = mkdtempSync(join(tmpdir(), 'lb-apply-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const inventory: Inventory = {
  format_version: INVENTORY_FORMAT_VERSION, instance: 'x', revision: 'abc123', configDigest: 'sha256:00', appliedAt: '2026-01-01T00:00:00.000Z',
  activeGen: 1, serial: 8, interfaces: ['eth0'], listeners: { 'eth0|0.0.0.0|80|tcp': 'web' }, targetIds: { '10.0.0.1:80': 0 },
};
const journal: Journal = {
  instance: 'x', pid: 42, startedAt: '2026-01-01T00:00:00.000Z', netns: 'net:[1]', targetGen: 1,
  oldCtl: { activeGen: 0, serial: 7 }, postFlipSerial: 8, desiredDigest: 'ff',
  saved: [
    { map: 'lb_listeners', key: Buffer.from('0100000a', 'hex'), value: null },
    { map: 'lb_groups', key: Buffer.from('00400000', 'hex'), value: Buffer.from('0000000000ff', 'hex') },
  ],
  attach: ['eth1'], detach: ['eth2'], inventory,
};

describe('journal', () => {
  it('round-trips exactly, saved bytes included', () => {
    expect(decodeJournal(encodeJournal(journal))).toEqual(journal);
  });

  it('is written atomically and durably, read back, and removed', () => {
    writeJournal(dir, journal);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(readJournal(dir)).toEqual(journal);
    expect(removeJournal(dir)).toBe(true);
    expect(readJournal(dir)).toBeNull();
    expect(removeJournal(dir)).toBe(false);
  });

  it('refuses a malformed or foreign journal with LB_APPLY_JOURNAL', () => {
    const good = JSON.parse(encodeJournal(journal)) as Record<string, unknown>;
    const cases = ['{', JSON.stringify({ ...good, format_version: 2 }), JSON.stringify({ ...good, targetGen: 2 }),
      JSON.stringify({ ...good, saved: [{ map: 'lb_flows', key: '00', value: null }] }), JSON.stringify({ ...good, saved: [{ map: 'lb_groups', key: 'zz', value: null }] })];
    for (const text of cases) {
      let error: unknown;
      try {
        decodeJournal(text, '/run/lb/x/journal.json');
      } catch (err) {
        error = err;
      }
      expect(isLbError(error, 'LB_APPLY_JOURNAL'), text).toBe(true);
    }
  });
});

describe('inventory', () => {
  it('round-trips', () => {
    writeInventory(dir, inventory);
    expect(readInventory(dir)).toEqual(inventory);
  });

  it('treats an unreadable inventory as absent, with a warning', () => {
    const sub = mkdtempSync(join(dir, 'inv-'));
    writeFileSync(join(sub, 'inventory.json'), '{"format_version": 99}');
    const warnings: string[] = [];
    expect(readInventory(sub, (m) => warnings.push(m))).toBeNull();
    expect(warnings[0]).toMatch(/not an lb inventory/);
    expect(readInventory(join(dir, 'nowhere'))).toBeNull();
  });
});

describe('instance lock', () => {
  it('is exclusive, names its holder, and is free again after release', () => {
    const lock = acquireLock(dir, 'x');
    let error: unknown;
    try {
      acquireLock(dir, 'x');
    } catch (err) {
      error = err;
    }
    expect(isLbError(error, 'LB_APPLY_LOCKED')).toBe(true);
    expect((error as Error).message).toContain(`pid ${process.pid}`);
    lock.release();
    acquireLock(dir, 'x').release();
  });
});

describe('LB_FAULT_INJECT', () => {
  it('parses op indexes and named points, kill by default', () => {
    expect(parseFaultSpec(undefined)).toBeUndefined();
    expect(parseFaultSpec('')).toBeUndefined();
    expect(parseFaultSpec('7')).toEqual({ at: 7, action: 'kill' });
    expect(parseFaultSpec('after-flip:throw')).toEqual({ at: 'after-flip', action: 'throw' });
    expect(parseFaultSpec('commit')).toEqual({ at: 'commit', action: 'kill' });
    expect(() => parseFaultSpec('soon')).toThrow(/LB_FAULT_INJECT/);
  });
});

describe('stableJson', () => {
  it('gives equal text for equal values built in another key order', () => {
    expect(stableJson({ b: 1, a: [{ y: 2, x: 1 }] })).toBe(stableJson({ a: [{ x: 1, y: 2 }], b: 1 }));
  });
});

describe('saved plan files', () => {
  const write = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  it('refuses what is not an lb plan of a known major version', () => {
    const cases: Array<[string, RegExp]> = [
      [write('a.plan', 'nope'), /not JSON/],
      [write('b.plan', '{"kind":"terraform"}'), /kind is "terraform"/],
      [write('c.plan', '{"kind":"lb-plan","format_version":"2.0"}'), /format_version "2.0"/],
      [write('d.plan', '{"kind":"lb-plan","format_version":"1.3"}'), /fields are missing/],
      [join(dir, 'missing.plan'), /no such file/],
    ];
    for (const [path, message] of cases) {
      let error: unknown;
      try {
        readPlanFile(path);
      } catch (err) {
        error = err;
      }
      expect(isLbError(error, 'LB_APPLY_PLANFILE'), path).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
    expect(readFileSync(join(dir, 'a.plan'), 'utf8')).toBe('nope');
  });
});
