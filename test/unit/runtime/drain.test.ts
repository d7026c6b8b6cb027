import { afterEach, describe, expect, it, vi } from 'vitest';
import { isLbError } from '../../../src/core/errors.js';
import { DrainManager, observeDrain, startDrain, type DrainChangeEvent } from '../../../src/runtime/drain.js';
import { drainKey } from '../../../src/runtime/keys.js';
import { config } from './helpers.js';

const CFG = config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: [{ip: 10.0.0.1, port: 8080}, {ip: 10.0.0.2, port: 8080}]
    source-routes: [{source: 10.9.0.0/16, target: {ip: 10.0.0.3, port: 8080}}]
settings: {default-drain-timeout-ms: 5000, drain-check-interval-ms: 100}
`);

describe('drain (pure)', () => {
  it('is done when the active flows reach 0', () => {
    const d = startDrain('web', '10.0.0.1:8080', 5000, 1000);
    expect(d).toMatchObject({ status: 'draining', deadline: 6000, activeFlows: null });
    const a = observeDrain(d, 3, 2000);
    expect(a).toMatchObject({ status: 'draining', activeFlows: 3, lastCheckedAt: 2000 });
    expect(observeDrain(a, 0, 3000)).toMatchObject({ status: 'drained', activeFlows: 0, finishedAt: 3000 });
  });

  it('times out at the deadline with flows left', () => {
    const d = startDrain('web', '10.0.0.1:8080', 5000, 1000);
    expect(observeDrain(d, 2, 5999).status).toBe('draining');
    expect(observeDrain(d, 2, 6000)).toMatchObject({ status: 'timed-out', activeFlows: 2, finishedAt: 6000 });
  });

  it('an unknown count keeps the last one and only the timeout can end it', () => {
    const d = observeDrain(startDrain('web', 'x', 1000, 0), 4, 10);
    expect(observeDrain(d, undefined, 20)).toMatchObject({ status: 'draining', activeFlows: 4 });
    expect(observeDrain(d, undefined, 1000).status).toBe('timed-out');
  });

  it('a finished drain stays finished (counts are still recorded)', () => {
    const done = observeDrain(startDrain('web', 'x', 1000, 0), 0, 10);
    expect(observeDrain(done, 5, 20)).toMatchObject({ status: 'drained', activeFlows: 5, finishedAt: 10 });
  });
});

describe('DrainManager', () => {
  let manager: DrainManager | undefined;
  afterEach(async () => { await manager?.stop(); manager = undefined; });

  it('drains with the default timeout, counts flows per poll, emits started and drained', async () => {
    let now = 1000;
    const flows = new Map([['10.0.0.1:8080', 2]]);
    manager = new DrainManager(CFG, { activeFlows: (_p, id) => flows.get(id), now: () => now });
    const events: DrainChangeEvent[] = [];
    manager.on('change', (e) => events.push(e));
    expect(manager.drain('web', '10.0.0.1:8080')).toMatchObject({ timeoutMs: 5000, deadline: 6000 });
    await manager.poll();
    expect(manager.get('web', '10.0.0.1:8080')).toMatchObject({ status: 'draining', activeFlows: 2 });
    flows.set('10.0.0.1:8080', 0);
    now = 2000;
    const done = manager.whenDone('web', '10.0.0.1:8080');
    await manager.poll();
    expect(await done).toMatchObject({ status: 'drained', finishedAt: 2000 });
    expect(events.map((e) => e.action)).toEqual(['started', 'drained']);
    expect([...manager.snapshot().keys()]).toEqual([drainKey('web', '10.0.0.1:8080')]);
  });

  it('polls on its own at drain-check-interval-ms while a drain runs, and times out', async () => {
    vi.useFakeTimers();
    try {
      let now = 0;
      manager = new DrainManager(CFG, { activeFlows: () => 1, now: () => now });
      manager.drain('web', '10.0.0.3:8080', { timeoutMs: 250 });
      const done = manager.whenDone('web', '10.0.0.3:8080');
      for (let i = 0; i < 5; i++) { now += 100; await vi.advanceTimersByTimeAsync(100); }
      expect(await done).toMatchObject({ status: 'timed-out', activeFlows: 1 });
      expect(vi.getTimerCount()).toBe(0); // nothing left to poll: the scheduler stopped
    } finally {
      vi.useRealTimers();
    }
  });

  it('undrain removes it; undrain of a target not draining returns undefined', () => {
    manager = new DrainManager(CFG, { activeFlows: () => 0 });
    manager.drain('web', '10.0.0.2:8080');
    expect(manager.undrain('web', '10.0.0.2:8080')?.targetId).toBe('10.0.0.2:8080');
    expect(manager.undrain('web', '10.0.0.2:8080')).toBeUndefined();
    expect(manager.list()).toEqual([]);
  });

  it('rejects names the config does not have, listing what exists', () => {
    manager = new DrainManager(CFG, { activeFlows: () => 0 });
    const errorOf = (f: () => unknown): unknown => { try { f(); } catch (e) { return e; } return undefined; };
    const e1 = errorOf(() => manager!.drain('web', '10.0.0.9:8080'));
    expect(isLbError(e1, 'LB_RUNTIME_UNKNOWN_TARGET')).toBe(true);
    expect((e1 as Error).message).toContain('10.0.0.1:8080, 10.0.0.2:8080, 10.0.0.3:8080');
    const e2 = errorOf(() => manager!.undrain('nope', '10.0.0.1:8080'));
    expect((e2 as Error).message).toContain('no proxy "nope"');
  });

  it('a refusal names 20 of many proxies, counts the rest, and escapes the name it was given', () => {
    const many = config(`proxies:\n${Array.from({ length: 500 }, (_, i) => `  - {name: svc-${i}, listen: {interfaces: [eth0], port: ${i + 1}}, default-target: {ip: 10.0.0.1, port: 8080}}`).join('\n')}\n`);
    manager = new DrainManager(many, { activeFlows: () => 0 });
    let err: unknown;
    try {
      manager.drain('\u001b[31mx', '10.0.0.1:8080');
    } catch (e) {
      err = e;
    }
    const message = (err as Error).message;
    expect(message).toBe(`no proxy "\\u001b[31mx" in the active config; proxies: ${Array.from({ length: 20 }, (_, i) => `svc-${i}`).join(', ')} and 480 more`);
  });

  it('a new config drops drains of removed targets; restore puts saved drains back', () => {
    manager = new DrainManager(CFG, { activeFlows: () => 0 });
    const saved = manager.drain('web', '10.0.0.3:8080');
    const events: string[] = [];
    manager.on('change', (e) => events.push(`${e.action} ${e.state.targetId}`));
    manager.setConfig(config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target: [{ip: 10.0.0.1, port: 8080}]
`));
    expect(events).toEqual(['removed 10.0.0.3:8080']);
    manager.setConfig(CFG);
    manager.restore([saved, { ...saved, proxy: 'gone' }]);
    expect(manager.list().map((d) => d.targetId)).toEqual(['10.0.0.3:8080']);
  });
});
