// Every kind of config error names file:line:column, the JSON pointer, and what was expected.
// Each case is a small config with one mistake and the exact diagnostic lb prints for it.
import { describe, expect, it } from 'vitest';
import { checkConfig, formatDiagnostics } from '../../../src/core/config/index.js';

/** A valid proxy list entry to build cases around (lines 2-4 of a file that starts `proxies:`). */
const WEB = `  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: {ip: 10.0.0.1, port: 8080}
`;

interface Case {
  kind: string;
  files: Record<string, string>;
  expected: string[];
}

const targets65 = Array.from({ length: 65 }, (_, i) => `      - {ip: 10.1.${i >> 8}.${i & 255}, port: 80}`).join('\n');

const CASES: Case[] = [
  {
    kind: 'unknown key, with a suggestion',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: {ip: 10.0.0.1, port: 8080, wieght: 5}\n` },
    expected: [
      'lb.yaml:4:48: /proxies/0/default-target/wieght: unknown key "wieght" (did you mean "weight"?); expected one of the keys ip, host, port, weight, dns-refresh-seconds, health-check, proxy-protocol',
    ],
  },
  {
    kind: 'wrong type',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: eighty}\n    default-target: {ip: 10.0.0.1, port: 8080}\n` },
    expected: ['lb.yaml:3:40: /proxies/0/listen/port: expected an integer 1..65535, got "eighty"'],
  },
  {
    kind: 'port out of range',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: {ip: 10.0.0.1, port: 70000}\n` },
    expected: ['lb.yaml:4:42: /proxies/0/default-target/port: expected an integer 1..65535, got 70000'],
  },
  {
    kind: 'weight out of range',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target:\n      - {ip: 10.0.0.1, port: 8080, weight: 1001}\n` },
    expected: ['lb.yaml:5:44: /proxies/0/default-target/0/weight: expected an integer 0..1000, got 1001'],
  },
  {
    kind: 'bad IPv4 address',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: {ip: 10.0.0.256, port: 8080}\n` },
    expected: ['lb.yaml:4:26: /proxies/0/default-target/ip: expected an IPv4 address like 10.0.0.1, got "10.0.0.256"'],
  },
  {
    kind: 'IPv6 address',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80, address: "2001:db8::1"}\n    default-target: {ip: 10.0.0.1, port: 8080}\n` },
    expected: [
      'lb.yaml:3:53: /proxies/0/listen/address: expected an IPv4 address like 10.0.0.1, got "2001:db8::1" (IPv6 is not supported: the data plane is IPv4-only)',
    ],
  },
  {
    kind: 'bad CIDR',
    files: { 'lb.yaml': `proxies:\n${WEB}    source-routes:\n      - {source: 10.0.0.0/33, target: {ip: 10.0.0.2, port: 8080}}\n` },
    expected: ['lb.yaml:6:18: /proxies/0/source-routes/0/source: expected an IPv4 address or CIDR prefix like 192.168.1.0/24, got "10.0.0.0/33"'],
  },
  {
    kind: 'host bits set in a prefix',
    files: { 'lb.yaml': `proxies:\n${WEB}    source-routes:\n      - {source: 10.0.0.5/24, target: {ip: 10.0.0.2, port: 8080}}\n` },
    expected: ['lb.yaml:6:18: /proxies/0/source-routes/0/source: host bits set in 10.0.0.5/24; did you mean 10.0.0.0/24?'],
  },
  {
    kind: 'duplicate source prefix (a plain address is its /32)',
    files: {
      'lb.yaml': `proxies:\n${WEB}    source-routes:\n      - {source: 192.168.2.100, target: {ip: 10.0.0.2, port: 8080}}\n      - {source: 192.168.2.100/32, target: {ip: 10.0.0.3, port: 8080}}\n`,
    },
    expected: ['lb.yaml:7:18: /proxies/0/source-routes/1/source: duplicate source prefix 192.168.2.100/32 in this proxy (first at line 6)'],
  },
  {
    kind: 'duplicate source prefix in a proxy of the second file of a directory',
    files: {
      'a.yaml': `proxies:\n${WEB}    source-routes:\n      - {source: 10.10.0.0/16, target: {ip: 10.0.0.2, port: 8080}}\n`,
      'b.yaml': `proxies:\n  - name: api\n    listen: {interfaces: [eth0], port: 8080}\n    default-target: {ip: 10.0.1.1, port: 3000}\n    source-routes:\n      - {source: 10.10.0.0/16, target: {ip: 10.0.1.2, port: 3000}}\n      - {source: 10.10.0.0/16, target: {ip: 10.0.1.3, port: 3000}}\n`,
    },
    expected: ['b.yaml:7:18: /proxies/0/source-routes/1/source: duplicate source prefix 10.10.0.0/16 in this proxy (first at line 6)'],
  },
  {
    kind: 'duplicate proxy names across files',
    files: { 'a.yaml': `proxies:\n${WEB}`, 'b.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth1], port: 80}\n    default-target: {ip: 10.0.0.2, port: 8080}\n` },
    expected: ['b.yaml:2:11: /proxies/0/name: duplicate proxy name "web": already defined at a.yaml:2:11'],
  },
  {
    kind: 'listener conflict (same address)',
    files: {
      'lb.yaml': `proxies:\n  - name: a\n    listen: {interfaces: [eth0], port: 80, address: 192.0.2.1}\n    default-target: {ip: 10.0.0.1, port: 8080}\n  - name: b\n    listen: {interfaces: [eth1, eth0], port: 80, address: 192.0.2.1, protocol: both}\n    default-target: {ip: 10.0.0.2, port: 8080}\n`,
    },
    expected: ['lb.yaml:6:33: /proxies/1/listen/interfaces/1: listener eth0:80/tcp conflicts with proxy "a" (line 3): both use address 192.0.2.1'],
  },
  {
    kind: 'listener conflict (a listener without address takes every address)',
    files: {
      'lb.yaml': `proxies:\n  - name: a\n    listen: {interfaces: [eth0], port: 80, address: 192.0.2.1}\n    default-target: {ip: 10.0.0.1, port: 8080}\n  - name: b\n    listen: {interfaces: [eth0], port: 80}\n    default-target: {ip: 10.0.0.2, port: 8080}\n`,
    },
    expected: [
      'lb.yaml:6:27: /proxies/1/listen/interfaces/0: listener eth0:80/tcp conflicts with proxy "a" (line 3): this listener has no address, which takes every address on the interface; give both an address (VIP)',
    ],
  },
  {
    kind: 'too many targets in a group',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target:\n${targets65}\n` },
    expected: ['lb.yaml:5:7: /proxies/0/default-target: this group has 65 targets; the data plane holds at most 64 per group (LB_MAX_TARGETS)'],
  },
  {
    kind: 'ip and host both',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: {ip: 10.0.0.1, host: web.internal, port: 8080}\n` },
    expected: ['lb.yaml:4:36: /proxies/0/default-target/host: a target has ip or host, not both'],
  },
  {
    kind: 'neither ip nor host',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: {port: 8080}\n` },
    expected: ['lb.yaml:4:21: /proxies/0/default-target: a target needs ip (an IPv4 address) or host (a DNS name)'],
  },
  {
    kind: 'dns-refresh-seconds on an ip target',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: {ip: 10.0.0.1, port: 8080, dns-refresh-seconds: 30}\n` },
    expected: [
      'lb.yaml:4:48: /proxies/0/default-target/dns-refresh-seconds: dns-refresh-seconds applies only to host targets (an ip target is never re-resolved)',
    ],
  },
  {
    kind: 'host written as an address',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: {host: 10.0.0.1, port: 8080}\n` },
    expected: ['lb.yaml:4:28: /proxies/0/default-target/host: "10.0.0.1" is an IPv4 address: write it as ip, not host'],
  },
  {
    kind: 'empty interfaces',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [], port: 80}\n    default-target: {ip: 10.0.0.1, port: 8080}\n` },
    expected: ['lb.yaml:3:26: /proxies/0/listen/interfaces: expected a list of one or more distinct interface names, got an empty list'],
  },
  {
    kind: 'missing required key',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    default-target: {ip: 10.0.0.1, port: 8080}\n` },
    expected: ['lb.yaml:2:5: /proxies/0: missing key "listen": expected a listen map with interfaces and port'],
  },
  {
    kind: 'enum value, with a suggestion',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80, protocol: tpc}\n    default-target: {ip: 10.0.0.1, port: 8080}\n` },
    expected: ['lb.yaml:3:54: /proxies/0/listen/protocol: expected one of tcp, udp, both, got "tpc" (did you mean "tcp"?)'],
  },
  {
    kind: 'weights on some targets of a group only',
    files: {
      'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target:\n      - {ip: 10.0.0.1, port: 8080, weight: 50}\n      - {ip: 10.0.0.2, port: 8080}\n`,
    },
    expected: [
      'lb.yaml:6:9: /proxies/0/default-target/1: weight missing: other targets of this group set one (line 5); set weight on every target of the group, or on none for equal weights',
    ],
  },
  {
    kind: 'duplicate target in a group',
    files: {
      'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target:\n      - {ip: 10.0.0.1, port: 8080}\n      - {ip: 10.0.0.1, port: 8080}\n`,
    },
    expected: ['lb.yaml:6:9: /proxies/0/default-target/1: duplicate target 10.0.0.1:8080 in this group (first at line 5)'],
  },
  {
    kind: 'route with both target and targets',
    files: { 'lb.yaml': `proxies:\n${WEB}    source-routes:\n      - {source: 10.0.0.0/8, target: {ip: 10.0.0.2, port: 1}, targets: [{ip: 10.0.0.3, port: 1}]}\n` },
    expected: ['lb.yaml:6:9: /proxies/0/source-routes/0: a route needs target or targets, exactly one of them'],
  },
  {
    kind: 'duplicate SNI hostname (case-insensitive)',
    files: {
      'lb.yaml': `proxies:\n${WEB}    sni-routes:\n      - {sni-hostname: api.example.com, target: {ip: 10.0.0.2, port: 1}}\n      - {sni-hostname: API.example.com, target: {ip: 10.0.0.3, port: 1}}\n`,
    },
    expected: [
      'lb.yaml:7:24: /proxies/0/sni-routes/1/sni-hostname: duplicate sni-hostname api.example.com in this proxy (first at line 6); names match case-insensitively',
    ],
  },
  {
    kind: 'bad SNI hostname',
    files: { 'lb.yaml': `proxies:\n${WEB}    sni-routes:\n      - {sni-hostname: "api.*.com", target: {ip: 10.0.0.2, port: 1}}\n` },
    expected: ['lb.yaml:6:24: /proxies/0/sni-routes/0/sni-hostname: expected a TLS server name like api.example.com or *.example.com, got "api.*.com"'],
  },
  {
    kind: 'SNI routes on a UDP listener',
    files: {
      'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 443, protocol: udp}\n    default-target: {ip: 10.0.0.1, port: 8443}\n    sni-routes:\n      - {sni-hostname: a.example.com, target: {ip: 10.0.0.2, port: 1}}\n`,
    },
    expected: ['lb.yaml:3:55: /proxies/0/listen/protocol: sni-routes route TLS connections, so they need protocol tcp (this proxy has udp)'],
  },
  {
    kind: 'HTTP-only key on a tcp health check',
    files: { 'lb.yaml': `proxies:\n${WEB}    health-check: {type: tcp, path: /health}\n` },
    expected: ["lb.yaml:5:31: /proxies/0/health-check/path: path applies to http and https checks only, and this check's type is tcp"],
  },
  {
    kind: 'health check timeout longer than its interval',
    files: { 'lb.yaml': `proxies:\n${WEB}    health-check: {type: http, interval-ms: 2000, timeout-ms: 5000}\n` },
    expected: ['lb.yaml:5:63: /proxies/0/health-check/timeout-ms: timeout-ms (5000) exceeds interval-ms (2000): a check must end before the next one starts'],
  },
  {
    kind: 'settings key set in two files',
    files: { 'a.yaml': `proxies:\n${WEB}settings:\n  connection-timeout-sec: 300\n`, 'b.edn': `{:settings\n {:connection-timeout-sec 600}}\n` },
    expected: [
      'b.edn:2:3: /settings/connection-timeout-sec: settings key connection-timeout-sec is also set in a.yaml:6:3; each settings key may be set in one file only',
    ],
  },
  {
    kind: 'key of the original that lb rejects on purpose',
    files: { 'lb.yaml': `proxies:\n${WEB}settings:\n  cluster: {enabled: true}\n` },
    expected: [
      'lb.yaml:6:3: /settings/cluster: cluster is not supported: every lb node follows the Git branch on its own and reports to the status branch; there is no gossip between nodes',
    ],
  },
  {
    kind: 'a setting written in a proxy',
    files: { 'lb.yaml': `proxies:\n${WEB}    circuit-breaker: {enabled: true}\n` },
    expected: ['lb.yaml:5:5: /proxies/0/circuit-breaker: circuit-breaker is a global setting: move it under settings'],
  },
  {
    kind: 'max-sni-routes exceeded',
    files: {
      'lb.yaml': `proxies:\n${WEB}    sni-routes:\n      - {sni-hostname: a.example.com, target: {ip: 10.0.0.2, port: 1}}\n      - {sni-hostname: b.example.com, target: {ip: 10.0.0.3, port: 1}}\nsettings:\n  max-sni-routes: 1\n`,
    },
    expected: ['lb.yaml:9:19: /settings/max-sni-routes: the config has 2 SNI routes, more than max-sni-routes (1)'],
  },
  {
    kind: 'listen address that is not unicast',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80, address: 0.0.0.0}\n    default-target: {ip: 10.0.0.1, port: 8080}\n` },
    expected: [
      'lb.yaml:3:53: /proxies/0/listen/address: listen address must be a unicast IPv4 address: 0.0.0.0 is the unspecified address; omit address to accept every address on the interfaces',
    ],
  },
  {
    kind: 'no proxies at all',
    files: { 'lb.yaml': `settings:\n  stats-enabled: true\n` },
    expected: ['lb.yaml:1:1: /proxies: the config defines no proxies; at least one is required (`lb down` removes everything)'],
  },
  {
    kind: 'not a map at the top',
    files: { 'lb.yaml': `- name: web\n` },
    expected: ['lb.yaml:1:1: expected a config: a map with proxies and settings, got a list of 1'],
  },
  {
    kind: 'YAML syntax error',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80\n    default-target: {ip: 10.0.0.1, port: 8080}\n` },
    expected: ['lb.yaml:4:5: Flow map in block collection must be sufficiently indented and end with a }'],
  },
  {
    kind: 'YAML duplicate key',
    files: { 'lb.yaml': `proxies:\n  - name: web\n    name: api\n` },
    expected: ['lb.yaml:3:5: Map keys must be unique'],
  },
  {
    kind: 'EDN syntax error (unbalanced)',
    files: { 'lb.edn': `{:proxies [{:name "web"\n            :listen {:interfaces ["eth0"] :port 80}\n            :default-target {:ip "10.0.0.1" :port 8080}]}\n` },
    expected: ["lb.edn:3:56: expected '}' to close the map opened at 1:12, found ']'"],
  },
  {
    kind: 'EDN tagged literal',
    files: { 'lb.edn': `{:proxies []\n :settings {:stats-enabled #bool "yes"}}\n` },
    expected: [
      'lb.edn:2:28: tagged literal #bool is not supported; a config holds plain data (maps, vectors, strings, numbers, keywords, booleans, nil)',
    ],
  },
  {
    kind: 'EDN value of the wrong type (keyword for a number)',
    files: { 'lb.edn': `{:proxies [{:name "web"\n            :listen {:interfaces ["eth0"] :port :http}\n            :default-target {:ip "10.0.0.1" :port 8080}}]}\n` },
    expected: ['lb.edn:2:49: /proxies/0/listen/port: expected an integer 1..65535, got "http"'],
  },
];

