import { describe, expect, it } from 'vitest';
import { compileSpliceTable } from '../../../src/core/sni/splice-table.js';
import { compileConfig, TCP_FIN_TIMEOUT_SEC, type RuntimeInputs } from '../../../src/core/compile/compile.js';
import { checkConfig } from '../../../src/core/config/index.js';
import type { LbConfig, Target } from '../../../src/core/config/types.js';
import { LB_MAX_TARGETS } from '../../../src/core/abi.js';
import { listenerKey } from '../../../src/core/state.js';

function config(text: string): LbConfig {
  const result = checkConfig([{ file: 'lb.yaml', text }]);
  if (!result.ok) throw new Error(result.diagnostics.map((d) => d.message).join('\n'));
  return result.config;
}

const codes = (r: ReturnType<typeof compileConfig>): string[] => r.diagnostics.map((d) => `${d.severity}:${d.code}`);

describe('compileConfig', () => {
  it('makes one listener per interface x protocol, sorted, with the union of interfaces', () => {
    const { state, diagnostics } = compileConfig(config(`
proxies:
  - name: dns
    listen: {interfaces: [eth1, eth0], port: 53, protocol: both}
    default-target: {ip: 10.0.5.1, port: 53}
  - name: web
    listen: {interfaces: [eth2], port: 80, address: 192.0.2.10}
    default-target: {ip: 10.0.0.1, port: 8080}
`));
    expect(diagnostics).toEqual([]);
    expect(state.interfaces).toEqual(['eth0', 'eth1', 'eth2']);
    expect(state.listeners.map(listenerKey)).toEqual([
      'eth0|0.0.0.0|53|tcp', 'eth0|0.0.0.0|53|udp', 'eth1|0.0.0.0|53|tcp', 'eth1|0.0.0.0|53|udp', 'eth2|192.0.2.10|80|tcp',
    ]);
    expect(state.listeners.map((l) => l.proxy)).toEqual(['dns', 'dns', 'dns', 'dns', 'web']);
  });

  it('maps settings to the data plane timeouts', () => {
    const { state } = compileConfig(config(`
proxies: [{name: a, listen: {interfaces: [eth0], port: 80}, default-target: {ip: 10.0.0.1, port: 80}}]
settings: {connection-timeout-sec: 900, udp-timeout-sec: 15}
`));
    expect(state.settings).toEqual({ tcpIdleSec: 900, udpIdleSec: 15, tcpFinSec: TCP_FIN_TIMEOUT_SEC });
  });

  it('keeps targets in config order and sorts source routes by prefix', () => {
    const { state } = compileConfig(config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: [{ip: 10.0.0.9, port: 80, weight: 1}, {ip: 10.0.0.1, port: 80, weight: 2}]
    source-routes:
      - {source: 192.168.0.0/16, target: {ip: 10.0.1.1, port: 80}}
      - {source: 10.0.0.0/8, targets: [{ip: 10.0.2.2, port: 80}, {ip: 10.0.2.1, port: 81}]}
`));
    const l = state.listeners[0]!;
    expect(l.defaultTargets).toEqual([{ addr: '10.0.0.9', port: 80, weight: 1 }, { addr: '10.0.0.1', port: 80, weight: 2 }]);
    expect(l.sourceRoutes.map((r) => r.prefix)).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(l.sourceRoutes[0]!.targets.map((t) => `${t.addr}:${t.port}`)).toEqual(['10.0.2.2:80', '10.0.2.1:81']);
  });

  it('applies effective weights from the runtime to every group, and ignores invalid ones with a warning', () => {
    const calls: string[] = [];
    const inputs: RuntimeInputs = {
      effectiveWeight(proxy, group, target: Target) {
        calls.push(`${proxy} ${group} ${target.id}`);
        if (target.id === '10.0.0.1:80') return 0; // drained
        if (target.id === '10.0.1.1:80') return 5000; // a runtime bug
        return undefined;
      },
    };
    const { state, diagnostics } = compileConfig(config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: [{ip: 10.0.0.1, port: 80, weight: 40}, {ip: 10.0.0.2, port: 80, weight: 60}]
    source-routes:
      - {source: 10.0.0.0/8, targets: [{ip: 10.0.0.1, port: 80, weight: 3}, {ip: 10.0.1.1, port: 80, weight: 7}]}
`), inputs);
    expect(calls).toEqual(['web default 10.0.0.1:80', 'web default 10.0.0.2:80', 'web 10.0.0.0/8 10.0.0.1:80', 'web 10.0.0.0/8 10.0.1.1:80']);
    const l = state.listeners[0]!;
    expect(l.defaultTargets.map((t) => t.weight)).toEqual([0, 60]);
    expect(l.sourceRoutes[0]!.targets.map((t) => t.weight)).toEqual([0, 7]);
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]).toMatchObject({ severity: 'warning', stage: 'compile', code: 'invalid-effective-weight', file: 'lb.yaml', line: 7 });
  });

  it("takes the listener's persistence from the proxy and warns about a route that differs", () => {
    const { state, diagnostics } = compileConfig(config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    session-persistence: true
    default-target: {ip: 10.0.0.1, port: 80}
    source-routes:
      - {source: 10.0.0.0/8, target: {ip: 10.0.0.2, port: 80}, session-persistence: false}
      - {source: 10.1.0.0/16, target: {ip: 10.0.0.3, port: 80}, session-persistence: true}
`));
    expect(state.listeners[0]!.persist).toBe(true);
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]).toMatchObject({ code: 'route-persistence-ignored', pointer: '/proxies/0/source-routes/0', line: 8, column: 9 });
  });

  it('leaves TCP listeners of splice proxies to the acceptor, with their groups in the splice table', () => {
    const cfg = config(`
proxies:
  - name: tls
    listen: {interfaces: [eth0], port: 443}
    default-target: {ip: 10.0.0.1, port: 8443}
    source-routes:
      - {source: 10.0.0.0/8, target: {ip: 10.0.0.2, port: 8443}}
    sni-routes:
      - {sni-hostname: api.example.com, target: {ip: 10.0.0.3, port: 8443}}
  - name: pp
    listen: {interfaces: [eth0], port: 25}
    proxy-protocol: v2
    default-target: [{ip: 10.0.1.1, port: 25}, {ip: 10.0.1.2, port: 25}]
`);
    const { state, diagnostics } = compileConfig(cfg);
    // No fast-path listener and no warning; the interface is still attached.
    expect(state.listeners).toEqual([]);
    expect(state.interfaces).toEqual(['eth0']);
    expect(diagnostics).toEqual([]);
    const table = compileSpliceTable(cfg).listeners;
    expect(table.map((l) => [l.proxy, l.iface, l.vip, l.port])).toEqual([['tls', 'eth0', null, 443], ['pp', 'eth0', null, 25]]);
    expect(table[0]!.sniRoutes[0]).toMatchObject({ hostname: 'api.example.com', backends: [{ addr: '10.0.0.3', port: 8443, weight: 100, proxyProtocol: false }] });
    expect(table[0]!.sourceRoutes[0]).toMatchObject({ prefix: '10.0.0.0/8', prefixLength: 8, network: 0x0a000000 });
    expect(table[1]!.defaultBackends.map((b) => [b.addr, b.proxyProtocol])).toEqual([['10.0.1.1', true], ['10.0.1.2', true]]);
  });

  describe('DNS targets', () => {
    const text = `
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 50}
      - {host: API.internal, port: 8080, weight: 100}
`;

    it('contribute no backend and a warning while unresolved', () => {
      for (const inputs of [{}, { resolve: () => undefined }, { resolve: () => [] }] as RuntimeInputs[]) {
        const r = compileConfig(config(text), inputs);
        expect(r.state.listeners[0]!.defaultTargets).toEqual([{ addr: '10.0.0.1', port: 8080, weight: 50 }]);
        expect(codes(r)).toEqual(['warning:dns-unresolved']);
        expect(r.diagnostics[0]).toMatchObject({ pointer: '/proxies/0/default-target/1', line: 7 });
      }
    });

    it('expand to one backend per address sharing the weight, remainder to the lowest addresses', () => {
      const asked: string[] = [];
      const r = compileConfig(config(text), { resolve: (host) => (asked.push(host), ['10.0.7.9', '10.0.7.10', '10.0.7.2', '10.0.7.9']) });
      expect(asked).toEqual(['api.internal']);
      expect(r.diagnostics).toEqual([]);
      expect(r.state.listeners[0]!.defaultTargets).toEqual([
        { addr: '10.0.0.1', port: 8080, weight: 50 },
        { addr: '10.0.7.2', port: 8080, weight: 34 },
        { addr: '10.0.7.9', port: 8080, weight: 33 },
        { addr: '10.0.7.10', port: 8080, weight: 33 },
      ]);
    });

    it('skip answers that are not IPv4 addresses, and merge an address that is already a backend', () => {
      const r = compileConfig(config(text), { resolve: () => ['::1', '10.0.0.1', '10.0.7.1'] });
      expect(codes(r)).toEqual(['warning:dns-invalid-answer', 'warning:duplicate-backend']);
      expect(r.state.listeners[0]!.defaultTargets).toEqual([
        { addr: '10.0.0.1', port: 8080, weight: 100 },
        { addr: '10.0.7.1', port: 8080, weight: 50 },
      ]);
    });

    it(`enforce LB_MAX_TARGETS (${LB_MAX_TARGETS}) per group after expansion`, () => {
      const many = Array.from({ length: LB_MAX_TARGETS }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
      const r = compileConfig(config(text), { resolve: () => many });
      expect(codes(r)).toEqual(['error:group-too-large']);
      expect(r.diagnostics[0]).toMatchObject({ pointer: '/proxies/0/default-target', line: 6 });
      expect(r.diagnostics[0]!.message).toContain(`${LB_MAX_TARGETS + 1} backends`);
    });
  });

  it('is pure: the same input gives the same output, and the config is not changed', () => {
    const text = `
proxies:
  - name: web
    listen: {interfaces: [eth1, eth0], port: 80, protocol: both}
    default-target: [{ip: 10.0.0.1, port: 80}, {host: a.internal, port: 80}]
    source-routes: [{source: 10.0.0.0/8, target: {ip: 10.0.0.2, port: 80}}]
`;
    const cfg = config(text);
    const snapshot = JSON.stringify(cfg);
    const inputs: RuntimeInputs = { resolve: () => ['10.9.9.9'] };
    const a = compileConfig(cfg, inputs);
    const b = compileConfig(cfg, inputs);
    expect(a).toEqual(b);
    expect(JSON.stringify(cfg)).toBe(snapshot);
    // Listeners of one proxy share no arrays: a later change to one cannot leak into another.
    a.state.listeners[0]!.defaultTargets[0]!.weight = 1;
    expect(a.state.listeners[1]!.defaultTargets[0]!.weight).toBe(100);
  });
});

describe('settings nothing enforces yet', () => {
  it('warn, naming the settings key, instead of being dropped silently', () => {
    const r = compileConfig(config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: {ip: 10.0.0.1, port: 8080}
settings:
  stats-enabled: true
  rate-limits: {per-source: {requests-per-sec: 100, burst: 200}}
  access-log: {enabled: true, format: json, path: logs/access.log}
  metrics: {enabled: true, port: 9090, path: /metrics}
`));
    expect(r.diagnostics.map((d) => [d.severity, d.code, d.file, d.pointer])).toEqual([
    ]);
  });

  it('rate limits are enforced: no warning, and they reach the generation', () => {
    const r = compileConfig(config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: {ip: 10.0.0.1, port: 8080}
settings:
  rate-limits: {per-source: {requests-per-sec: 100, burst: 200}, per-backend: {requests-per-sec: 5000}}
`));
    expect(r.diagnostics).toEqual([]);
    expect(r.state!.settings.perSource).toEqual({ rate: 100, burst: 200 });
    expect(r.state!.settings.perBackend).toEqual({ rate: 5000, burst: 5000 });
  });

  it('stay quiet when those settings are off', () => {
    const r = compileConfig(config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: {ip: 10.0.0.1, port: 8080}
`));
    expect(r.diagnostics).toEqual([]);
  });
});
