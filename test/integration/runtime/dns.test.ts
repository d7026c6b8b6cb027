// DNS-backed targets against a DNS server this test runs on 127.0.0.1.
import { afterEach, describe, expect, it } from 'vitest';
import { compileConfig } from '../../../src/core/compile/compile.js';
import { dnsHosts, DnsResolver, systemResolver, type DnsChangeEvent } from '../../../src/runtime/dns.js';
import { buildRuntimeInputs } from '../../../src/runtime/effective-weight.js';
import { config } from '../../unit/runtime/helpers.js';
import { startDnsServer, type TestDnsServer } from './dns-server.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => { for (const f of cleanup.splice(0).reverse()) await f(); });

async function setup(records: Record<string, string[]>): Promise<{ dns: TestDnsServer; resolver: DnsResolver }> {
  const dns = await startDnsServer(records);
  cleanup.push(() => dns.close());
  const resolver = new DnsResolver({ resolve4: systemResolver({ servers: [`127.0.0.1:${dns.port}`], timeoutMs: 150, tries: 1 }) });
  cleanup.push(() => resolver.stop());
  return { dns, resolver };
}

const CFG = config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 100}
      - {host: pool.test, port: 8080, weight: 100, dns-refresh-seconds: 1}
`);

describe('DNS-backed targets', () => {
  it('resolves several A records, and compile shares the weight among them next to a static target', async () => {
    const { dns, resolver } = await setup({ 'pool.test': ['10.0.1.2', '10.0.1.1'] });
    resolver.setHosts(dnsHosts(CFG));
    await resolver.refresh();
    expect(dns.queries).toEqual(['pool.test']);
    expect(resolver.snapshot().get('pool.test')).toMatchObject({ status: 'ok', addresses: ['10.0.1.1', '10.0.1.2'] });
    const { state } = compileConfig(CFG, buildRuntimeInputs({ config: CFG, dns: resolver.answers() }));
    expect(state.listeners[0]!.defaultTargets).toEqual([
      { addr: '10.0.0.1', port: 8080, weight: 100 },
      { addr: '10.0.1.1', port: 8080, weight: 50 },
      { addr: '10.0.1.2', port: 8080, weight: 50 },
    ]);
  });

  it('a changed answer changes the resolution (and the compiled backends)', async () => {
    const { dns, resolver } = await setup({ 'pool.test': ['10.0.1.1'] });
    const events: DnsChangeEvent[] = [];
    resolver.on('change', (e) => events.push(e));
    resolver.setHosts(dnsHosts(CFG));
    await resolver.refresh();
    dns.records.set('pool.test', ['10.0.2.1', '10.0.2.2', '10.0.2.3']);
    await resolver.refresh();
    expect(resolver.resolve('pool.test')).toEqual(['10.0.2.1', '10.0.2.2', '10.0.2.3']);
    expect(events.map((e) => e.addressesChanged)).toEqual([true, true]);
    const { state } = compileConfig(CFG, buildRuntimeInputs({ config: CFG, dns: resolver.answers() }));
    expect(state.listeners[0]!.defaultTargets.map((t) => `${t.addr}=${t.weight}`)).toEqual(['10.0.0.1=100', '10.0.2.1=34', '10.0.2.2=33', '10.0.2.3=33']);
  });

  it.each(['servfail', 'nxdomain', 'drop'] as const)('a failing resolver (%s) keeps the last good addresses, marked stale', async (mode) => {
    const { dns, resolver } = await setup({ 'pool.test': ['10.0.1.1', '10.0.1.2'] });
    resolver.setHosts(dnsHosts(CFG));
    await resolver.refresh();
    dns.mode = mode;
    await resolver.refresh();
    const st = resolver.snapshot().get('pool.test')!;
    expect(st).toMatchObject({ status: 'stale', addresses: ['10.0.1.1', '10.0.1.2'], consecutiveFailures: 1 });
    expect(st.lastError).toMatch(/^E[A-Z]+$/);
    expect(resolver.resolve('pool.test')).toEqual(['10.0.1.1', '10.0.1.2']);
    dns.mode = 'answer';
    await resolver.refresh();
    expect(resolver.snapshot().get('pool.test')).toMatchObject({ status: 'ok', lastError: null, consecutiveFailures: 0 });
  });

  it('a host that never resolved says why and contributes no backend', async () => {
    const { resolver } = await setup({});
    resolver.setHosts(dnsHosts(CFG));
    await resolver.refresh();
    expect(resolver.snapshot().get('pool.test')).toMatchObject({ status: 'never-resolved', addresses: [], lastError: 'ENOTFOUND' });
    const { state, diagnostics } = compileConfig(CFG, buildRuntimeInputs({ config: CFG, dns: resolver.answers() }));
    expect(state.listeners[0]!.defaultTargets).toEqual([{ addr: '10.0.0.1', port: 8080, weight: 100 }]);
    expect(diagnostics.map((d) => d.code)).toEqual(['dns-unresolved']);
  });

  it('refreshes on its own at dns-refresh-seconds (with jitter)', async () => {
    const { dns, resolver } = await setup({ 'pool.test': ['10.0.1.1'] });
    resolver.setHosts(dnsHosts(CFG));
    const changed = new Promise<DnsChangeEvent>((resolve) => {
      resolver.on('change', (e) => { if (e.state.addresses.includes('10.0.3.3')) resolve(e); });
    });
    resolver.start(); // first resolution at once
    await new Promise((r) => setTimeout(r, 200));
    expect(resolver.resolve('pool.test')).toEqual(['10.0.1.1']);
    dns.records.set('pool.test', ['10.0.3.3']);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('no refresh within 2 s')), 2000); });
    await Promise.race([changed, timeout]).finally(() => clearTimeout(timer));
    expect(dns.queries.length).toBeGreaterThanOrEqual(2);
  });
});
