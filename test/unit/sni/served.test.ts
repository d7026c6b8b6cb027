import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../../src/core/config/diagnostics.js';
import { DAEMON_ONLY_CODE, daemonOnlyWarnings } from '../../../src/core/sni/served.js';
import { config } from '../runtime/helpers.js';

const YAML = `
proxies:
  - name: fast
    listen: {interfaces: [eth0], port: 80}
    default-target: {ip: 10.0.0.1, port: 8080}
  - name: tls
    listen: {interfaces: [eth0], port: 443, address: 10.9.0.1}
    default-target: {ip: 10.0.0.1, port: 8443}
    sni-routes:
      - {sni-hostname: api.example.com, target: {ip: 10.0.0.2, port: 8443}}
  - name: pp
    listen: {interfaces: [eth0], port: 8443, address: 10.9.0.1}
    default-target: {ip: 10.0.0.3, port: 8443, proxy-protocol: v2}
  - name: both
    listen: {interfaces: [eth0], port: 9443, address: 10.9.0.1}
    proxy-protocol: v2
    default-target: {ip: 10.0.0.3, port: 8443}
    sni-routes:
      - {sni-hostname: '*.example.com', target: {ip: 10.0.0.2, port: 8443}}
`;

describe('daemonOnlyWarnings (lb plan / lb apply by hand)', () => {
  it('warns once per proxy the acceptor serves, at the proxy, saying why; fast-path proxies get none', () => {
    const ws = daemonOnlyWarnings(config(YAML));
    expect(ws.map((w) => [w.code, w.severity, w.pointer, w.line])).toEqual([
      [DAEMON_ONLY_CODE, 'warning', '/proxies/1', 6],
      [DAEMON_ONLY_CODE, 'warning', '/proxies/2', 11],
      [DAEMON_ONLY_CODE, 'warning', '/proxies/3', 14],
    ]);
    expect(formatDiagnostic(ws[0]!)).toMatch(/^lb\.yaml:6:\d+: warning: \/proxies\/1: proxy "tls" has SNI routes: only lb daemon serves it/);
    expect(ws[1]!.message).toMatch(/^proxy "pp" has a PROXY protocol v2 target: /);
    expect(ws[2]!.message).toMatch(/^proxy "both" has SNI routes and a PROXY protocol v2 target: .*connections are refused unless lb daemon runs/);
  });

  it('says nothing for a config without splice proxies', () => {
    expect(daemonOnlyWarnings(config(YAML.split('  - name: tls')[0]!))).toEqual([]);
  });
});
