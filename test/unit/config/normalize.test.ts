// The normalized model the compile step consumes: defaults applied, groups always lists, names
// canonical, health checks merged, every part pointing back at its source.
import { describe, expect, it } from 'vitest';
import { DEFAULT_WEIGHT } from '../../../src/core/config/defaults.js';
import { FIXTURES, accepted, checkFile, checkText } from './helpers.js';

const MINIMAL = `proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: {ip: 10.0.0.1, port: 8080}
`;

describe('normalize', () => {
  it('applies every default to a minimal config', () => {
    const config = accepted(checkText('lb.yaml', MINIMAL));
    expect(config).toEqual({
      files: ['lb.yaml'],
      proxies: [
        {
          name: 'web',
          listen: { interfaces: ['eth0'], port: 80, address: null, protocol: 'tcp', mode: 'auto', source: { file: 'lb.yaml', pointer: '/proxies/0/listen', line: 3, column: 13 } },
          defaultTarget: {
            targets: [
              {
                kind: 'ip',
                ip: '10.0.0.1',
                port: 8080,
                weight: DEFAULT_WEIGHT,
                healthCheck: null,
                proxyProtocol: 'off',
                id: '10.0.0.1:8080',
                source: { file: 'lb.yaml', pointer: '/proxies/0/default-target', line: 4, column: 21 },
              },
            ],
            totalWeight: 100,
            weightsExplicit: false,
            source: { file: 'lb.yaml', pointer: '/proxies/0/default-target', line: 4, column: 21 },
          },
          sourceRoutes: [],
          sniRoutes: [],
          sessionPersistence: false,
          dataPath: 'xdp',
          source: { file: 'lb.yaml', pointer: '/proxies/0', line: 2, column: 5 },
        },
      ],
      settings: {
        statsEnabled: false,
        connectionTimeoutSec: 300,
        udpTimeoutSec: 60,
        maxConnections: 100000,
        maxSniRoutes: null,
        healthCheckEnabled: true,
        healthCheckDefaults: null,
        defaultDrainTimeoutMs: 30000,
        drainCheckIntervalMs: 1000,
        rateLimits: { perSource: null, perBackend: null },
        circuitBreaker: { enabled: false, errorThresholdPct: 50, minRequests: 10, windowSizeMs: 60000, openDurationMs: 30000, halfOpenRequests: 3 },
        loadBalancing: { algorithm: 'weighted-random', weighted: true, updateIntervalMs: 1000 },
        metrics: { enabled: false, address: '0.0.0.0', port: 9090, path: '/metrics' },
        accessLog: { enabled: false, format: 'json', path: 'logs/access.log', stdout: false, maxFileSizeMb: 100, maxFiles: 10, bufferSize: 10000 },
      },
    });
  });

  it('carries every key of the full example', () => {
    const config = accepted(checkFile(`${FIXTURES}/full/lb.yaml`));
    const [web, dns] = config.proxies;
    expect(web!.listen).toMatchObject({ interfaces: ['eth0', 'eth1'], port: 443, address: '192.0.2.10', protocol: 'tcp' });
    expect(web!.sessionPersistence).toBe(true);
    expect(web!.dataPath).toBe('splice');
    expect(web!.defaultTarget.totalWeight).toBe(400);
    expect(web!.defaultTarget.targets[1]).toMatchObject({
      kind: 'host',
      host: 'api.backend.internal',
      dnsRefreshSeconds: 15,
      id: 'api.backend.internal:8443',
      proxyProtocol: 'off',
      healthCheck: { type: 'https', path: '/ready', expectedCodes: [200], intervalMs: 5000, timeoutMs: 2000, healthyThreshold: 3, unhealthyThreshold: 4, port: 9443 },
    });
    expect(web!.defaultTarget.targets[0]!.proxyProtocol).toBe('v2');
    expect(web!.sourceRoutes.map((r) => [r.prefix, r.network, r.prefixLength, r.sessionPersistence, r.targets.targets.map((t) => t.weight)])).toEqual([
      ['192.168.0.0/16', '192.168.0.0', 16, true, [0, 1000]],
      ['203.0.113.7/32', '203.0.113.7', 32, false, [100]],
    ]);
    expect(web!.sniRoutes.map((r) => [r.hostname, r.wildcard, r.targets.targets.length])).toEqual([
      ['api.example.com', false, 1],
      ['example.com', true, 2],
    ]);
    expect(dns!.listen.protocol).toBe('both');
    expect(dns!.defaultTarget.targets[0]!.healthCheck).toBeNull();
    expect(config.settings).toMatchObject({
      statsEnabled: true,
      connectionTimeoutSec: 600,
      udpTimeoutSec: 30,
      maxConnections: 200000,
      maxSniRoutes: 100,
      healthCheckDefaults: { type: 'tcp', intervalMs: 20000, timeoutMs: 4000, healthyThreshold: 1, unhealthyThreshold: 5, expectedCodes: [200, 204], path: '/health', port: null },
      defaultDrainTimeoutMs: 60000,
      drainCheckIntervalMs: 500,
      rateLimits: { perSource: { requestsPerSec: 100, burst: 200 }, perBackend: { requestsPerSec: 5000, burst: 5000 } },
      circuitBreaker: { enabled: true, errorThresholdPct: 40, minRequests: 20, windowSizeMs: 30000, openDurationMs: 15000, halfOpenRequests: 5 },
      loadBalancing: { algorithm: 'least-connections', weighted: false, updateIntervalMs: 500 },
      metrics: { enabled: true, address: '127.0.0.1', port: 9100, path: '/prom' },
      accessLog: { enabled: true, format: 'clf', path: '/var/log/lb/access.log', maxFileSizeMb: 50, maxFiles: 5, bufferSize: 2000 },
    });
  });

  it('merges health checks: built-in, settings defaults, proxy, target', () => {
    const config = accepted(
      checkText(
        'lb.yaml',
        `proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    health-check: {type: http, path: /p}
    default-target:
      - {ip: 10.0.0.1, port: 1}
      - {ip: 10.0.0.2, port: 1, health-check: {interval-ms: 2000}}
      - {ip: 10.0.0.3, port: 1, health-check: {type: none}}
  - name: plain
    listen: {interfaces: [eth0], port: 81}
    default-target: {ip: 10.0.0.4, port: 1}
settings:
  health-check-defaults: {timeout-ms: 1000, unhealthy-threshold: 9}
`,
      ),
    );
    const checks = config.proxies.flatMap((p) => p.defaultTarget.targets.map((t) => t.healthCheck));
    expect(checks).toEqual([
      { type: 'http', path: '/p', expectedCodes: [200, 201, 202, 204], intervalMs: 10000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 9, port: null },
      { type: 'http', path: '/p', expectedCodes: [200, 201, 202, 204], intervalMs: 2000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 9, port: null },
      null,
      { type: 'tcp', path: '/health', expectedCodes: [200, 201, 202, 204], intervalMs: 10000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 9, port: null },
    ]);
  });

  it('turns every check off when health-check-enabled is false', () => {
    const config = accepted(checkText('lb.yaml', `${MINIMAL}    health-check: {type: tcp}\nsettings: {health-check-enabled: false}\n`));
    expect(config.proxies[0]!.defaultTarget.targets[0]!.healthCheck).toBeNull();
  });

  it('lower-cases host names; keeps weights of 0', () => {
    const config = accepted(
      checkText(
        'lb.yaml',
        `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: [{host: Api.Internal, port: 1, weight: 0}, {ip: 10.0.0.1, port: 1, weight: 7}]\n`,
      ),
    );
    expect(config.proxies[0]!.defaultTarget.targets.map((t) => [t.id, t.weight])).toEqual([
      ['api.internal:1', 0],
      ['10.0.0.1:1', 7],
    ]);
    expect(config.proxies[0]!.defaultTarget.totalWeight).toBe(7);
  });

  it('puts a proxy with a PROXY protocol target on the splice path', () => {
    const config = accepted(checkText('lb.yaml', MINIMAL.replace('port: 8080}', 'port: 8080, proxy-protocol: v2}')));
    expect(config.proxies[0]!.dataPath).toBe('splice');
  });
});
