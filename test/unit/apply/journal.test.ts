// The apply's files: the journal (exact round trip of saved bytes, refusal of anything malformed),
// the inventory, atomic writes, the instance lock, fault-injection specs and saved-plan files.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeJournal, decodeLegacyJournal, encodeJournal, readJournal, removeJournal, writeJournal, type Journal } from '../../../src/apply/journal.js';
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
    const good = encodeJournal(journal);
    // The header of a journal with other fields, the records and the checksum made again (a valid file).
    const withHeader = (patch: Record<string, unknown>): Buffer => {
      const headLength = good.readUInt32LE(8);
      const header = JSON.stringify({ ...JSON.parse(good.toString('utf8', 12, 12 + headLength)) as object, ...patch });
      const body = Buffer.concat([good.subarray(0, 8), Buffer.alloc(4), Buffer.from(header), good.subarray(12 + headLength, good.length - 32)]);
      body.writeUInt32LE(Buffer.byteLength(header), 8);
      return Buffer.concat([body, createHash('sha256').update(body).digest()]);
    };
    // A record's field changed, checksum made again: the record check (not the checksum) refuses it.
    const recordAt = 12 + good.readUInt32LE(8);
    const withRecord = (offset: number, byte: number): Buffer => {
      const body = Buffer.from(good.subarray(0, good.length - 32));
      body[recordAt + offset] = byte;
      return Buffer.concat([body, createHash('sha256').update(body).digest()]);
    };
    const flipped = Buffer.from(good);
    flipped[good.length - 40] = flipped[good.length - 40]! ^ 1; // a saved byte damaged
    const cases: Array<[string, Buffer, RegExp]> = [
      ['empty', Buffer.alloc(0), /truncated/],
      ['a JSON journal of format 1 under the new name', Buffer.from('{"format_version":1}'), /not an lb journal of format 2/],
      ['truncated by one byte', good.subarray(0, good.length - 1), /checksum/],
      ['truncated to its header', good.subarray(0, recordAt), /checksum/],
      ['a saved byte damaged', flipped, /checksum/],
      ['another format version', withHeader({ format_version: 3 }), /format_version 3/],
      ['target generation 2', withHeader({ targetGen: 2 }), /targetGen/],
      ['more items than records', withHeader({ items: 3 }), /saved\[2\]: past the end/],
      ['fewer items than records', withHeader({ items: 1 }), /bytes after the last saved entry/],
      ['a map that is not a config map', withRecord(0, 200), /saved\[0\]\.map/],
      ['a key size of 0', withRecord(2, 0), /saved\[0\]\.keySize/],
      ['unknown flags', withRecord(1, 7), /saved\[0\]\.flags/],
    ];
    for (const [what, file, why] of cases) {
      let error: unknown;
      try {
        decodeJournal(file, '/run/lb/x/journal.bin');
      } catch (err) {
        error = err;
      }
      expect(isLbError(error, 'LB_APPLY_JOURNAL'), what).toBe(true);
      expect((error as Error).message, what).toMatch(why);
      expect((error as Error).message, what).toMatch(/^\/run\/lb\/x\/journal\.bin is not a usable apply journal/);
    }
  });

  it('reads an older lb\'s journal.json (format 1), and refuses two journals at once', () => {
    const sub = mkdtempSync(join(dir, 'legacy-'));
    // What lb wrote before the binary journal: the saved entries as hex in JSON, runs of keys with keySize, trailing zeros apart.
    const { saved: _saved, ...fields } = journal;
    const legacy = {
      format_version: 1, ...fields,
      saved: [
        { map: 'lb_listeners', key: '0100000a', value: null },
        { map: 'lb_groups', key: '00400000', value: '0000000000ff' },
        { map: 'lb_src_routes', key: '0a0b0c0d0e0f', keySize: 3, value: '05', zeros: 20 },
      ],
    };
    writeFileSync(join(sub, 'journal.json'), JSON.stringify(legacy));
    expect(readJournal(sub)).toEqual({
      ...journal,
      saved: [
        ...journal.saved,
        { map: 'lb_src_routes', key: Buffer.from('0a0b0c', 'hex'), value: Buffer.concat([Buffer.from([5]), Buffer.alloc(20)]) },
        { map: 'lb_src_routes', key: Buffer.from('0d0e0f', 'hex'), value: Buffer.concat([Buffer.from([5]), Buffer.alloc(20)]) },
      ],
    });
    expect(() => decodeLegacyJournal(JSON.stringify({ ...legacy, saved: [{ map: 'lb_flows', key: '00', value: null }] }))).toThrow(/saved\[0\]/);
    expect(() => decodeLegacyJournal('{')).toThrow(/not JSON/);
    writeJournal(sub, journal);
    let error: unknown;
    try {
      readJournal(sub);
    } catch (err) {
      error = err;
    }
    expect(isLbError(error, 'LB_APPLY_JOURNAL')).toBe(true);
    expect((error as Error).message).toMatch(/two apply journals/);
    expect(removeJournal(sub)).toBe(true); // both go
    expect(readJournal(sub)).toBeNull();
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
