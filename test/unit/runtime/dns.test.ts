import { afterEach, describe, expect, it } from 'vitest';
import {
  applyDnsAnswer, dnsHosts, DnsResolver, FAILURE_RETRY_MS, initialDnsState, normalizeAddresses, refreshDelay, type DnsChangeEvent,
} from '../../../src/runtime/dns.js';
import { config } from './helpers.js';

describe('dns (pure)', () => {
  it('lists hosts once with the smallest refresh interval and their users', () => {
    const cfg = config(`
proxies:
  - name: a
    listen: {interfaces: [eth0], port: 80}
    default-target: [{host: api.internal, port: 80, dns-refresh-seconds: 30}, {ip: 10.0.0.1, port: 80}]
  - name: b
    listen: {interfaces: [eth0], port: 81}
    default-target: {host: api.internal, port: 81, dns-refresh-seconds: 10}
    source-routes: [{source: 10.0.0.0/8, target: {host: db.internal, port: 5432}}]
`);
    expect(dnsHosts(cfg)).toEqual([
      { host: 'api.internal', refreshSeconds: 10, users: [{ proxy: 'a', targetId: 'api.internal:80' }, { proxy: 'b', targetId: 'api.internal:81' }] },
      { host: 'db.internal', refreshSeconds: 30, users: [{ proxy: 'b', targetId: 'db.internal:5432' }] },
    ]);
  });

  it('ok -> stale keeps the last good addresses; never resolved says why', () => {
    let s = initialDnsState('h');
    s = applyDnsAnswer(s, { ok: false, error: 'ECONNREFUSED' }, 1);
    expect(s).toMatchObject({ status: 'never-resolved', addresses: [], lastError: 'ECONNREFUSED', consecutiveFailures: 1 });
    s = applyDnsAnswer(s, { ok: true, addresses: ['10.0.0.2', '10.0.0.10', '10.0.0.2'] }, 2);
    expect(s).toMatchObject({ status: 'ok', addresses: ['10.0.0.2', '10.0.0.10'], lastError: null, lastSuccessAt: 2, consecutiveFailures: 0 });
    s = applyDnsAnswer(s, { ok: false, error: 'ESERVFAIL' }, 3);
    expect(s).toMatchObject({ status: 'stale', addresses: ['10.0.0.2', '10.0.0.10'], lastError: 'ESERVFAIL', lastSuccessAt: 2 });
    s = applyDnsAnswer(s, { ok: true, addresses: [] }, 4);
    expect(s).toMatchObject({ status: 'stale', addresses: ['10.0.0.2', '10.0.0.10'], lastError: 'no A records', consecutiveFailures: 2 });
  });

  it('keeps only IPv4 answers, in numeric order', () => {
    expect(normalizeAddresses(['10.0.0.10', 'fe80::1', '9.9.9.9', 'junk', '10.0.0.9'])).toEqual(['9.9.9.9', '10.0.0.9', '10.0.0.10']);
  });

  it('jitters the refresh by +-10% and retries failures sooner', () => {
    expect(refreshDelay(30, true, 0)).toBe(27_000);
    expect(refreshDelay(30, true, 0.999)).toBeCloseTo(32_994, 0);
    expect(refreshDelay(30, false, 0.5)).toBe(FAILURE_RETRY_MS);
    expect(refreshDelay(2, false, 0.5)).toBe(2000);
  });
});

describe('DnsResolver with a fake resolve4', () => {
  let r: DnsResolver | undefined;
  afterEach(async () => { await r?.stop(); r = undefined; });

  it('resolves at start, reports changes, keeps last good on failure', async () => {
    const answers: Record<string, string[] | Error> = { 'a.internal': ['10.0.0.1'] };
    r = new DnsResolver({ resolve4: async (h) => { const a = answers[h]; if (!a || a instanceof Error) throw a ?? new Error('ENOTFOUND'); return a; } });
    const events: DnsChangeEvent[] = [];
    r.on('change', (e) => events.push(e));
    r.setHosts([{ host: 'a.internal', refreshSeconds: 3600, users: [] }]);
    expect(r.resolve('a.internal')).toBeUndefined();
    await r.refresh();
    expect(r.resolve('a.internal')).toEqual(['10.0.0.1']);
    answers['a.internal'] = ['10.0.0.2', '10.0.0.1'];
    await r.refresh('a.internal');
    expect(r.answers()).toEqual(new Map([['a.internal', ['10.0.0.1', '10.0.0.2']]]));
    answers['a.internal'] = Object.assign(new Error('boom'), { code: 'ETIMEOUT' });
    await r.refresh();
    expect(r.resolve('a.internal')).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(r.snapshot().get('a.internal')).toMatchObject({ status: 'stale', lastError: 'ETIMEOUT' });
    expect(events.map((e) => `${e.state.status} ${e.addressesChanged}`)).toEqual(['ok true', 'ok true', 'stale false']);
  });

  it('drops hosts no longer configured', async () => {
    r = new DnsResolver({ resolve4: async () => ['10.0.0.1'] });
    r.setHosts([{ host: 'a', refreshSeconds: 60, users: [] }, { host: 'b', refreshSeconds: 60, users: [] }]);
    await r.refresh();
    r.setHosts([{ host: 'b', refreshSeconds: 60, users: [] }]);
    expect([...r.answers().keys()]).toEqual(['b']);
  });
});
