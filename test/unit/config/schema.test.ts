// The JSON Schema is the one definition of the format: it compiles strictly, documents and closes
// every object, agrees with the defaults normalize applies, with the TS types, and with docs.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as defaults from '../../../src/core/config/defaults.js';
import { CONFIG_SCHEMA, configValidator } from '../../../src/core/config/schema.js';
import type {
  RawAccessLog, RawCircuitBreaker, RawConfig, RawHealthCheck, RawListen, RawLoadBalancing, RawMetrics, RawProxy,
  RawRateLimit, RawRateLimits, RawSettings, RawSniRoute, RawSourceRoute, RawTarget,
} from '../../../src/core/config/raw-types.js';
import { accepted, checkText } from './helpers.js';

type Schema = Record<string, unknown>;
const defs = CONFIG_SCHEMA.$defs as Record<string, Schema>;

/** Every schema object that declares properties, with a readable path. */
function objectSchemas(): { path: string; schema: Schema }[] {
  const out: { path: string; schema: Schema }[] = [];
  const walk = (schema: unknown, path: string): void => {
    if (schema === null || typeof schema !== 'object') return;
    if (Array.isArray(schema)) {
      schema.forEach((s, i) => walk(s, `${path}/${i}`));
      return;
    }
    const s = schema as Schema;
    if (s.properties) out.push({ path, schema: s });
    for (const [k, v] of Object.entries(s)) walk(v, `${path}/${k}`);
  };
  walk(CONFIG_SCHEMA, '#');
  return out;
}

function propertiesOf(def: string): string[] {
  return Object.keys(defs[def]!.properties as Schema);
}

