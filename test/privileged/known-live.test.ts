// The daemon plans against the state it applied last instead of reading the maps, while lb_ctl and
// the config maps stand where its apply left them (src/state/known-live.ts). The real reconcile
// loop (Reconciler, the kernel engine in-process and with its worker threads, a file source)
// applies a series of configs to a real instance on a veth in a namespace of this test: changes of
// every kind, a drift healed, an apply failed before the flip (nothing moved: memory still holds)
// and one failed after it (rolled back, lb_ctl moved), lb_ctl moved by hand, an interface
// re-created, the inventory removed, the maps replaced with lb_ctl brought back to the remembered
// generation and serial, drift found and not healed. Before every plan the engine under test also
// plans against the maps (readLive): the remembered state must equal what readLive returns, and the
// plan lines and summary the status shows, and `lb plan`'s text, must be identical either way;
// where anything moved, the plan must have read the maps. Needs root; fails (never skips) without it.
//
// The test's thread enters the namespace for the whole file (enterNetns, not withNetns): the loop
// is asynchronous, and its kernel work runs on this thread. Files run in forked processes
// (vitest.config.ts), so nothing else of the runner is in the namespace.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelEngineOptions, PlannedRevision, PrepareRequest, ReconcileEngine } from '../../src/reconcile/index.js';
import { ensureBuilt } from '../lib/build.js';
import { ROOT } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('known-live.test.ts must run as root: it loads BPF programs');

// Everything from the build: the daemon's worker threads run the compiled modules, and the native
// bindings must be loaded once per process (one copy of the modules).
ensureBuilt();
const built = async <T>(path: string): Promise<T> => (await import(pathToFileURL(join(ROOT, 'dist', 'src', path)).href)) as T;
const { applyGeneration, forgetApplied, stableJson } = await built<typeof import('../../src/apply/index.js')>('apply/index.js');
const { diffStates } = await built<typeof import('../../src/core/plan/plan.js')>('core/plan/plan.js');
const { renderText } = await built<typeof import('../../src/core/plan/render-text.js')>('core/plan/render-text.js');
const { DataPlane, flipTo, readCtl } = await built<typeof import('../../src/dataplane/index.js')>('dataplane/index.js');
const { kernelEngine, Reconciler } = await built<typeof import('../../src/reconcile/index.js')>('reconcile/index.js');
const { FileSource } = await built<typeof import('../../src/source/file-source.js')>('source/file-source.js');
const { enterNetns } = await built<typeof import('../../src/sandbox/netns.js')>('sandbox/netns.js');
const { readKnownLive, readLiveMark } = await built<typeof import('../../src/state/known-live.js')>('state/known-live.js');
const { readLive } = await built<typeof import('../../src/state/live.js')>('state/live.js');
const { runDir } = await built<typeof import('../../src/state/run-dir.js')>('state/run-dir.js');
const { inventoryPath } = await built<typeof import('../../src/state/inventory.js')>('state/inventory.js');
const { readBackKnown, readBackOf } = await built<typeof import('../../src/reconcile/applied-read.js')>('reconcile/applied-read.js');

const tag = `${process.pid}${randomBytes(2).toString('hex')}`;
const ns = `lbkl${tag}`;
const instance = `t-kl-${tag}`;
const dir = mkdtempSync(join(tmpdir(), 'lb-known-live-'));
const configFile = join(dir, 'lb.yaml');

/**
 * 30 proxies on va0 (every 3rd with a source route, every 5th persistent: Maglev tables), in
 * variants: variant v reweights two proxies, from v 2 on proxy 29 is replaced by proxy 30 (a
 * listener deleted, one created), from v 3 on the settings differ, from v 4 on proxy 6 gains a route.
 */
