// The daemon's prepare worker (src/reconcile/prepare-worker.ts and its parts):
// - values cross in slices and come back equal (Maps, Buffers, big arrays anywhere);
// - the runtime's answers, tabulated as data, compile to the same state as the functions;
// - the worker's work, run in-process, plans what planCheckedConfig plans;
// - a worker that does not answer in time, crashes or runs out of memory fails the request with
//   LB_DAEMON_PREPARE, and the next request starts a fresh worker; errors cross as their classes;
// - a run whose worker failed is a transient failure and the applied revision keeps serving.
// The real worker entry runs from dist/ (test/e2e/daemon-responsive.test.ts); here the worker
// threads run small scripts, so no build is needed.
import { afterAll, describe, expect, it } from 'vitest';
import { checkConfigAt, planCheckedConfig, type CheckedConfig, type HostFacts, type HostQuestions } from '../../../src/apply/prepare.js';
import { compileConfig, type RuntimeInputs } from '../../../src/core/compile/compile.js';
import { ConfigError } from '../../../src/core/config/config-error.js';
import { isLbError, LbError } from '../../../src/core/errors.js';
import { Reconciler } from '../../../src/reconcile/index.js';
import { errorFromWire, errorToWire, inputsFromTable, tabulateInputs, type WorkerPlan } from '../../../src/reconcile/prepare-protocol.js';
import { PrepareWork } from '../../../src/reconcile/prepare-work.js';
import { PrepareWorker } from '../../../src/reconcile/prepare-worker.js';
import { deserializeSliced, serializeSliced } from '../../../src/reconcile/transfer.js';
import { config, FakeEngine, FakeSource, removeRevisions, revision } from './fakes.js';

afterAll(removeRevisions);

describe('sliced transfer', () => {
  it('rebuilds a value with big arrays and Maps at any depth, a slice at a time, Buffers as Buffers', async () => {
    const value = {
      list: Array.from({ length: 1234 }, (_, i) => ({ i, name: `n${i}` })),
      nested: { small: [1, 2, 3], big: Array.from({ length: 450 }, (_, i) => [i, String(i)]) },
      ids: new Map(Array.from({ length: 700 }, (_, i) => [`10.0.${i >> 8}.${i & 255}:80`, i])),
      bytes: Buffer.from('lb'),
      none: null,
      keys: Array.from({ length: 250 }, (_, i) => ({ i, key: Buffer.from([i & 255]) })),
    };
    const parts = [...serializeSliced(value, 200)];
    // The skeleton, then ceil(1234/200) + ceil(450/200) + ceil(700/200) + ceil(250/200) slices.
    expect(parts).toHaveLength(1 + 7 + 3 + 4 + 2);
    // Each part's last byte says whether it holds Buffers to revive (the receiver skips the walk otherwise).
    expect(parts.map((p) => new Uint8Array(p).at(-1))).toEqual([1, ...Array<number>(14).fill(0), 1, 1]);
    let pauses = 0;
    const back = await deserializeSliced<typeof value>(parts, async () => { pauses += 1; });
    expect(pauses).toBe(16);
    expect(back).toEqual(value);
    expect(Buffer.isBuffer(back.bytes)).toBe(true);
    expect(back.keys.every((k) => Buffer.isBuffer(k.key))).toBe(true);
    expect(back.ids).toBeInstanceOf(Map);
  });

  it('refuses parts that do not add up', async () => {
    const parts = [...serializeSliced({ a: Array.from({ length: 10 }, (_, i) => i) }, 4)];
    await expect(deserializeSliced(parts.slice(0, -1))).rejects.toThrow(/end before cut/);
    await expect(deserializeSliced([...parts, parts[1]!])).rejects.toThrow(/left over/);
  });
});

describe('runtime inputs as data', () => {
  it('compiles to the same state and warnings as the runtime functions', async () => {
    const checked = await checkConfigAt(revision(`${config([1, 2, 3])}  - name: dns
    listen: {interfaces: [lo], port: 81, address: 10.0.0.11}
    default-target:
      - {host: api.internal, port: 8080, weight: 4}
      - {host: gone.internal, port: 8080, weight: 4}
`).configPath);
    const inputs: RuntimeInputs = {
      effectiveWeight: (proxy, _group, t) => (proxy === 'web' && t.kind === 'ip' && t.ip === '10.0.1.2' ? 0 : t.kind === 'host' ? 3 : undefined),
      resolve: (host) => (host === 'api.internal' ? ['10.0.9.2', '10.0.9.1'] : undefined),
    };
    const table = await tabulateInputs(checked.config, inputs);
    // The worker's copy of the config is another object tree: the table is walked over it.
    const copy = structuredClone(checked.config);
    expect(compileConfig(copy, inputsFromTable(copy, table))).toEqual(compileConfig(checked.config, inputs));
    expect(() => inputsFromTable({ ...copy, proxies: copy.proxies.slice(1) }, table)).toThrow(/differs from the one tabulated/);
  });
});

describe('the worker\'s work, in-process', () => {
  it('plans what planCheckedConfig plans', async () => {
    const engine = new FakeEngine();
    const path = revision(config([2, 1])).configPath;
    const direct = planCheckedConfig(await checkConfigAt(path), { instance: 'unit', revision: 'r', host: engine.host });

    const work = new PrepareWork();
    const checked = await deserializeSliced<CheckedConfig>(await work.handle({ type: 'check', configPath: path }));
    expect(checked.configDigest).toBe(direct.configDigest);
    const questions = await deserializeSliced<HostQuestions>(await work.handle({ type: 'compile', inputs: [...serializeSliced({})] }));
    expect(questions.ifindexNames).toEqual(['lo']);
    const facts: HostFacts = {
      paths: engine.host.choosePaths(questions.interfaces, questions.paths), ifindexes: { lo: 1 },
      liveTargetIds: engine.live.targetIds, liveState: engine.live.state,
    };
    const planned = await deserializeSliced<WorkerPlan>(await work.handle({ type: 'finish', facts: [...serializeSliced(facts)] }));
    expect(planned.desired).toEqual(direct.desired);
    expect(planned.encoded).toEqual(direct.encoded);
    expect(planned.summary).toEqual(direct.plan.summary);
    expect(planned.changes.length).toBeGreaterThan(0);
    await expect(work.handle({ type: 'finish', facts: [...serializeSliced(facts)] })).rejects.toThrow(/finish before compile/);
  });
});

