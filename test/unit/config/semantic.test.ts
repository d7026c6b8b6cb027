// Semantic rules beyond the error-position table: what is allowed, and behaviour at scale.
import { describe, expect, it } from 'vitest';
import { LB_MAX_TARGETS } from '../../../src/core/abi.js';
import { accepted, checkText, rejection } from './helpers.js';

function proxy(name: string, listen: string, extra = ''): string {
  return `  - name: ${name}\n    listen: ${listen}\n    default-target: {ip: 10.0.0.1, port: 8080}\n${extra}`;
}

describe('listeners', () => {
  it('allows one port on one interface for tcp and udp separately, and on distinct addresses', () => {
    accepted(
      checkText(
        'lb.yaml',
        `proxies:\n${proxy('t', '{interfaces: [eth0], port: 53}')}${proxy('u', '{interfaces: [eth0], port: 53, protocol: udp}')}` +
          `${proxy('a', '{interfaces: [eth0], port: 80, address: 192.0.2.1}')}${proxy('b', '{interfaces: [eth0], port: 80, address: 192.0.2.2}')}` +
          `${proxy('c', '{interfaces: [eth1], port: 80}')}`,
      ),
    );
  });

  it('"both" conflicts with tcp and with udp, reported once per interface', () => {
    expect(
      rejection(checkText('lb.yaml', `proxies:\n${proxy('u', '{interfaces: [eth0], port: 53, protocol: udp}')}${proxy('b', '{interfaces: [eth0], port: 53, protocol: both}')}`)),
    ).toEqual(['lb.yaml:6:27: /proxies/1/listen/interfaces/0: listener eth0:53/udp conflicts with proxy "u" (line 3): both accept every address; give each its own address (VIP) or port']);
  });

  it('scales: thousands of VIPs on one port are checked, the one repeat is found', () => {
    const n = 1500;
    const entries = Array.from({ length: n }, (_, i) => proxy(`p${i}`, `{interfaces: [eth0], port: 443, address: 10.${i >> 16}.${(i >> 8) & 255}.${i & 255}}`));
    entries.push(proxy('again', '{interfaces: [eth0], port: 443, address: 10.0.0.7}'));
    const lines = rejection(checkText('lb.yaml', `proxies:\n${entries.join('')}`));
    expect(lines).toEqual([`lb.yaml:${3 + 3 * n}:27: /proxies/${n}/listen/interfaces/0: listener eth0:443/tcp conflicts with proxy "p7" (line 24): both use address 10.0.0.7`]);
  });
});

describe('targets', () => {
  it(`accepts exactly ${LB_MAX_TARGETS} targets in a group`, () => {
    const list = Array.from({ length: LB_MAX_TARGETS }, (_, i) => `{ip: 10.1.0.${i + 1}, port: 80}`).join(', ');
    const config = accepted(checkText('lb.yaml', `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: [${list}]\n`));
    expect(config.proxies[0]!.defaultTarget.totalWeight).toBe(100 * LB_MAX_TARGETS);
  });

  it('allows the same backend in different groups and the same prefix in different proxies', () => {
    accepted(
      checkText(
        'lb.yaml',
        `proxies:\n${proxy('a', '{interfaces: [eth0], port: 80}', '    source-routes: [{source: 10.0.0.0/8, target: {ip: 10.0.0.1, port: 8080}}]\n')}` +
          `${proxy('b', '{interfaces: [eth0], port: 81}', '    source-routes: [{source: 10.0.0.0/8, target: {ip: 10.0.0.1, port: 8080}}]\n')}`,
      ),
    );
  });

  it('rejects non-unicast backends and names that are not DNS names', () => {
    expect(
      rejection(
        checkText('lb.yaml', `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: [{ip: 224.0.0.1, port: 1}, {host: db.123, port: 1}]\n`),
      ),
    ).toEqual([
      'lb.yaml:4:27: /proxies/0/default-target/0/ip: a backend needs a unicast IPv4 address: 224.0.0.1 is a multicast address',
      'lb.yaml:4:55: /proxies/0/default-target/1/host: "db.123" is not a DNS name: its last label is all digits',
    ]);
  });
});

describe('health checks', () => {
  it('allows http-only keys in health-check-defaults next to type tcp (they serve inheriting http checks)', () => {
    accepted(checkText('lb.yaml', `proxies:\n${proxy('a', '{interfaces: [eth0], port: 80}')}settings:\n  health-check-defaults: {type: tcp, expected-codes: [200]}\n`));
  });

  it('reports a shared bad timing once, at the level that sets it', () => {
    const lines = rejection(
      checkText(
        'lb.yaml',
        `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target:\n      - {ip: 10.0.0.1, port: 1, health-check: {path: /a}}\n      - {ip: 10.0.0.2, port: 1, health-check: {path: /b}}\nsettings:\n  health-check-defaults: {type: http, interval-ms: 1000, timeout-ms: 2000}\n`,
      ),
    );
    expect(lines).toEqual([
      'lb.yaml:8:70: /settings/health-check-defaults/timeout-ms: timeout-ms (2000) exceeds interval-ms (1000): a check must end before the next one starts',
    ]);
  });

  it('rejects keys next to type none', () => {
    expect(rejection(checkText('lb.yaml', `proxies:\n${proxy('a', '{interfaces: [eth0], port: 80}')}    health-check: {type: none, interval-ms: 5000}\n`))).toEqual([
      'lb.yaml:5:32: /proxies/0/health-check/interval-ms: type none turns the check off, so interval-ms has no effect; remove it',
    ]);
  });
});