function configText(v: number): string {
  const ids = [...Array.from({ length: 29 }, (_, i) => i), v >= 2 ? 30 : 29];
  const proxies = ids.map((i) => {
    const w = i === (v * 7) % 30 || i === (v * 11 + 3) % 30 ? 60 + v : 50;
    const routes = i % 3 === 0 || (v >= 4 && i === 6)
      ? [`    source-routes:`, `      - {source: 192.168.${i}.0/24, target: {ip: 10.79.0.${i + 1}, port: 8080}}`,
        ...(v >= 4 && i === 6 ? [`      - {source: 172.20.0.0/16, target: {ip: 10.79.1.${i + 1}, port: 8080}}`] : [])]
      : [];
    return [
      `  - name: svc-${i}`,
      `    listen: {interfaces: [va0], port: ${1000 + i}, address: 10.77.0.1}`,
      `    default-target:`,
      `      - {ip: 10.78.0.${i + 1}, port: 8080, weight: ${w}}`,
      `      - {ip: 10.78.1.${i + 1}, port: 8080, weight: 50}`,
      ...routes,
      `    session-persistence: ${i % 5 === 0}`,
    ].join('\n');
  });
  return `proxies:\n${proxies.join('\n')}\nsettings: {connection-timeout-sec: ${v >= 3 ? 120 : 300}}\n`;
}

/** What the engine under test saw at one plan. */
interface PlanRecord {
  step: string;
  /** The loop offered what it knows (it applied and verified, and no drift was found since). */
  offered: boolean;
  liveFrom: PlannedRevision['liveFrom'];
  /** readKnownLive's answer at that moment: null when it refused (anything moved). */
  view: 'refused' | 'equal' | 'different' | 'not offered';
  sameChanges: boolean;
  sameSummary: boolean;
  sameText: boolean;
  changes: number;
}

const records: PlanRecord[] = [];

/** What the engine under test verified after one apply, and whether a read of the maps would have said the same. */
interface VerifyRecord { step: string; from: 'memory' | 'maps'; sameAsMaps: boolean }
const verifies: VerifyRecord[] = [];

/** A read-back as comparable text (the listener names are a Map: compared by id, not in insertion order). */
function readBackText(r: { left: unknown; dataPlane: unknown; names: { serial: number; named: boolean; settings: unknown; listeners: Map<number, unknown> } | null }): string {
  return stableJson({ left: r.left, dataPlane: r.dataPlane, names: r.names && { ...r.names, listeners: [...r.names.listeners].sort((a, b) => a[0] - b[0]) } });
}
let step = '';
/** The next apply fails at this point (ApplyRequest.faultAt, thrown), then applies run normally. */
let failNext: number | 'after-flip' | undefined;

/** The kernel engine (in-process, or the daemon's with its worker threads), planning twice: with what the loop knows (used), and against the maps (compared). */
function recordingEngine(options: KernelEngineOptions = {}): ReconcileEngine {
  const base = kernelEngine(instance, options);
  return {
    ...base,
    prepare: async (req: PrepareRequest) => {
      const used = await base.prepare(req);
      const { known, ...withoutKnown } = req;
      const read = await base.prepare(withoutKnown);
      const live = readLive(instance);
      const view = known ? readKnownLive(instance, known) : undefined;
      const text = (p: PlannedRevision, liveState: typeof live.state): string => renderText(diffStates(p.desired, liveState), { color: false });
      records.push({
        step, offered: known !== undefined, liveFrom: used.liveFrom,
        view: view === undefined ? 'not offered' : view === null ? 'refused'
          : stableJson(view.state) === stableJson(live.state) && stableJson([...view.targetIds]) === stableJson([...live.targetIds]) ? 'equal' : 'different',
        sameChanges: stableJson(used.changes) === stableJson(read.changes),
        sameSummary: stableJson(used.summary) === stableJson(read.summary),
        // `lb plan`'s text: the plan against the live state each side diffed against.
        sameText: text(used, (view ?? live).state) === text(read, live.state),
        changes: used.changes.length,
      });
      if (read.liveFrom !== 'maps') throw new Error(`a plan without what the loop knows came from ${read.liveFrom}`);
      return used;
    },
    applyAndRead: async (req, desired, opts) => {
      const at = failNext;
      failNext = undefined;
      const applied = await base.applyAndRead(at === undefined ? req : { ...req, faultAt: at, faultAction: 'throw' }, desired, opts);
      // The verify the loop gets, against a verify that reads and compares the whole generation.
      if (!('error' in applied.readBack)) {
        const maps = readBackOf(readLive(instance), applied.request, desired);
        verifies.push({ step, from: applied.readBack.from, sameAsMaps: readBackText(applied.readBack) === readBackText(maps) });
      }
      return applied;
    },
  };
}

