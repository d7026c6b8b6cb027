// Every example config of the original (test/fixtures/seed-configs, copied unchanged from
// ../shared/seed-configs) is a test case: the table says whether lb accepts it and why, and for
// the ones it rejects, the exact diagnostics.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { countTargets } from '../../../src/cli/commands/validate.js';
import { formatDiagnostics } from '../../../src/core/config/index.js';
import { FIXTURES, SEEDS, accepted, checkFile, rejection, withoutSources } from './helpers.js';

type Case =
  | { file: string; valid: true; why: string; proxies: number; targets: number; warnings?: string[] }
  | { file: string; valid: false; why: string; diagnostics: string[] };

const CASES: Case[] = [
  { file: 'config.edn', valid: true, why: 'two proxies on distinct ports; a plain address as source is a /32', proxies: 2, targets: 5 },
  {
    file: 'dns-backends.edn',
    valid: true,
    why: 'host targets with dns-refresh-seconds and health checks; settings health-check-enabled is supported',
    proxies: 5,
    targets: 7,
  },
  {
    file: 'health-checking.edn',
    valid: true,
    why: 'tcp/http/https/none checks per target, settings health-check-defaults (its expected-codes serve http checks that inherit them)',
    proxies: 5,
    targets: 15,
  },
  {
    file: 'high-availability.edn',
    valid: true,
    why: 'valid; max-connections 500000 is above the conntrack capacity, which is a warning (LRU eviction), not an error',
    proxies: 2,
    targets: 9,
    warnings: [
      "test/fixtures/seed-configs/high-availability.edn:68:20: warning: /settings/max-connections: max-connections 500000 exceeds the connection table's capacity of 262144 flows (LB_MAX_FLOWS / 2); beyond it the least recently used flows are evicted",
    ],
  },
  { file: 'kubernetes-ingress.edn', valid: true, why: 'three proxies on distinct ports; a route may repeat the default backend', proxies: 3, targets: 6 },
  { file: 'multi-backend.edn', valid: true, why: 'source routes of distinct prefixes', proxies: 1, targets: 5 },
  { file: 'multi-interface.edn', valid: true, why: 'two interfaces on one proxy, a third on another port', proxies: 2, targets: 4 },
  { file: 'simple-proxy.edn', valid: true, why: 'the minimal config (a loopback backend is allowed)', proxies: 1, targets: 1 },
  {
    file: 'sni-routing.edn',
    valid: false,
    why: 'four proxies listen on eth0:443/tcp with no address, so none of them could tell its traffic from the others; (max-sni-routes is supported, as a bound)',
    diagnostics: [
      'test/fixtures/seed-configs/sni-routing.edn:52:18: /proxies/1/listen/interfaces/0: listener eth0:443/tcp conflicts with proxy "saas-gateway" (line 31): both accept every address; give each its own address (VIP) or port',
      'test/fixtures/seed-configs/sni-routing.edn:78:18: /proxies/2/listen/interfaces/0: listener eth0:443/tcp conflicts with proxy "saas-gateway" (line 31): both accept every address; give each its own address (VIP) or port',
      'test/fixtures/seed-configs/sni-routing.edn:105:18: /proxies/3/listen/interfaces/0: listener eth0:443/tcp conflicts with proxy "saas-gateway" (line 31): both accept every address; give each its own address (VIP) or port',
    ],
  },
  {
    file: 'weighted-load-balancing.edn',
    valid: true,
    why: 'weights given on every target of each multi-target group; single targets default to 100',
    proxies: 4,
    targets: 15,
  },
];

describe('seed configs of the original', () => {
  it('the table covers every seed config', () => {
    const files = readdirSync(SEEDS).filter((f) => f.endsWith('.edn')).sort();
    expect(CASES.map((c) => c.file).sort()).toEqual(files);
  });

  for (const c of CASES) {
    it(`${c.file}: ${c.valid ? 'valid' : 'invalid'} (${c.why})`, () => {
      const result = checkFile(`${SEEDS}/${c.file}`);
      if (!c.valid) {
        expect(rejection(result)).toEqual(c.diagnostics);
        return;
      }
      const config = accepted(result);
      expect(config.proxies).toHaveLength(c.proxies);
      expect(countTargets(config)).toBe(c.targets);
      expect(result.ok && formatDiagnostics(result.warnings).split('\n').filter(Boolean)).toEqual(c.warnings ?? []);
    });
  }
});

describe('YAML equivalents of seed configs normalize to the same config', () => {
  it.each(['config', 'weighted-load-balancing', 'dns-backends'])('%s', (name) => {
    const edn = accepted(checkFile(`${SEEDS}/${name}.edn`));
    const yaml = accepted(checkFile(`${FIXTURES}/yaml-equivalents/${name}.yaml`));
    expect(withoutSources(yaml)).toEqual(withoutSources(edn));
  });

  it('sni-routing with one VIP per proxy is valid', () => {
    const config = accepted(checkFile(`${FIXTURES}/yaml-equivalents/sni-routing-vips.yaml`));
    expect(config.proxies.map((p) => [p.name, p.listen.address, p.dataPath])).toEqual([
      ['saas-gateway', '192.0.2.1', 'splice'],
      ['microservices-gateway', '192.0.2.2', 'splice'],
      ['weighted-sni', '192.0.2.3', 'splice'],
      ['combined-routing', '192.0.2.4', 'splice'],
    ]);
  });
});
