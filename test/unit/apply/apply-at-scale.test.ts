// The pieces that keep an apply of 100,000 entries proportional to its change: byte keys that
// sort like the bytes, generation-neutral canonical bytes (digests), the journal's runs of saved
// entries, and the routes records (exact round trip, damaged or foreign ones refused).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeJournal, encodeJournal, savedEntriesOf, savedItemsOfRuns, type Journal } from '../../../src/apply/journal.js';
import { canonicalColumns, diffColumns, encodeColumns, type OpRun } from '../../../src/core/columns.js';
import { byteKey, canonicalBytes, canonicalText, diffGeneration, EMPTY_GROUP_VALUE } from '../../../src/core/ops.js';
import { encodeGeneration, retargetGeneration } from '../../../src/core/generation.js';
import { INVENTORY_FORMAT_VERSION, type Inventory } from '../../../src/state/inventory.js';
import { readRoutesRecord, routesRecordPath, writeRoutesRecord } from '../../../src/state/routes-record.js';
import { TargetIds, buildGeneration } from '../../lib/apply-fixtures.js';
import { changed, randomGeneration } from '../../lib/random-generation.js';

const dir = mkdtempSync(join(tmpdir(), 'lb-apply-scale-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ids = new TargetIds();
const base = buildGeneration([
  { vip: '10.0.0.1', port: 80, targets: ['10.1.0.1:80', '10.1.0.2:80'], persist: true },
  { vip: '10.0.0.2', port: 80, targets: ['10.1.0.3:80'], routes: [{ prefix: '192.168.0.0/16', targets: ['10.1.0.4:80'] }, { prefix: '10.9.0.0/24', targets: ['10.1.0.5:80'] }] },
], ids);

describe('byteKey', () => {
  it('orders like Buffer.compare and is equal exactly when the bytes are', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) & 255;
    for (const size of [4, 12, 16]) {
      const keys = Array.from({ length: 300 }, () => Buffer.from(Array.from({ length: size }, rnd)));
      keys.push(Buffer.from(keys[0]!)); // a repeat
      const byBytes = [...keys].sort(Buffer.compare).map((k) => k.toString('hex'));
      const byKey = [...keys].sort((a, b) => (byteKey(a) < byteKey(b) ? -1 : byteKey(a) > byteKey(b) ? 1 : 0)).map((k) => k.toString('hex'));
      expect(byKey).toEqual(byBytes);
      expect(new Set(keys.map(byteKey)).size).toBe(new Set(keys.map((k) => k.toString('hex'))).size);
    }
  });
});

describe('canonicalBytes', () => {
  it('is the same for one configuration in either generation, and differs when a value does', () => {
    expect(canonicalBytes(encodeGeneration(0, base))).toEqual(canonicalBytes(encodeGeneration(1, base)));
    expect(canonicalText(encodeGeneration(0, base))).not.toBe(canonicalText(encodeGeneration(1, base)));
    const reweighted = structuredClone(base);
    reweighted.groups[0]!.group.targets[1]!.weight = 7;
    expect(canonicalBytes(encodeGeneration(0, reweighted))).not.toEqual(canonicalBytes(encodeGeneration(0, base)));
  });

  it('ignores entry order and empty group slots, like the canonical text', () => {
    const a = encodeGeneration(1, base);
    const shuffled = { ...a, srcRoutes: [...a.srcRoutes].reverse(), groups: [...a.groups.reverse(), [Buffer.from([9, 0x40, 0, 0]), EMPTY_GROUP_VALUE] as [Buffer, Buffer]] };
    expect(canonicalBytes(shuffled)).toEqual(canonicalBytes(encodeGeneration(1, base)));
  });

  it('retargetGeneration gives what encoding for the other generation gives', () => {
    expect(canonicalText(retargetGeneration(encodeGeneration(0, base), 0, 1))).toBe(canonicalText(encodeGeneration(1, base)));
    expect(diffGeneration(1, retargetGeneration(encodeGeneration(0, base), 0, 1), encodeGeneration(1, base))).toEqual([]);
  });
});

