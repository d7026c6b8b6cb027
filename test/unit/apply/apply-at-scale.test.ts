// The pieces that keep an apply of 100,000 entries proportional to its change: byte keys that
// sort like the bytes, generation-neutral canonical bytes (digests), the journal's runs of saved
// entries, and the routes records (exact round trip, damaged or foreign ones refused).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeJournal, encodeJournal, type Journal } from '../../../src/apply/journal.js';
import { byteKey, canonicalBytes, canonicalText, diffGeneration, EMPTY_GROUP_VALUE } from '../../../src/core/ops.js';
import { encodeGeneration, retargetGeneration } from '../../../src/core/generation.js';
import { INVENTORY_FORMAT_VERSION, type Inventory } from '../../../src/state/inventory.js';
import { readRoutesRecord, routesRecordPath, writeRoutesRecord } from '../../../src/state/routes-record.js';
import { TargetIds, buildGeneration } from '../../lib/apply-fixtures.js';

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
    const text = encodeJournal(journal);
    expect(decodeJournal(text)).toEqual(journal);
    const items = (JSON.parse(text) as { saved: unknown[] }).saved;
    expect(items.length).toBeLessThanOrEqual(6);
    expect(text.length).toBeLessThan(20_000); // 51 KiB of group slots and 500 keys
  });

  it('refuses a run whose keys do not divide into its key size', () => {
    const json = JSON.parse(encodeJournal(journal)) as { saved: Array<Record<string, unknown>> };
    json.saved[1] = { ...json.saved[1], keySize: 3 };
    expect(() => decodeJournal(JSON.stringify(json))).toThrow(/saved\[1\]\.keySize/);
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
    const fromColumns = readFileSync(routesRecordPath(dir, 1), 'latin1');
    writeRoutesRecord(dir, rec);
    expect(readFileSync(routesRecordPath(dir, 1), 'latin1')).toBe(fromColumns);
  });

  it('a damaged or truncated record reads as none', () => {
    writeRoutesRecord(dir, rec);
    const path = routesRecordPath(dir, 1);
    const text = readFileSync(path, 'latin1');
    const [head, body] = text.split('\n') as [string, string];
    writeFileSync(path, `${head}\n${body.slice(0, -8)}\n`);
    expect(readRoutesRecord(dir, 1)).toBeNull();
    writeFileSync(path, `${head}\n${Buffer.from(Buffer.from(body, 'base64').map((b, i) => (i === 3 ? b ^ 1 : b))).toString('base64')}\n`);
    expect(readRoutesRecord(dir, 1)).toBeNull();
    writeFileSync(path, 'not a record');
    expect(readRoutesRecord(dir, 1)).toBeNull();
  });
});
