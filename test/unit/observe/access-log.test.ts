// The access log writer on real files: rotation by size keeps max-files rotated files, a full
// queue drops and counts, an unwritable path is reported and retried, and both line formats.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessLog, clfLine, jsonLine, type AccessLogConfig } from '../../../src/observe/access-log.js';
import type { ConnRecord } from '../../../src/observe/events/event-hub.js';
import { batchOf } from '../../lib/conn-batch.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'lb-access-log-unit-'));
  dirs.push(d);
  return d;
}

const T = Date.UTC(2026, 11, 7, 0, 25, 13, 250);
function rec(port: number, type: 'open' | 'close' = 'close'): ConnRecord {
  return {
    type, tsNs: 2_000_000_000n, openNs: 1_000_000_000n, client: '172.16.0.1', clientPort: port, vip: '10.100.0.1', vipPort: 80,
    backend: '10.0.0.1', backendPort: 8080, proto: 6, listenerId: 0, targetId: 1, reason: type === 'close' ? 'fin' : '',
    packetsIn: 5n, bytesIn: 420n, packetsOut: 4n, bytesOut: 1337n, proxy: 'web', listener: 'eth0 10.100.0.1:80/tcp',
    timeMs: T, openMs: T - 12, durationSec: type === 'close' ? 0.012 : 0,
  };
}
const cfg = (path: string, o: Partial<AccessLogConfig> = {}): AccessLogConfig => ({
  enabled: true, format: 'json', path, stdout: false, maxFileBytes: 1 << 20, maxFiles: 3, bufferSize: 1000, ...o,
});

describe('access log lines', () => {
  it('JSON: one object per line with the flow, its backend, reason, duration and counters', () => {
    expect(JSON.parse(jsonLine(rec(40000)))).toEqual({
      time: '2026-12-07T00:25:13.250Z', event: 'conn-close', proxy: 'web', listener: 'eth0 10.100.0.1:80/tcp', proto: 'tcp',
      client: '172.16.0.1:40000', vip: '10.100.0.1:80', backend: '10.0.0.1:8080', reason: 'fin', start: '2026-12-07T00:25:13.238Z',
      duration_ms: 12, bytes_in: 420, bytes_out: 1337, packets_in: 5, packets_out: 4,
    });
    expect(JSON.parse(jsonLine(rec(40000, 'open')))).not.toHaveProperty('reason');
  });

  it('CLF: host, time, request, status (the reason) and bytes to the client, then key=value', () => {
    expect(clfLine(rec(40000))).toBe('172.16.0.1 - - [07/Dec/2026:00:25:13 +0000] "CLOSE tcp 10.100.0.1:80 10.0.0.1:8080" fin 1337 proxy=web duration=0.012 bytes_in=420 client_port=40000');
    expect(clfLine(rec(40001, 'open'))).toBe('172.16.0.1 - - [07/Dec/2026:00:25:13 +0000] "OPEN tcp 10.100.0.1:80 10.0.0.1:8080" - - proxy=web client_port=40001');
  });
});

describe('AccessLog', () => {
  it('rotates by size and keeps max-files rotated files, the newest lines in the live file', async () => {
    const dir = scratch();
    const path = join(dir, 'logs', 'access.log');
    const log = new AccessLog(cfg(path, { maxFileBytes: 2000, maxFiles: 3 }));
    for (let i = 0; i < 40; i++) {
      log.add(batchOf(Array.from({ length: 5 }, (_, j) => rec(41000 + i * 5 + j))));
      await log.flush();
    }
    await log.close();
    // The live file exists unless the last write rotated it away.
    expect(readdirSync(join(dir, 'logs')).filter((f) => f !== 'access.log').sort()).toEqual(['access.log.1', 'access.log.2', 'access.log.3']);
    expect(log.status().rotations).toBeGreaterThan(3);
    expect(log.status()).toMatchObject({ written: 200, dropped: 0 });
    const ports = (f: string): number[] => !existsSync(join(dir, 'logs', f)) ? [] : readFileSync(join(dir, 'logs', f), 'utf8').split('\n').filter(Boolean).map((l) => Number((JSON.parse(l) as { client: string }).client.split(':')[1]));
    expect(Math.min(...ports('access.log.1'))).toBeGreaterThan(Math.max(...ports('access.log.2')));
    const live = ports('access.log');
    const newest = live.length > 0 ? live : ports('access.log.1');
    expect(newest[newest.length - 1]).toBe(41199);
  });

  it('drops and counts lines beyond buffer-size while a write is pending', async () => {
    const path = join(scratch(), 'access.log');
    const log = new AccessLog(cfg(path, { bufferSize: 100 }));
    log.add(batchOf(Array.from({ length: 1 }, (_, i) => rec(42000 + i))));
    log.add(batchOf(Array.from({ length: 150 }, (_, i) => rec(43000 + i))));
    await log.close();
    expect(log.status()).toMatchObject({ written: 101, dropped: 50 });
  });

  it('a path that cannot be written is reported, never thrown, and retried on flush', async () => {
    const dir = scratch();
    const blocker = join(dir, 'file');
    writeFileSync(blocker, '');
    const log = new AccessLog(cfg(join(blocker, 'access.log')));
    log.add(batchOf([rec(44000)]));
    await log.flush();
    expect(log.status().error).toContain(join(blocker, 'access.log'));
    expect(log.status().dropped).toBe(1);
    rmSync(blocker);
    log.add(batchOf([rec(44001)]));
    await log.flush();
    expect(log.status().error).toBeUndefined();
    expect(existsSync(join(blocker, 'access.log'))).toBe(true);
    await log.close();
  });

  it('backlog(): a promise that settles once the queue is written, only while it is more than half full', async () => {
    const path = join(scratch(), 'access.log');
    const log = new AccessLog(cfg(path, { bufferSize: 100 }));
    log.add(batchOf([rec(46000)]));
    expect(log.backlog()).toBeUndefined();
    log.add(batchOf(Array.from({ length: 60 }, (_, i) => rec(46001 + i))));
    const wait = log.backlog();
    expect(wait).toBeInstanceOf(Promise);
    await wait;
    expect(log.status()).toMatchObject({ written: 61, dropped: 0 });
    await log.close();
  });

  it('stdout only with path "-"', async () => {
    const out: string[] = [];
    const log = new AccessLog(cfg('-', { stdout: true, format: 'clf' }), (t) => out.push(t.toString()));
    log.add(batchOf([rec(45000, 'open'), rec(45000)]));
    await log.close();
    expect(out.join('').split('\n').filter(Boolean)).toEqual([clfLine(rec(45000, 'open')), clfLine(rec(45000))]);
  });

  it('a batch\'s JSON lines are jsonLine of each record (the batch path reads the records in place)', async () => {
    const out: string[] = [];
    const log = new AccessLog(cfg('-', { stdout: true }), (t) => out.push(t.toString()));
    const records = [rec(47000, 'open'), rec(47000), { ...rec(47001), listenerId: 9, proxy: null, listener: null, bytesIn: 2n ** 40n, reason: 'drain' as const }];
    log.add(batchOf(records));
    await log.close();
    expect(out.join('').split('\n').filter(Boolean)).toEqual(records.map(jsonLine));
  });
});
