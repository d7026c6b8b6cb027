// The SNI acceptor's connections as connection records (src/acceptor/conn-events.ts): the shape the
// sinks get, the access log's route and name, and ConnStats keeping their active count across the
// conntrack sweep (which sees only the data plane's flows).
import { describe, expect, it, vi } from 'vitest';
import { acceptorConnEvents } from '../../../src/acceptor/conn-events.js';
import type { AcceptorConn, AcceptorEnd } from '../../../src/acceptor/acceptor.js';
import { clfLine, jsonLine } from '../../../src/observe/access-log.js';
import { ConnStats } from '../../../src/observe/conn-stats.js';
import type { ConnBatch, ConnRecord } from '../../../src/observe/events/conn-batch.js';

const conn = (clientPort: number): AcceptorConn => ({
  proxy: 'tls', listener: 'eth0 10.9.0.1:443/tcp', route: 'sni:*.example.com', serverName: 'shop.example.com',
  client: '10.1.0.2', clientPort, vip: '10.9.0.1', vipPort: 443, backend: '127.0.0.1', backendPort: 9442,
  acceptedNs: process.hrtime.bigint() - 2_000_000n, acceptedMs: Date.now() - 2,
});

/** The records an open (no end) or a close of `c` makes, as the sinks see them. */
function recordsOf(c: AcceptorConn, end?: AcceptorEnd): ConnRecord[] {
  const batches: ConnBatch[] = [];
  const events = acceptorConnEvents({ publish: (b) => batches.push(b) });
  if (end) events.closed!(c, end);
  else events.opened!(c);
  events.flush();
  return batches.flatMap((b) => b.records());
}

describe('acceptor connection records', () => {
  it('an open and a close shaped as the data plane\'s, with the route and the name', () => {
    const c = conn(40000);
    const [open] = recordsOf(c);
    expect(open).toMatchObject({ type: 'open', reason: '', proxy: 'tls', listener: 'eth0 10.9.0.1:443/tcp', proto: 6, client: '10.1.0.2', clientPort: 40000,
      vip: '10.9.0.1', vipPort: 443, backend: '127.0.0.1', backendPort: 9442, bytesIn: 0n, bytesOut: 0n, durationSec: 0, listenerId: 0, targetId: 0,
      acceptor: { route: 'sni:*.example.com', serverName: 'shop.example.com' } });
    expect(open!.openNs).toBe(c.acceptedNs);
    const [close] = recordsOf(c, { up: 517, down: 2048, reason: 'rst-backend' });
    expect(close).toMatchObject({ type: 'close', reason: 'rst-backend', bytesIn: 517n, bytesOut: 2048n, packetsIn: 0n, packetsOut: 0n });
    expect(close!.durationSec).toBeGreaterThanOrEqual(0.002);
    expect(close!.openNs).toBe(c.acceptedNs);
  });

  it('keeps when a close happened, not when it was reported (the door reports in batches); one in the future is now', () => {
    const c = conn(40003);
    const atNs = process.hrtime.bigint() - 1_000_000n;
    const [close] = recordsOf(c, { up: 1, down: 2, reason: 'fin', atNs });
    expect(close!.tsNs).toBe(atNs);
    const before = process.hrtime.bigint();
    const [later] = recordsOf(c, { up: 1, down: 2, reason: 'fin', atNs: before + 10_000_000_000n });
    expect(later!.tsNs).toBeGreaterThanOrEqual(before);
    expect(later!.tsNs).toBeLessThan(before + 10_000_000_000n);
  });

  it('the access log names the route and the server name (JSON and CLF)', () => {
    const c = { ...conn(40001), serverName: null, route: 'default' };
    expect(JSON.parse(jsonLine(recordsOf(c, { up: 1, down: 2, reason: 'fin' })[0]!))).toMatchObject({
      event: 'conn-close', proxy: 'tls', route: 'default', sni: null, reason: 'fin', bytes_in: 1, bytes_out: 2, backend: '127.0.0.1:9442',
    });
    expect(clfLine(recordsOf(conn(40002))[0]!)).toMatch(/"OPEN tcp 10\.9\.0\.1:443 127\.0\.0\.1:9442" - - proxy=tls route=sni:\*\.example\.com sni=shop\.example\.com client_port=40002$/);
  });

  it('ConnStats adds the acceptor\'s open connections to what the sweep counts', () => {
    const stats = new ConnStats();
    const published: ConnRecord[] = [];
    const events = acceptorConnEvents({ publish: (b) => { published.push(...b.records()); stats.add(b); } });
    events.opened!(conn(1));
    events.opened!(conn(2));
    events.closed!(conn(1), { up: 10, down: 20, reason: 'fin' });
    events.flush();
    expect(published.map((r) => r.type)).toEqual(['open', 'open', 'close']);
    stats.setActive(new Map([['tls\u0000127.0.0.1:9442', 3]]));
    expect(stats.backends()).toMatchObject([{ proxy: 'tls', backend: '127.0.0.1:9442', opened: 2, closed: 1, active: 1 + 3, bytesIn: 10, bytesOut: 20 }]);
    stats.setActive(new Map());
    expect(stats.backends()[0]!.active).toBe(1);
    expect(stats.recentCloses()).toMatchObject([{ proxy: 'tls', client: '10.1.0.2:1', backend: '127.0.0.1:9442', reason: 'fin', bytesIn: 10, bytesOut: 20 }]);
  });

  it('publishes waiting records as one batch, in order, without a flush; a full batch at once', async () => {
    const batches: ConnRecord[][] = [];
    let onPublish = (): void => undefined;
    const events = acceptorConnEvents({ publish: (b) => { batches.push(b.records()); onPublish(); } });
    const published = new Promise<void>((resolve) => { onPublish = resolve; });
    events.opened!(conn(1));
    events.opened!(conn(2));
    events.closed!(conn(1), { up: 10, down: 20, reason: 'fin' });
    expect(batches).toEqual([]);
    // The batch goes out by itself (its timer), not at a flush.
    await published;
    expect(batches.map((b) => b.map((r) => `${r.type}:${r.clientPort}`))).toEqual([['open:1', 'open:2', 'close:1']]);
    // 256 records waiting: published at once, as one batch (the first 32 grow the batch's room).
    for (let i = 0; i < 256; i++) events.opened!(conn(1000 + i));
    expect(batches.map((b) => b.length)).toEqual([3, 256]);
    expect(batches[1]!.map((r) => r.clientPort)).toEqual(Array.from({ length: 256 }, (_, i) => 1000 + i));
    // Nothing waiting: no empty batch.
    events.flush();
    expect(batches).toHaveLength(2);
  });

  it('arms no timer for records flushed in the task that made them (the door acceptor\'s batches)', async () => {
    const batches: number[] = [];
    const events = acceptorConnEvents({ publish: (b) => batches.push(b.count) });
    const timers = vi.spyOn(globalThis, 'setTimeout');
    try {
      events.opened!(conn(1));
      events.closed!(conn(1), { up: 1, down: 1, reason: 'fin' });
      events.flush();
      // The microtask that would arm the wait runs and finds nothing waiting.
      await Promise.resolve();
      expect(timers).not.toHaveBeenCalled();
      // A record left waiting past its task gets the wait.
      events.opened!(conn(2));
      await Promise.resolve();
      expect(timers).toHaveBeenCalledTimes(1);
    } finally {
      timers.mockRestore();
      events.flush();
    }
    expect(batches).toEqual([2, 1]);
  });
});