describe('schemas/lb-config.schema.json', () => {
  it('is draft 2020-12 with an $id, and compiles in ajv strict mode', () => {
    expect(CONFIG_SCHEMA.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(typeof CONFIG_SCHEMA.$id).toBe('string');
    expect(() => configValidator()).not.toThrow();
  });

  it('describes every property', () => {
    const missing = objectSchemas().flatMap(({ path, schema }) =>
      Object.entries(schema.properties as Record<string, Schema>)
        .filter(([, p]) => typeof p.description !== 'string' || p.description.length < 10)
        .map(([name]) => `${path}/properties/${name}`),
    );
    expect(missing).toEqual([]);
  });

  it('closes every object: unknown keys are errors', () => {
    const open = objectSchemas().filter(({ schema }) => schema.additionalProperties !== false).map(({ path }) => path);
    expect(open).toEqual([]);
  });

  it('states the defaults normalize applies', () => {
    const settings = defs.settings!.properties as Record<string, Schema>;
    const nested = (key: string) => settings[key]!.properties as Record<string, Schema>;
    const schemaDefaults = (props: Record<string, Schema>, keys: readonly string[]) => Object.fromEntries(keys.map((k) => [k, props[k]!.default]));
    expect(schemaDefaults(settings, Object.keys(defaults.SETTINGS_DEFAULTS))).toEqual(defaults.SETTINGS_DEFAULTS);
    expect(schemaDefaults(nested('circuit-breaker'), Object.keys(defaults.CIRCUIT_BREAKER_DEFAULTS))).toEqual(defaults.CIRCUIT_BREAKER_DEFAULTS);
    expect(schemaDefaults(nested('load-balancing'), Object.keys(defaults.LOAD_BALANCING_DEFAULTS))).toEqual(defaults.LOAD_BALANCING_DEFAULTS);
    expect(schemaDefaults(nested('metrics'), Object.keys(defaults.METRICS_DEFAULTS))).toEqual(defaults.METRICS_DEFAULTS);
    expect(schemaDefaults(nested('access-log'), Object.keys(defaults.ACCESS_LOG_DEFAULTS))).toEqual(defaults.ACCESS_LOG_DEFAULTS);
    const hc = defs.healthCheck!.properties as Record<string, Schema>;
    expect(schemaDefaults(hc, Object.keys(defaults.HEALTH_CHECK_DEFAULTS))).toEqual(defaults.HEALTH_CHECK_DEFAULTS);
    expect((defs.target!.properties as Record<string, Schema>)['dns-refresh-seconds']!.default).toBe(defaults.DEFAULT_DNS_REFRESH_SECONDS);
    expect((defs.listen!.properties as Record<string, Schema>).protocol!.default).toBe(defaults.LISTEN_DEFAULTS.protocol);
    const proxy = defs.proxy!.properties as Record<string, Schema>;
    expect(proxy['session-persistence']!.default).toBe(defaults.PROXY_DEFAULTS['session-persistence']);
    expect(proxy['proxy-protocol']!.default).toBe(defaults.PROXY_DEFAULTS['proxy-protocol']);
  });
});

describe('the TypeScript types agree with the schema', () => {
  // `satisfies Record<keyof T, true>` makes tsc fail when a type gains or loses a key; the
  // expectations make the test fail when the schema does.
  const raw = {
    root: { proxies: true, settings: true } satisfies Record<keyof RawConfig, true>,
    proxy: {
      name: true, listen: true, 'default-target': true, 'source-routes': true, 'sni-routes': true,
      'session-persistence': true, 'proxy-protocol': true, 'health-check': true,
    } satisfies Record<keyof RawProxy, true>,
    listen: { interfaces: true, port: true, address: true, protocol: true, mode: true } satisfies Record<keyof RawListen, true>,
    target: {
      ip: true, host: true, port: true, weight: true, 'dns-refresh-seconds': true, 'health-check': true, 'proxy-protocol': true,
    } satisfies Record<keyof RawTarget, true>,
    sourceRoute: { source: true, target: true, targets: true, 'session-persistence': true } satisfies Record<keyof RawSourceRoute, true>,
    sniRoute: { 'sni-hostname': true, target: true, targets: true, 'session-persistence': true } satisfies Record<keyof RawSniRoute, true>,
    healthCheck: {
      type: true, path: true, 'expected-codes': true, 'interval-ms': true, 'timeout-ms': true,
      'healthy-threshold': true, 'unhealthy-threshold': true, port: true,
    } satisfies Record<keyof RawHealthCheck, true>,
    rateLimit: { 'requests-per-sec': true, burst: true } satisfies Record<keyof RawRateLimit, true>,
    settings: {
      'stats-enabled': true, 'connection-timeout-sec': true, 'udp-timeout-sec': true, 'max-connections': true,
      'max-sni-routes': true, 'health-check-enabled': true, 'health-check-defaults': true, 'default-drain-timeout-ms': true,
      'drain-check-interval-ms': true, 'rate-limits': true, 'circuit-breaker': true, 'load-balancing': true, metrics: true,
      'access-log': true,
    } satisfies Record<keyof RawSettings, true>,
  };
  const settingsProps = defs.settings!.properties as Record<string, Schema>;
  const nested = (key: string) => Object.keys(settingsProps[key]!.properties as Schema);

  it.each(Object.entries(raw))('%s', (def, keys) => {
    const schemaKeys = def === 'root' ? Object.keys(CONFIG_SCHEMA.properties as Schema) : propertiesOf(def);
    expect(Object.keys(keys).sort()).toEqual(schemaKeys.sort());
  });

  it('nested settings maps', () => {
    expect(Object.keys({ 'per-source': true, 'per-backend': true } satisfies Record<keyof RawRateLimits, true>).sort()).toEqual(nested('rate-limits').sort());
    expect(
      Object.keys({
        enabled: true, 'error-threshold-pct': true, 'min-requests': true, 'window-size-ms': true, 'open-duration-ms': true, 'half-open-requests': true,
      } satisfies Record<keyof RawCircuitBreaker, true>).sort(),
    ).toEqual(nested('circuit-breaker').sort());
    expect(Object.keys({ algorithm: true, weighted: true, 'update-interval-ms': true } satisfies Record<keyof RawLoadBalancing, true>).sort()).toEqual(
      nested('load-balancing').sort(),
    );
    expect(Object.keys({ enabled: true, address: true, port: true, path: true } satisfies Record<keyof RawMetrics, true>).sort()).toEqual(nested('metrics').sort());
    expect(
      Object.keys({
        enabled: true, format: true, path: true, stdout: true, 'max-file-size-mb': true, 'max-files': true, 'buffer-size': true,
      } satisfies Record<keyof RawAccessLog, true>).sort(),
    ).toEqual(nested('access-log').sort());
  });

  it('the normalized settings carry every schema setting, camelCased', () => {
    const config = accepted(checkText('lb.yaml', 'proxies:\n  - {name: a, listen: {interfaces: [lo], port: 1}, default-target: {ip: 127.0.0.1, port: 2}}\n'));
    const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    expect(Object.keys(config.settings).sort()).toEqual(Object.keys(settingsProps).map(camel).sort());
    for (const key of ['circuit-breaker', 'load-balancing', 'metrics', 'access-log', 'rate-limits']) {
      const normalized = (config.settings as unknown as Record<string, Record<string, unknown>>)[camel(key)]!;
      expect(Object.keys(normalized).sort()).toEqual(nested(key).map(camel).sort());
    }
  });
});

describe('docs/config.md', () => {
  const doc = readFileSync('docs/config.md', 'utf8');

  it('documents every property of the schema', () => {
    const names = new Set(objectSchemas().flatMap(({ schema }) => Object.keys(schema.properties as Schema)));
    const missing = [...names].filter((n) => !doc.includes(`\`${n}\``));
    expect(missing).toEqual([]);
  });

  it('documents every enum value', () => {
    const values = new Set<string>();
    const walk = (s: unknown): void => {
      if (s === null || typeof s !== 'object') return;
      const o = s as Schema;
      if (Array.isArray(o.enum)) for (const v of o.enum) values.add(String(v));
      for (const v of Object.values(o)) walk(v);
    };
    walk(CONFIG_SCHEMA);
    expect([...values].filter((v) => !doc.includes(`\`${v}\``))).toEqual([]);
  });

  it('names the error codes of the config layer', () => {
    for (const code of ['LB_CONFIG_IO', 'LB_CONFIG_PARSE', 'LB_CONFIG_SCHEMA', 'LB_CONFIG_SEMANTIC']) expect(doc).toContain(code);
  });
});

describe('the examples in docs/config.md', () => {
  const doc = readFileSync('docs/config.md', 'utf8');
  const blocks = (lang: string) => [...doc.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);

  it('the first YAML example (docs/design.md §4) is valid', () => {
    const [example] = blocks('yaml');
    expect(accepted(checkText('example.yaml', example!)).proxies).toHaveLength(1);
  });

  it('the EDN example is valid', () => {
    const [example] = blocks('clojure');
    expect(accepted(checkText('example.edn', example!)).proxies[0]!.defaultTarget.targets).toHaveLength(2);
  });
});
