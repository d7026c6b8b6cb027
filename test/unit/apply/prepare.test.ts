// prepare.ts in two halves: checkConfigAt reads, parses and checks a config once; planCheckedConfig
// plans what was checked without reading it again; preparePlan (lb plan, lb apply) is both. The
// host (live state, ifindexes, data-path choice) is a fake: no kernel needed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { checkConfigAt, planCheckedConfig, preparePlan } from '../../../src/apply/prepare.js';
import { ConfigError } from '../../../src/core/config/config-error.js';
import { FAKE_HOST } from './fake-host.js';

const counts = vi.hoisted(() => ({ reads: 0, checks: 0 }));
vi.mock('../../../src/source/load-config.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/source/load-config.js')>();
  return { ...real, readConfigSources: async (path: string) => { counts.reads += 1; return real.readConfigSources(path); } };
});
vi.mock('../../../src/core/config/check.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/core/config/check.js')>();
  return { ...real, checkConfig: (...args: Parameters<typeof real.checkConfig>) => { counts.checks += 1; return real.checkConfig(...args); } };
});

const dir = mkdtempSync(join(tmpdir(), 'lb-prepare-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'lb.yaml');
writeFileSync(file, `proxies:
  - name: web
    listen: {interfaces: [lo], port: 80, address: 10.0.0.10}
    default-target:
      - {ip: 10.0.1.1, port: 8080}
      - {ip: 10.0.1.2, port: 8080}
`);

const host = FAKE_HOST;

function counted<T>(fn: () => Promise<T> | T): Promise<{ value: T; reads: number; checks: number }> {
  const before = { ...counts };
  return Promise.resolve(fn()).then((value) => ({ value, reads: counts.reads - before.reads, checks: counts.checks - before.checks }));
}

describe('prepare', () => {
  it('checkConfigAt reads and checks once, and names the config by absolute path and digest', async () => {
    const { value: checked, reads, checks } = await counted(() => checkConfigAt(file));
    expect({ reads, checks }).toEqual({ reads: 1, checks: 1 });
    expect(checked.configPath).toBe(file);
    expect(checked.config.proxies).toHaveLength(1);
    expect(checked.configDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('planCheckedConfig plans a checked config without reading or checking it again', async () => {
    const checked = await checkConfigAt(file);
    const { value: plan, reads, checks } = await counted(() => planCheckedConfig(checked, { instance: 'unit', revision: 'r1', host }));
    expect({ reads, checks }).toEqual({ reads: 0, checks: 0 });
    expect(plan).toMatchObject({ instance: 'unit', revision: 'r1', configPath: file, configDigest: checked.configDigest, ifindexes: { lo: 1 } });
    expect(plan.plan.summary.add).toBeGreaterThan(0);
    expect(plan.desired.paths?.['lo']).toMatchObject({ path: 'tc', ifindex: 1 });
  });

  it('preparePlan (lb plan, lb apply) is one read, one check, and the same plan', async () => {
    const checked = await checkConfigAt(file);
    const { value: prepared, reads, checks } = await counted(() => preparePlan({ instance: 'unit', configPath: file, host }));
    expect({ reads, checks }).toEqual({ reads: 1, checks: 1 });
    const planned = planCheckedConfig(checked, { instance: 'unit', host });
    expect(prepared.plan).toEqual(planned.plan);
    expect(prepared.encoded).toEqual(planned.encoded);
    expect(prepared.revision).toBeNull();
  });

  it('an invalid config is a ConfigError with its position', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'proxies:\n  - name: web\n    listen: {interfaces: [lo], port: eighty}\n');
    const err = await preparePlan({ instance: 'unit', configPath: bad, host }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).diagnostics.some((d) => d.file.endsWith('bad.yaml') && d.line === 3)).toBe(true);
  });
});