describe('error positions', () => {
  it('covers at least 15 distinct kinds', () => {
    expect(new Set(CASES.map((c) => c.kind)).size).toBeGreaterThanOrEqual(15);
  });

  for (const c of CASES) {
    it(c.kind, () => {
      const result = checkConfig(Object.entries(c.files).map(([file, text]) => ({ file, text })));
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(formatDiagnostics(result.diagnostics).split('\n')).toEqual(c.expected);
      for (const d of result.diagnostics) {
        expect(d.line).toBeGreaterThanOrEqual(1);
        expect(d.column).toBeGreaterThanOrEqual(1);
      }
    });
  }
});

describe('several errors at once', () => {
  it('reports every problem of every file, in file and line order', () => {
    const result = checkConfig([
      { file: 'a.yaml', text: 'proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 0}\n    default-target: {ip: 10.0.0.1, port: 8080, weight: -1}\n' },
      { file: 'b.edn', text: '{:proxies [}' },
    ]);
    expect(!result.ok && result.stage).toBe('parse');
    expect(!result.ok && formatDiagnostics(result.diagnostics).split('\n')).toEqual([
      'a.yaml:3:40: /proxies/0/listen/port: expected an integer 1..65535, got 0',
      'a.yaml:4:56: /proxies/0/default-target/weight: expected an integer 0..1000, got -1',
      "b.edn:1:12: expected ']' to close the vector opened at 1:11, found '}'",
    ]);
  });

  it('says what was expected in a field of its own', () => {
    const result = checkConfig([{ file: 'lb.yaml', text: 'proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: x}\n    default-target: {ip: 10.0.0.1, port: 1}\n' }]);
    expect(!result.ok && result.diagnostics[0]).toMatchObject({
      severity: 'error',
      stage: 'schema',
      file: 'lb.yaml',
      pointer: '/proxies/0/listen/port',
      line: 3,
      column: 40,
      expected: 'an integer 1..65535',
    });
  });

  it('warns (and accepts) when every target of a group has weight 0', () => {
    const result = checkConfig([
      { file: 'lb.yaml', text: `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: [{ip: 10.0.0.1, port: 1, weight: 0}]\n` },
    ]);
    expect(result.ok && formatDiagnostics(result.warnings)).toBe(
      'lb.yaml:4:21: warning: /proxies/0/default-target: every target of this group has weight 0: the group takes no new flows (established flows continue)',
    );
  });
});