let leave: (() => void) | undefined;
let loop: InstanceType<typeof Reconciler> | undefined;
let variant = 0;

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** Writes the next variant and runs the loop on it; returns the plan record and the outcome. */
async function reconcile(name: string, v = ++variant): Promise<{ record: PlanRecord | undefined; result: string | undefined }> {
  step = name;
  writeFileSync(configFile, configText(v));
  const before = records.length;
  loop!.trigger('manual', name);
  await loop!.whenIdle();
  return { record: records.length > before ? records.at(-1) : undefined, result: loop!.lastOutcome?.result };
}

/** The plan used what the loop knows, which equals what readLive returns, and every view of the plan is identical. */
function expectFromMemory(r: PlanRecord | undefined): void {
  expect(r).toMatchObject({ offered: true, liveFrom: 'memory', view: 'equal', sameChanges: true, sameSummary: true, sameText: true });
}

/** The plan read the maps although the loop offered what it knows: something moved. */
function expectFromMaps(r: PlanRecord | undefined): void {
  expect(r).toMatchObject({ liveFrom: 'maps', sameChanges: true, sameSummary: true, sameText: true });
  expect(r!.view === 'refused' || r!.view === 'not offered').toBe(true);
}

/** The reconcile loop on the config file, with the recording engine; retries only when the test asks. */
function newLoop(engine: KernelEngineOptions = {}, extra: { selfHeal?: boolean } = {}): InstanceType<typeof Reconciler> {
  return new Reconciler({
    instance, node: 'test', source: new FileSource({ path: configFile }), sourceInfo: { kind: 'file', url: configFile, ref: '', path: '' },
    engine: recordingEngine(engine), retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: 0 }, ...extra,
  });
}

