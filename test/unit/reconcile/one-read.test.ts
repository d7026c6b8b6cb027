// A reconcile reads, parses and checks its config once: the validate step does, and the plan is
// made of what it checked (the kernel engine's prepare, on a fake host, does not read again).
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Reconciler } from '../../../src/reconcile/index.js';
import { config, FakeEngine, FakeSource, removeRevisions, revision } from './fakes.js';

const counts = vi.hoisted(() => ({ reads: 0, checks: 0 }));

vi.mock('../../../src/source/load-config.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/source/load-config.js')>();
  return { ...real, readConfigSources: async (path: string) => { counts.reads += 1; return real.readConfigSources(path); } };
});
vi.mock('../../../src/core/config/check.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/core/config/check.js')>();
  return { ...real, checkConfig: (...args: Parameters<typeof real.checkConfig>) => { counts.checks += 1; return real.checkConfig(...args); } };
});

afterAll(removeRevisions);

describe('one read per reconcile', () => {
  it('reads and checks the config once per applied revision, and not at all for an unchanged one', async () => {
    const source = new FakeSource();
    const engine = new FakeEngine();
    const results: string[] = [];
    const r = new Reconciler({
      instance: 'unit', node: 'n1', source, engine, sourceInfo: { kind: 'git', url: 'u', ref: 'main', path: '' },
      metrics: { reconcile: (res) => results.push(res), appliedRevision: () => {}, driftDetected: () => {} },
    });
    const run = async (): Promise<{ reads: number; checks: number }> => {
      const before = { ...counts };
      r.trigger('poll');
      await r.whenIdle();
      return { reads: counts.reads - before.reads, checks: counts.checks - before.checks };
    };
    source.current = revision(config([1, 1]));
    expect(await run()).toEqual({ reads: 1, checks: 1 });
    source.current = revision(config([2, 1]));
    expect(await run()).toEqual({ reads: 1, checks: 1 });
    expect(await run()).toEqual({ reads: 0, checks: 0 });
    expect(results).toEqual(['applied', 'applied', 'unchanged']);
    expect(engine.prepares, 'the plans were made (by the kernel engine\'s prepare)').toBe(2);
    expect(engine.applies.at(-1)!.configDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    await r.stop();
  });
});
