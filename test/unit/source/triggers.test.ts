import { describe, expect, it } from 'vitest';
import { TriggerCoalescer, onSighup, type Trigger } from '../../../src/source/index.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('TriggerCoalescer', () => {
  it('turns a synchronous burst into one run that sees every trigger', async () => {
    const batches: Trigger[][] = [];
    const c = new TriggerCoalescer(async (t) => {
      batches.push(t);
    });
    c.trigger('webhook', 'a');
    c.trigger('poll');
    c.trigger('sighup');
    await c.whenIdle();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.map((t) => t.kind)).toEqual(['webhook', 'poll', 'sighup']);
  });

  it('while a run is in flight, any number of triggers cause exactly one more run', async () => {
    const gate = deferred();
    const batches: Trigger[][] = [];
    const c = new TriggerCoalescer(async (t) => {
      batches.push(t);
      if (batches.length === 1) await gate.promise;
    });
    c.trigger('startup');
    await new Promise((r) => setImmediate(r));
    expect(c.running).toBe(true);
    for (let i = 0; i < 500; i++) c.trigger('webhook', String(i));
    gate.resolve();
    await c.whenIdle();
    expect(batches).toHaveLength(2);
    // The pending list is bounded (newest kept).
    expect(batches[1]!.length).toBe(64);
    expect(batches[1]!.at(-1)!.detail).toBe('499');
    // Folded, not lost: the oldest kept trigger stands for the 437 that arrived before it.
    expect(batches[1]!.reduce((n, t) => n + (t.count ?? 1), 0)).toBe(500);
    expect(c.runs).toBe(2);
  });

  it('a fold keeps the revisions only when both triggers name the same ones', () => {
    const c = new TriggerCoalescer(async () => {}, { maxPending: 2 });
    const pending = (): Trigger[] => (c as unknown as { pending: Trigger[] }).pending;
    c.trigger('webhook', 'a', ['r1']);
    c.trigger('webhook', 'b', ['r1']);
    c.trigger('webhook', 'c', ['r1']);
    expect(pending()[0]).toMatchObject({ detail: 'b', revisions: ['r1'], count: 2 });
    c.trigger('webhook', 'd', ['r2']);
    expect(pending()[0]).toMatchObject({ detail: 'c', revisions: ['r1'], count: 3 });
    c.trigger('webhook', 'e', ['r1']);
    expect(pending()[0]).toMatchObject({ detail: 'd', count: 4 });
    expect(pending()[0]!.revisions).toBeUndefined();
  });

  it('keeps going after a run throws, and reports the error', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const c = new TriggerCoalescer(
      async () => {
        runs += 1;
        if (runs === 1) throw new Error('boom');
      },
      { onError: (e) => errors.push(e) },
    );
    c.trigger('poll');
    await c.whenIdle();
    c.trigger('poll');
    await c.whenIdle();
    expect(runs).toBe(2);
    expect(errors).toHaveLength(1);
  });

  it('stop() waits for the current run and refuses new triggers', async () => {
    const gate = deferred();
    let runs = 0;
    const c = new TriggerCoalescer(async () => {
      runs += 1;
      await gate.promise;
    });
    c.trigger('poll');
    await new Promise((r) => setImmediate(r));
    c.trigger('poll');
    const stopped = c.stop();
    gate.resolve();
    await stopped;
    c.trigger('poll');
    await c.whenIdle();
    expect(runs).toBe(1);
  });
});

describe('onSighup', () => {
  it('calls the handler on SIGHUP until unsubscribed', async () => {
    let n = 0;
    const before = process.listenerCount('SIGHUP');
    const off = onSighup(() => n++);
    process.kill(process.pid, 'SIGHUP');
    for (let i = 0; i < 100 && n === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(n).toBe(1);
    off();
    expect(process.listenerCount('SIGHUP')).toBe(before);
  });
});