beforeAll(() => {
  ip(['netns', 'add', ns]);
  ip(['link', 'add', 'va0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'vb0', 'netns', ns]);
  ip(['-n', ns, 'link', 'set', 'va0', 'up']);
  ip(['-n', ns, 'link', 'set', 'vb0', 'up']);
  leave = enterNetns(ns);
  loop = newLoop();
});

afterAll(async () => {
  try {
    await loop?.stop();
  } finally {
    try {
      forgetApplied(instance);
      DataPlane.down(instance);
    } finally {
      leave?.();
      spawnSync('ip', ['netns', 'del', ns], { timeout: 30_000 });
      rmSync(runDir(instance), { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

describe('the daemon plans against what it applied while nothing moved', () => {
  it('the first plan reads the maps; changes of every kind are planned from memory, identically', async () => {
    const first = await reconcile('first');
    expect(first.result).toBe('applied');
    expect(first.record).toMatchObject({ offered: false, liveFrom: 'maps', view: 'not offered', sameChanges: true });
    for (const name of ['reweight', 'listener replaced', 'settings', 'route added']) {
      const { record, result } = await reconcile(name);
      expect(result, name).toBe('applied');
      expectFromMemory(record);
      expect(record!.changes, name).toBeGreaterThan(0);
    }
    // Each apply's verify step was made from what the apply wrote (it read back its own entries),
    // and says what a read and comparison of the whole generation says.
    expect(verifies.map((v) => v.step)).toEqual(['first', 'reweight', 'listener replaced', 'settings', 'route added']);
    expect(verifies.every((v) => v.from === 'memory' && v.sameAsMaps)).toBe(true);
  });

  it('the verify from memory still reads the attachments: programs detached behind the loop are found', () => {
    const applied = loop!.appliedState!;
    const known = { desired: applied.desired, targetIds: applied.request.targetIds ?? new Map<string, number>(), mark: applied.mark! };
    const dp = DataPlane.open({ instance });
    try {
      dp.detach('va0');
    } finally {
      dp.close();
    }
    const view = readKnownLive(instance, known);
    expect(view).not.toBeNull();
    const fromMemory = readBackKnown(view!, applied.request, applied.desired);
    expect(fromMemory.left?.differences).toContain("interface va0: lb's programs are not attached");
    expect(readBackText(fromMemory)).toBe(readBackText(readBackOf(readLive(instance), applied.request, applied.desired)));
  });

  it('after drift is found and healed, the healed state is what the next plan starts from', async () => {
    const live = readLive(instance);
    const dp = DataPlane.open({ instance });
    try {
      // A listener of the active generation deleted behind the loop's back.
      dp.maps.lb_listeners.delete(live.raw.listeners[0]![0]);
    } finally {
      dp.close();
    }
    const drift = await loop!.checkDriftNow();
    expect(drift).toMatchObject({ healed: true });
    // The deleted listener, and va0's programs the test before detached.
    expect(drift.finding!.entries).toBeGreaterThan(1);
    expect(drift.finding!.differences).toContain("interface va0: lb's programs are not attached");
    const { record, result } = await reconcile('after heal');
    expect(result).toBe('applied');
    expectFromMemory(record);
    expect(verifies.at(-1)).toMatchObject({ step: 'after heal', from: 'memory', sameAsMaps: true });
  });

  it('an apply failed before the flip moves nothing: memory still holds', async () => {
    failNext = 0;
    const failed = await reconcile('failed before the flip');
    expect(failed.result === 'failed' || failed.result === 'stalled').toBe(true);
    expectFromMemory(failed.record);
    const { record, result } = await reconcile('after the failure before the flip');
    expect(result).toBe('applied');
    expectFromMemory(record);
  });

  it('an apply failed after the flip is rolled back, lb_ctl moved: the next plan reads the maps', async () => {
    failNext = 'after-flip';
    const failed = await reconcile('failed after the flip');
    expect(failed.result === 'failed' || failed.result === 'stalled').toBe(true);
    const { record, result } = await reconcile('after the rollback');
    expect(result).toBe('applied');
    expectFromMaps(record);
    expect(record!.view).toBe('refused');
    expectFromMemory((await reconcile('steady after the rollback')).record);
  });

  it('lb_ctl moved by hand: the plan reads the maps', async () => {
    const dp = DataPlane.open({ instance });
    try {
      flipTo(dp, readCtl(dp).activeGen);
    } finally {
      dp.close();
    }
    const { record, result } = await reconcile('serial moved');
    expect(result).toBe('applied');
    expectFromMaps(record);
    expect(record!.view).toBe('refused');
  });

  it('an interface re-created with a new ifindex, or the inventory gone: the plan reads the maps', async () => {
    // Deleted and created again (a container restart): lb's programs went with it, and the listener
    // keys name the old ifindex. The plan against the maps shows both; memory must not be used.
    ip(['-n', ns, 'link', 'del', 'va0']);
    ip(['link', 'add', 'va0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'vb0', 'netns', ns]);
    ip(['-n', ns, 'link', 'set', 'va0', 'up']);
    ip(['-n', ns, 'link', 'set', 'vb0', 'up']);
    const recreated = await reconcile('interface re-created');
    expect(recreated.result).toBe('applied');
    expectFromMaps(recreated.record);
    expect(recreated.record!.view).toBe('refused');
    expectFromMemory((await reconcile('steady after the re-creation')).record);

    rmSync(inventoryPath(runDir(instance)));
    const noInventory = await reconcile('inventory gone');
    expect(noInventory.result).toBe('applied');
    expectFromMaps(noInventory.record);
    expect(noInventory.record!.view).toBe('refused');
    expectFromMemory((await reconcile('steady after the inventory')).record);
  });

  it('maps replaced, lb_ctl at the remembered generation and serial: the plan reads the maps', async () => {
    const applied = loop!.appliedState!;
    const mark = applied.mark!;
    expect(mark).toBeDefined();
    expect(readLiveMark(instance)).toEqual(mark);
    // Another process takes the instance down and applies the same state to fresh maps, then lb_ctl
    // is flipped until it shows the remembered generation and serial: only the map ids differ.
    forgetApplied(instance);
    DataPlane.down(instance);
    const again = { instance, generation: applied.request.generation, interfaces: applied.request.interfaces, desired: applied.desired, ...(applied.request.targetIds ? { targetIds: applied.request.targetIds } : {}) };
    applyGeneration(again);
    const dp = DataPlane.open({ instance });
    try {
      if (readCtl(dp).activeGen !== mark.activeGen) {
        applyGeneration({ instance, generation: { settings: again.generation.settings, listeners: [], groups: [], srcRoutes: [] }, interfaces: again.interfaces });
        applyGeneration(again);
      }
      expect(readCtl(dp).serial).toBeLessThanOrEqual(mark.serial);
      for (let i = 0; i < 10_000 && readCtl(dp).serial < mark.serial; i++) flipTo(dp, mark.activeGen);
    } finally {
      dp.close();
    }
    const now = readLiveMark(instance)!;
    expect({ activeGen: now.activeGen, serial: now.serial }).toEqual({ activeGen: mark.activeGen, serial: mark.serial });
    expect(now.mapIds).not.toBe(mark.mapIds);
    const { record, result } = await reconcile('maps replaced');
    expect(result).toBe('applied');
    expectFromMaps(record);
    expect(record!.view).toBe('refused');
    expectFromMemory((await reconcile('steady after the replacement')).record);
  });
  it('the daemon\'s worker threads: the apply worker hands back where the maps stand, the next plan is made from memory', async () => {
    await loop!.stop();
    // Worker threads started from this thread are in the namespace too (a thread inherits it).
    loop = newLoop({ worker: {} });
    const first = await reconcile('workers first');
    expect(first.result).toBe('applied');
    expect(first.record).toMatchObject({ offered: false, liveFrom: 'maps' });
    for (const name of ['workers change', 'workers change again']) {
      const { record, result } = await reconcile(name);
      expect(result, name).toBe('applied');
      expectFromMemory(record);
    }
  });

  it('drift found and not healed: the loop stops offering what it knows, and the next plan reads the maps', async () => {
    // A loop that only reports drift (self-heal off), on the same instance: its first plan reads the maps.
    await loop!.stop();
    loop = newLoop({}, { selfHeal: false });
    const first = await reconcile('quiet loop first');
    expect(first.result).toBe('applied');
    expect(first.record).toMatchObject({ offered: false, liveFrom: 'maps' });
    expectFromMemory((await reconcile('quiet loop change')).record);
    const live = readLive(instance);
    const dp = DataPlane.open({ instance });
    try {
      dp.maps.lb_listeners.delete(live.raw.listeners[0]![0]);
    } finally {
      dp.close();
    }
    expect(await loop!.checkDriftNow()).toMatchObject({ healed: false });
    expect(loop!.appliedState!.mark).toBeUndefined();
    // The plan shows the deleted listener as a create, as a plan against the maps does.
    const { record } = await reconcile('after unhealed drift');
    expect(record).toMatchObject({ offered: false, liveFrom: 'maps', view: 'not offered' });
  });
});