describe('journal runs', () => {
  const inventory: Inventory = {
    format_version: INVENTORY_FORMAT_VERSION, instance: 'x', revision: null, configDigest: null, appliedAt: '2026-01-01T00:00:00.000Z',
    activeGen: 1, serial: 2, interfaces: [], listeners: {}, targetIds: {},
  };
  const key = (n: number, size: number): Buffer => Buffer.alloc(size, n);
  const journal: Journal = {
    instance: 'x', pid: 1, startedAt: '2026-01-01T00:00:00.000Z', netns: 'net:[1]', targetGen: 1, oldCtl: { activeGen: 0, serial: 1 }, postFlipSerial: 2,
    desiredDigest: 'ab', attach: [], detach: [], inventory: { ...inventory },
    saved: [
      { map: 'lb_settings', key: key(1, 4), value: Buffer.alloc(16) },
      ...Array.from({ length: 50 }, (_, i) => ({ map: 'lb_groups' as const, key: key(i, 4), value: Buffer.alloc(1024) })),
      { map: 'lb_groups', key: key(60, 4), value: Buffer.concat([Buffer.from([2, 0, 0, 0, 9]), Buffer.alloc(1019)]) },
      ...Array.from({ length: 500 }, (_, i) => ({ map: 'lb_src_routes' as const, key: key(i & 255, 12), value: null })),
      { map: 'lb_listeners', key: key(3, 12), value: Buffer.from('0100000002000000', 'hex') },
      { map: 'lb_listeners', key: key(4, 12), value: null },
    ],
  };

  it('round-trip every saved byte, in order, as a few items', () => {
    const file = encodeJournal(journal);
    expect(decodeJournal(file)).toEqual(journal);
    // Items as records: settings, the 50 empty slots, slot 60, the 500 absent routes, two listeners.
    const header = JSON.parse(file.toString('utf8', 12, 12 + file.readUInt32LE(8))) as { items: number };
    expect(header.items).toBeLessThanOrEqual(6);
    expect(file.length).toBeLessThan(10_000); // 51 KiB of group slots and 500 keys (6 KB of them)
  });
});

