// The daemon's apply worker (src/reconcile/apply-worker.ts) on the real kernel: the transaction and
// its read-back run in a worker thread of this process and answer with the verdict and summaries,
// and a worker stopped in the middle of an apply (terminate(), as its deadline or a crash does)
// fails the request only once its thread stopped; the journal it leaves is resolved by recovery to
// exactly the old generation (stopped before the flip) or exactly the new one (after it).
// Needs root; fails (never skips) without it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyGeneration, journalPath, recoverInstance, type ApplyRequest } from '../../src/apply/index.js';
import { isLbError } from '../../src/core/errors.js';
import { EMPTY_STATE } from '../../src/core/state.js';
import { DataPlane, type GenerationConfig } from '../../src/dataplane/index.js';
import { expectedOf } from '../../src/reconcile/applied-read.js';
import { ApplyWorker } from '../../src/reconcile/apply-worker.js';
import { detectDrift } from '../../src/reconcile/drift.js';
import { readLive } from '../../src/state/live.js';
import { runDir } from '../../src/state/run-dir.js';
import { TargetIds, buildGeneration, type ListenerSpec } from '../lib/apply-fixtures.js';
import { ensureBuilt } from '../lib/build.js';
import { ROOT } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('apply-worker.test.ts must run as root: it loads BPF programs');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'lb-apply-worker-'));
const ids = new TargetIds();
const listener = (k: number, net: number): ListenerSpec => ({ vip: `10.102.${k >> 8}.${k & 255}`, port: 80, targets: [`10.${net}.${k}.1:80`, `10.${net}.${k}.2:80@3`] });
const gen = (net: number, changed: number[] = []): GenerationConfig =>
  buildGeneration(Array.from({ length: 40 }, (_, k) => listener(k + 1, changed.includes(k) ? net + 1 : net)), ids);
const BASE = gen(1);
const NEXT = gen(1, [3, 7, 11]);
const request = (generation: GenerationConfig): ApplyRequest => ({ instance, generation, interfaces: [] });
const MAIN = pathToFileURL(join(ROOT, 'dist', 'src', 'reconcile', 'apply-worker-main.js'));

/** A worker that runs the real ApplyWork but stops for good at the first progress line matching `at`, after leaving `marker`. */
const stoppingWorker = (at: string, marker: string): string => `
const { parentPort } = require('node:worker_threads');
const { writeFileSync } = require('node:fs');
import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'src', 'reconcile', 'apply-work.js')).href)}).then(({ ApplyWork, serveApplyWork }) => {
  serveApplyWork(parentPort, new ApplyWork({ log: (line) => {
    if (!line.startsWith(${JSON.stringify(at)})) return;
    writeFileSync(${JSON.stringify(marker)}, line);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  } }));
});`;

const drift = (g: GenerationConfig): string[] | null => detectDrift(expectedOf(request(g), EMPTY_STATE), readLive(instance))?.differences ?? null;
const workers: ApplyWorker[] = [];
const worker = (w: ApplyWorker): ApplyWorker => {
  workers.push(w);
  return w;
};

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the apply worker', () => {
  beforeAll(() => ensureBuilt());
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.close();
    if (existsSync(runDir(instance))) {
      DataPlane.down(instance);
      rmSync(runDir(instance), { recursive: true, force: true });
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('applies and reads back in its thread, answers with the verdict and the listener names, and keeps the state it holds for a drift check', async () => {
    const w = worker(new ApplyWorker({ instance, entry: MAIN }));
    const base = request(BASE);
    const first = await w.applyAndRead(base, EMPTY_STATE, false);
    expect(first.result.changed).toBe(true);
    expect(first.request).toBe(base);
    expect('error' in first.readBack ? first.readBack.error : first.readBack.left, 'the read-back matches').toBeNull();
    expect(!('error' in first.readBack) && first.readBack.names?.listeners.size, 'a name per listener').toBe(40);
    expect(drift(BASE), 'read in this thread: the maps hold BASE').toBeNull();
    expect((await w.readDrift(base, EMPTY_STATE)).finding, 'a drift check of the state the worker holds').toBeNull();

    const next = await w.applyAndRead(request(NEXT), EMPTY_STATE, false);
    expect(next.result.changed).toBe(true);
    expect(drift(NEXT)).toBeNull();
    // The applied state is not what the maps hold any more: the worker's check says so.
    expect((await w.readDrift(base, EMPTY_STATE)).finding?.entries).toBeGreaterThan(0);
    expect(w.started, 'one worker for all of it').toBe(1);
  }, 120_000);

  for (const [at, outcome, live] of [['wrote ', 'rolled-back', BASE], ['flipped to generation', 'completed', NEXT]] as const) {
    it(`stopped at "${at.trim()}": fails once its thread stopped, and recovery leaves exactly ${outcome === 'completed' ? 'the new' : 'the old'} generation`, async () => {
      applyGeneration(request(BASE));
      const marker = join(dir, `stopped-${outcome}`);
      const w = worker(new ApplyWorker({ instance, entry: stoppingWorker(at, marker), eval: true, timeoutMs: 120_000 }));
      const applying = w.applyAndRead(request(NEXT), EMPTY_STATE, false).then(() => null, (err: unknown) => err);
      await until(`the worker to stop at "${at}"`, () => existsSync(marker), 60_000);
      expect(existsSync(journalPath(runDir(instance))), 'the transaction left its journal').toBe(true);
      await w.close();
      const err = await applying;
      expect(isLbError(err, 'LB_APPLY_FAILED') && err.data, 'the request failed with LB_APPLY_FAILED').toMatchObject({ reason: 'stopped' });
      const recovered = recoverInstance(instance);
      expect(recovered?.outcome).toBe(outcome);
      expect(existsSync(journalPath(runDir(instance)))).toBe(false);
      expect(drift(live), 'exactly one generation is live').toBeNull();

      // A fresh worker (the next run's) applies again: its first apply takes the full path.
      const again = worker(new ApplyWorker({ instance, entry: MAIN }));
      const r = await again.applyAndRead(request(NEXT), EMPTY_STATE, false);
      expect(r.result.changed).toBe(outcome === 'rolled-back');
      expect(drift(NEXT)).toBeNull();
    }, 180_000);
  }
});
