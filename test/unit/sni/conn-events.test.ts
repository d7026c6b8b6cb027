// The SNI acceptor's connections as connection records (src/acceptor/conn-events.ts): the shape the
// sinks get, the access log's route and name, and ConnStats keeping their active count across the
// conntrack sweep (which sees only the data plane's flows).
import { describe, expect, it } from 'vitest';
import { acceptorConnEvents, acceptorRecord } from '../../../src/acceptor/conn-events.js';
import type { AcceptorConn } from '../../../src/acceptor/acceptor.js';
import { clfLine, jsonLine } from '../../../src/observe/access-log.js';
import { ConnStats } from '../../../src/observe/conn-stats.js';
import type { ConnRecord } from '../../../src/observe/events/event-hub.js';
import { ConnBatch } from '../../../src/observe/events/conn-batch.js';

const conn = (clientPort: number): AcceptorConn => ({
  proxy: 'tls', listener: 'eth0 10.9.0.1:443/tcp', route: 'sni:*.example.com', serverName: 'shop.example.com',
  client: '10.1.0.2', clientPort, vip: '10.9.0.1', vipPort: 443, backend: '127.0.0.1', backendPort: 9442,
  acceptedNs: process.hrtime.bigint() - 2_000_000n, acceptedMs: Date.now() - 2,
});

describe('acceptor connection records', () => {
  it('an open and a close shaped as the data plane\'s, with the route and the name', () => {
    const c = conn(40000);
    const open = acceptorRecord(c);
    expect(open).toMatchObject({ type: 'open', reason: '', proxy: 'tls', listener: 'eth0 10.9.0.1:443/tcp', proto: 6, client: '10.1.0.2', clientPort: 40000,
      vip: '10.9.0.1', vipPort: 443, backend: '127.0.0.1', backendPort: 9442, bytesIn: 0n, bytesOut: 0n, durationSec: 0,
      acceptor: { route: 'sni:*.example.com', serverName: 'shop.example.com' } });
    const close = acceptorRecord(c, { up: 517, down: 2048, reason: 'rst-backend' });
    expect(close).toMatchObject({ type: 'close', reason: 'rst-backend', bytesIn: 517n, bytesOut: 2048n, packetsIn: 0n, openMs: c.acceptedMs });
    expect(close.durationSec).toBeGreaterThanOrEqual(0.002);
    expect(close.openNs).toBe(c.acceptedNs);
  });

  it('the access log names the route and the server name (JSON and CLF)', () => {
    const c = { ...conn(40001), serverName: null, route: 'default' };
    expect(JSON.parse(jsonLine(acceptorRecord(c, { up: 1, down: 2, reason: 'fin' })))).toMatchObject({
      event: 'conn-close', proxy: 'tls', route: 'default', sni: null, reason: 'fin', bytes_in: 1, bytes_out: 2, backend: '127.0.0.1:9442',
    });
    expect(clfLine(acceptorRecord(conn(40002)))).toMatch(/"OPEN tcp 10\.9\.0\.1:443 127\.0\.0\.1:9442" - - proxy=tls route=sni:\*\.example\.com sni=shop\.example\.com client_port=40002$/);
  });

  it('ConnStats adds the acceptor\'s open connections to what the sweep counts', () => {
    const stats = new ConnStats();
    const published: ConnRecord[] = [];
    const events = acceptorConnEvents({ publish: (rs) => { published.push(...rs); stats.add(ConnBatch.ofRecords(rs)); } });
    events.opened!(conn(1));
    events.opened!(conn(2));
    events.closed!(conn(1), { up: 10, down: 20, reason: 'fin' });
    events.flush();
    expect(published.map((r) => r.type)).toEqual(['open', 'open', 'close']);
    stats.setActive(new Map([['tls\u0000127.0.0.1:9442', 3]]));
    expect(stats.backends()).toMatchObject([{ proxy: 'tls', backend: '127.0.0.1:9442', opened: 2, closed: 1, active: 1 + 3 }]);
    stats.setActive(new Map());
    expect(stats.backends()[0]!.active).toBe(1);
  });

  it('publishes waiting records as one batch, in order, without a flush; a full batch at once', async () => {
    const batches: ConnRecord[][] = [];
    let onPublish = (): void => undefined;
    const events = acceptorConnEvents({ publish: (rs) => { batches.push([...rs]); onPublish(); } });
    const published = new Promise<void>((resolve) => { onPublish = resolve; });
    events.opened!(conn(1));
    events.opened!(conn(2));
    events.closed!(conn(1), { up: 10, down: 20, reason: 'fin' });
    expect(batches).toEqual([]);
    // The batch goes out by itself (its timer), not at a flush.
    await published;
    expect(batches.map((b) => b.map((r) => `${r.type}:${r.clientPort}`))).toEqual([['open:1', 'open:2', 'close:1']]);
    // 256 records waiting: published at once, as one batch.
    for (let i = 0; i < 256; i++) events.opened!(conn(1000 + i));
    expect(batches.map((b) => b.length)).toEqual([3, 256]);
    // Nothing waiting: no empty batch.
    events.flush();
    expect(batches).toHaveLength(2);
  });
});