describe('saved items of op runs', () => {
  it('save every key the runs touch once, with its value before (absent keys of hash and LPM maps as null), in order, as few items', () => {
    const cur = canonicalColumns(encodeColumns(1, randomGeneration(11, 80)));
    for (const seed of [1, 2, 3]) {
      const want = canonicalColumns(encodeColumns(1, changed(randomGeneration(11, 80), seed)));
      const runs = diffColumns(1, cur, want, EMPTY_GROUP_VALUE);
      // The array maps' bytes before, as the apply reads them: settings by lookup, group slots from the generation.
      const slotJunk = Buffer.alloc(cur.groups.valueSize, 3); // an empty-looking slot with bytes: saved as they are
      const previous = (run: OpRun, i: number): Buffer | null => {
        if (run.map === 'lb_settings') return cur.settings;
        if (run.map === 'lb_groups') return run.prev[i]! >= 0 ? cur.groups.values.subarray(run.prev[i]! * cur.groups.valueSize, (run.prev[i]! + 1) * cur.groups.valueSize) : slotJunk;
        const c = { lb_listeners: cur.listeners, lb_src_routes: cur.srcRoutes, lb_maglev: cur.maglev }[run.map];
        return c.values.subarray(run.prev[i]! * c.valueSize, (run.prev[i]! + 1) * c.valueSize); // absent keys are never asked about
      };
      // The plain model: one entry per op, in op order.
      const model = runs.flatMap((run) => Array.from({ length: run.count }, (_, i) => ({
        map: run.map, key: run.keys.subarray(i * run.keySize, (i + 1) * run.keySize),
        value: run.prev[i]! < 0 && run.map !== 'lb_groups' && run.map !== 'lb_settings' ? null : previous(run, i),
      })));
      const items = savedItemsOfRuns(runs, previous);
      expect(savedEntriesOf(items)).toEqual(model);
      expect(items.length).toBeLessThan(model.length);
      // Through the file and back.
      const j: Journal = {
        instance: 'x', pid: 1, startedAt: '', netns: '', targetGen: 1, oldCtl: { activeGen: 0, serial: 1 }, postFlipSerial: 2, desiredDigest: 'ab',
        attach: [], detach: [], inventory: {} as Inventory, saved: [],
      };
      const { saved: _saved, ...draft } = j;
      expect(decodeJournal(encodeJournal({ ...draft, savedItems: items })).saved).toEqual(model);
    }
  });

  it('save a key repeated right after itself once', () => {
    const keys = Buffer.from([1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
    const run: OpRun = { map: 'lb_maglev', kind: 'put', keySize: 4, valueSize: 1, count: 3, keys, values: Buffer.alloc(3), prev: Int32Array.of(-1, -1, -1) };
    expect(savedEntriesOf(savedItemsOfRuns([run], () => null)).map((e) => e.key.toString('hex'))).toEqual(['01000000', '02000000']);
    // Keys of 3 bytes (no 32-bit words), the repeat inside a stretch of absent keys and of present ones.
    const odd: OpRun = {
      map: 'lb_listeners', kind: 'put', keySize: 3, valueSize: 1, count: 6, keys: Buffer.from('010101020202020202030303040404040404', 'hex'),
      values: Buffer.alloc(6), prev: Int32Array.of(-1, -1, -1, -1, 0, 0),
    };
    const was = Buffer.from([9]);
    expect(savedEntriesOf(savedItemsOfRuns([odd], () => was)).map((e) => `${e.key.toString('hex')}=${e.value?.toString('hex') ?? '-'}`))
      .toEqual(['010101=-', '020202=-', '030303=-', '040404=09']);
  });
});

describe('routes record', () => {
  const entries = encodeGeneration(1, base).srcRoutes;
  const rec = { gen: 1, serial: 5, ctlMapId: 11, routesMapId: 12, digest: 'dd', entries };

  it('round-trips exactly', () => {
    writeRoutesRecord(dir, rec);
    const read = readRoutesRecord(dir, 1)!;
    const { column, ...rest } = read;
    expect({ ...rest, entries: read.entries() }).toEqual({ ...rec, count: entries.length });
    const c = column();
    expect(c.count).toBe(entries.length);
    expect(c.keys).toEqual(Buffer.concat(entries.map(([k]) => k)));
    expect(c.values).toEqual(Buffer.concat(entries.map(([, v]) => v)));
    expect(readRoutesRecord(dir, 0)).toBeNull();
  });

  it('written from columns, it is the record of the same entries as pairs', () => {
    writeRoutesRecord(dir, { ...rec, entries: { keySize: 12, valueSize: 4, count: entries.length, keys: Buffer.concat(entries.map(([k]) => k)), values: Buffer.concat(entries.map(([, v]) => v)) } });
    const fromColumns = readFileSync(routesRecordPath(dir, 1));
    writeRoutesRecord(dir, rec);
    expect(readFileSync(routesRecordPath(dir, 1))).toEqual(fromColumns);
  });

  it('a damaged, truncated or older-format record reads as none', () => {
    writeRoutesRecord(dir, rec);
    const path = routesRecordPath(dir, 1);
    const file = readFileSync(path);
    const nl = file.indexOf(0x0a);
    expect(readRoutesRecord(dir, 1)).not.toBeNull();
    writeFileSync(path, file.subarray(0, file.length - 8));
    expect(readRoutesRecord(dir, 1)).toBeNull();
    writeFileSync(path, Buffer.from(file.map((b, i) => (i === nl + 4 ? b ^ 1 : b))));
    expect(readRoutesRecord(dir, 1)).toBeNull();
    writeFileSync(path, Buffer.concat([Buffer.from(file.toString('utf8', 0, nl).replace('"format":2', '"format":1')), file.subarray(nl)]));
    expect(readRoutesRecord(dir, 1)).toBeNull();
    writeFileSync(path, 'not a record');
    expect(readRoutesRecord(dir, 1)).toBeNull();
  });
});
