// The daemon's side of the apply worker (src/reconcile/apply-worker.ts) against scripted workers:
// the applied state crosses once and is then named by its id (a drift check of it sends nothing
// large), a worker that does not answer in time fails the request with LB_APPLY_FAILED and is
// replaced, and the replacement is sent the state again. The real worker on the kernel:
// test/privileged/apply-worker.test.ts.
import { describe, expect, it } from 'vitest';
import type { ApplyRequest } from '../../../src/apply/index.js';
import { isLbError } from '../../../src/core/errors.js';
import { EMPTY_STATE } from '../../../src/core/state.js';
import { EMPTY_SETTINGS } from '../../../src/dataplane/index.js';
import { ApplyWorker } from '../../../src/reconcile/apply-worker.js';

/**
 * A worker (CommonJS, eval) answering every request like the real one, telling whether the request
 * carried the state (a drift check: `sent`; an apply: its result's warnings). Requests of type `drift` for the id in `hangOn` get no answer.
 */
const script = (hangOn = -1): string => `const { parentPort } = require('node:worker_threads');
const { serialize } = require('node:v8');
parentPort.on('message', (req) => {
  if (req.type === 'drift' && req.id === ${hangOn}) return;
  const value = req.type === 'apply'
    ? { result: { instance: req.instance, changed: true, activeGen: 1, serial: 2, ops: 3, attached: [], detached: [], warnings: [req.state !== undefined ? 'sent' : 'named'] },
        readBack: { left: null, dataPlane: { mode: 'none', interfaces: [], paths: {}, listeners: 0, targets: 0 }, names: null }, sent: req.state !== undefined, id: req.id }
    : { finding: null, dataPlane: { mode: 'none', interfaces: [], paths: {}, listeners: 0, targets: 0 }, sent: req.state !== undefined, id: req.id };
  const b = serialize(value);
  // The bytes and a trailing 0: no Buffers to revive (src/reconcile/transfer.ts).
  const part = new ArrayBuffer(b.byteLength + 1);
  new Uint8Array(part).set(b);
  parentPort.postMessage({ ok: true, parts: [part] }, [part]);
});`;

const request = (serial: number): ApplyRequest => ({
  instance: 'unit', interfaces: [], desired: EMPTY_STATE, generation: { settings: { ...EMPTY_SETTINGS, tcpIdleSec: serial }, listeners: [], groups: [], srcRoutes: [] },
});
const sent = (v: unknown): boolean => (v as { sent?: boolean }).sent ?? (v as { result: { warnings: string[] } }).result.warnings[0] === 'sent';

describe('ApplyWorker', () => {
  it('sends the applied state once; a drift check or another apply of the same request names it by id', async () => {
    const w = new ApplyWorker({ instance: 'unit', entry: script(), eval: true, timeoutMs: 20_000 });
    const a = request(1);
    const first = await w.applyAndRead(a, EMPTY_STATE, false);
    expect(first.request).toBe(a);
    expect(first.result.serial).toBe(2);
    expect(sent(first), 'the first apply carries the state').toBe(true);
    expect(sent(await w.readDrift(a, EMPTY_STATE)), 'the drift check of the applied request: its id only').toBe(false);
    expect(sent(await w.applyAndRead(a, EMPTY_STATE, true)), 'a heal of it: its id only').toBe(false);
    expect(sent(await w.applyAndRead(request(2), EMPTY_STATE, false)), 'another request is sent').toBe(true);
    expect(w.started).toBe(1);
    await w.close();
  });

  it('a worker that misses the deadline fails the request with LB_APPLY_FAILED; the next worker is sent the state again', async () => {
    // The first state's id is 1: its drift check hangs.
    const w = new ApplyWorker({ instance: 'unit', entry: script(1), eval: true, timeoutMs: 300 });
    const a = request(1);
    await w.applyAndRead(a, EMPTY_STATE, false);
    const err = await w.readDrift(a, EMPTY_STATE).then(() => undefined, (e: unknown) => e);
    expect(isLbError(err, 'LB_APPLY_FAILED') && err.data).toMatchObject({ reason: 'timeout', timeoutMs: 300 });
    expect(isLbError(err) && err.message).toMatch(/did not answer drift check .* within 300 ms; it was stopped; an apply it cut short is finished or rolled back by the next run's recovery/);
    const again = await w.readDrift(a, EMPTY_STATE);
    expect(sent(again), 'a fresh worker holds nothing: the state is sent again').toBe(true);
    expect(w.started).toBe(2);
    await w.close();
  });
});