describe('errors across the boundary', () => {
  it('a ConfigError comes back a ConfigError with its diagnostics; an LbError with its code and data', async () => {
    let configError: unknown;
    try {
      await checkConfigAt(revision(config([1]).replace('port: 80', 'port: eighty')).configPath);
    } catch (err) {
      configError = err;
    }
    const back = errorFromWire(structuredClone(errorToWire(configError)));
    expect(back).toBeInstanceOf(ConfigError);
    expect((back as ConfigError).diagnostics).toEqual((configError as ConfigError).diagnostics);
    expect(back.message).toBe((configError as Error).message);

    const lb = errorFromWire(structuredClone(errorToWire(new LbError('LB_COMPILE_IFACE', 'no such network interface: eth9', { names: ['eth9'] }))));
    expect(isLbError(lb, 'LB_COMPILE_IFACE') && lb.data).toEqual({ names: ['eth9'] });
    expect(errorFromWire(errorToWire(new TypeError('boom')))).toMatchObject({ name: 'TypeError', message: 'boom' });
  });
});

/** A worker script (CommonJS, eval) answering each request with `body` (a function of the request). */
const script = (body: string): string => `const { parentPort } = require('node:worker_threads');
parentPort.on('message', (req) => { ${body} });`;

async function failure(p: Promise<unknown>): Promise<LbError> {
  try {
    await p;
  } catch (err) {
    if (isLbError(err, 'LB_DAEMON_PREPARE')) return err;
    throw err;
  }
  throw new Error('expected LB_DAEMON_PREPARE');
}

describe('PrepareWorker: deadline, crash, out of memory', () => {
  it('a worker that does not answer in time is stopped; the next request starts a fresh worker', async () => {
    const w = new PrepareWorker({ entry: script('/* never answers */'), eval: true, timeoutMs: 300 });
    const err = await failure(w.check('/nowhere'));
    expect(err.message).toMatch(/did not answer check .* within 300 ms; it was stopped/);
    expect(err.data).toMatchObject({ reason: 'timeout', timeoutMs: 300 });
    await failure(w.check('/nowhere'));
    expect(w.started).toBe(2);
    await w.close();
  });

  it('a worker that crashes fails the request, not the process', async () => {
    const w = new PrepareWorker({ entry: script('throw new Error("worker bug")'), eval: true, timeoutMs: 20_000 });
    const err = await failure(w.check('/nowhere'));
    expect(err.message).toMatch(/failed during check .*: worker bug/);
    expect(err.data).toMatchObject({ reason: 'crashed' });
    await w.close();
  });

  it('a worker that exhausts its heap limit fails the request with out-of-memory', async () => {
    const w = new PrepareWorker({ entry: script('const keep = []; for (;;) keep.push(new Array(1e5).fill({ x: keep.length }));'), eval: true, timeoutMs: 60_000, maxHeapMb: 32 });
    const err = await failure(w.check('/nowhere'));
    expect(err.message).toMatch(/ran out of memory \(heap limit 32 MiB\)/);
    expect(err.data).toMatchObject({ reason: 'out-of-memory' });
    await w.close();
  });

  it('an error the worker reports comes back as its class', async () => {
    const reply = JSON.stringify({ ok: false, error: errorToWire(new LbError('LB_CONFIG_IO', 'cannot read /x', { file: '/x' })) });
    const w = new PrepareWorker({ entry: script(`parentPort.postMessage(${reply})`), eval: true });
    const err = await w.check('/x').then(() => undefined, (e: unknown) => e);
    expect(isLbError(err, 'LB_CONFIG_IO') && err.data).toEqual({ file: '/x' });
    await w.close();
  });
});

describe('a run whose prepare worker failed', () => {
  it('fails transiently with PrepareWorkerFailed; the applied revision keeps serving', async () => {
    const source = new FakeSource();
    const engine = new FakeEngine();
    let failCheck = false;
    const check = engine.check.bind(engine);
    engine.check = (path: string) => (failCheck
      ? Promise.reject(new LbError('LB_DAEMON_PREPARE', 'the prepare worker did not answer check within 30000 ms; it was stopped', { reason: 'timeout' }))
      : check(path));
    const r = new Reconciler({ instance: 'unit', node: 'n1', source, engine, sourceInfo: { kind: 'git', url: 'u', ref: 'main', path: '' }, retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } });
    const good = revision(config([1, 1]));
    source.current = good;
    r.trigger('poll');
    await r.whenIdle();
    failCheck = true;
    source.current = revision(config([2, 1]));
    r.trigger('poll');
    await r.whenIdle();
    expect(r.lastOutcome).toMatchObject({ result: 'failed', failure: { step: 'validate', disposition: 'transient', reason: 'PrepareWorkerFailed', code: 'LB_DAEMON_PREPARE' } });
    expect(r.report()).toMatchObject({ result: 'failed', lastAppliedRevision: good.revision });
    expect(r.readiness().ready).toBe(true);
    expect(engine.applies).toHaveLength(1);
    await r.stop();
  });
});
