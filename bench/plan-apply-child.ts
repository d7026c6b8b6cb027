// One measurement of the plan/apply benchmark, in a fresh process so that its peak RSS is its own
// (bench/plan-apply.ts runs it and reads one JSON line from stdout).
//
//   plan N          N proxies as YAML text: read + schema + semantic checks + compile, the diff
//                   against the compiled state of a variant (every 10th proxy reweighted), and the
//                   text rendering. Pure: no kernel. Beyond the data plane's capacity (16,384
//                   listeners) the checks refuse the config: the time to that verdict is reported.
//   apply N NS      inside network namespace NS (with interface va0): a generation of N map
//                   entries (listeners, groups, source routes) applied to a fresh instance (loaded
//                   before the timing starts, as for raw) by the transaction (ops diff, journal,
//                   batched writes, flip, read-back), then 1% changes in the same process, as
//                   the daemon makes them (each a delta apply,
//                   src/apply/delta.ts, from what this process's own applies left); the first
//                   delta and the median of 11 more (the steady state) are reported.
//   daemon N NS     N proxies (YAML) through the daemon's path: check, plan against the live
//                   instance (the state the previous apply left while the maps still stand there,
//                   else the maps read: src/state/known-live.ts), apply with the desired state
//                   and the verify step, as the daemon's engine makes them (inProcessApplyAndRead);
//                   a full apply into a fresh instance, then two 1% changes.
//   raw N NS        the same N entries written to a fresh instance with plain batched map updates
//                   and one lb_ctl update: the floor the transaction is compared with.

import { performance } from 'node:perf_hooks';
import { runTransaction } from '../src/apply/transaction.js';
import { recoverInstance } from '../src/apply/recover.js';
import { checkConfig } from '../src/core/config/check.js';
import { compileConfig } from '../src/core/compile/compile.js';
import {
  DataPlane, encodeGeneration, flipTo, interfaceIndex, type GenerationConfig,
} from '../src/dataplane/index.js';
import { diffStates } from '../src/core/plan/plan.js';
import { renderText } from '../src/core/plan/render-text.js';
import { withNetns } from '../src/sandbox/netns.js';
import { compileChecked, configDigest, gatherHostFactsKnowing, hostQuestionsOf, KERNEL_PLAN_HOST, planWithFacts } from '../src/apply/prepare.js';
import type { KnownLive } from '../src/state/known-live.js';
import { inProcessApplyAndRead } from '../src/reconcile/applied-read.js';
import { kernelSyncParts } from '../src/reconcile/engine.js';
import { proxiesYaml } from './lib/proxies-yaml.js';

type Out = Record<string, number | string>;

function timed<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const value = fn();
  return [value, performance.now() - t0];
}

function plan(n: number): Out {
  const after = proxiesYaml(n, 10);
  const before = proxiesYaml(n, 0);
  const t0 = performance.now();
  const [checked, checkMs] = timed(() => checkConfig([{ file: 'lb.yaml', text: after }]));
  if (!checked.ok) {
    // Beyond the data plane's capacity (16,384 listeners and groups) a config is refused by the
    // checks, with located errors: that verdict, and what it took, is the figure.
    const capacity = checked.diagnostics.every((d) => / holds at most \d+ \(LB_MAX_/.test(d.message));
    if (!capacity) throw new Error(`generated config invalid: ${JSON.stringify(checked.diagnostics.slice(0, 3))}`);
    process.stderr.write(`refused as expected: ${checked.diagnostics.map((d) => `${d.file}:${d.line}:${d.column}: ${d.message}`).join('; ')}\n`);
    return { proxies: n, totalMs: performance.now() - t0, checkMs, refused: checked.diagnostics.length };
  }
  const [desired, compileMs] = timed(() => compileConfig(checked.config).state);
  const [p, diffMs] = timed(() => {
    const liveChecked = checkConfig([{ file: 'lb.yaml', text: before }]);
    if (!liveChecked.ok) throw new Error('generated live config invalid');
    // The live side's own compile is the stand-in for decoding live maps: not part of plan time.
    const live = compileConfig(liveChecked.config).state;
    const t = performance.now();
    const result = diffStates(desired, live);
    return { result, ms: performance.now() - t };
  });
  const [text, renderMs] = timed(() => renderText(p.result, { color: false }));
  const totalMs = performance.now() - t0 - (diffMs - p.ms);
  return {
    proxies: n, totalMs, checkMs, compileMs, diffMs: p.ms, renderMs,
    changes: p.result.changes.length, planLines: text.split('\n').length,
  };
}

/** A generation of exactly `entries` map entries: listeners, their groups and source routes (1:1:8). */
function generation(entries: number, ifindex: number, variant: number): GenerationConfig {
  const listeners = Math.floor(entries / 10);
  const routes = entries - 2 * listeners;
  const cfg: GenerationConfig = { settings: { tcpIdleSec: 300, udpIdleSec: 60, tcpFinSec: 10, flags: 0 }, listeners: [], groups: [], srcRoutes: [] };
  for (let i = 0; i < listeners; i++) {
    // Variant v > 0 reweights every 100th group, starting at group v: a 1% change from variant 0.
    const w = variant > 0 && i % 100 === variant % 100 ? 70 : 50;
    cfg.listeners.push({
      key: { ifindex, vip: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, port: 80, proto: 6 },
      value: { listenerId: i, defaultGroup: i, flags: 1 },
    });
    cfg.groups.push({ id: i, group: { targets: [
      { addr: `10.1.${(i >> 8) & 255}.${i & 255}`, port: 8080, weight: w, targetId: (2 * i) % 16384 },
      { addr: `10.2.${(i >> 8) & 255}.${i & 255}`, port: 8080, weight: 50, targetId: (2 * i + 1) % 16384 },
    ] } });
  }
  for (let r = 0; r < routes; r++) {
    cfg.srcRoutes.push({ listenerId: r % listeners, addr: `172.${16 + (r >> 16)}.${(r >> 8) & 255}.${r & 255}`, prefixLen: 32, group: (r * 7) % listeners });
  }
  return cfg;
}

function entryCount(cfg: GenerationConfig): number {
  return cfg.listeners.length + cfg.groups.length + cfg.srcRoutes.length + 1;
}

/** 1% changes after the first, for the steady-state figure. */
const STEADY_CHANGES = 11;

function apply(n: number, instance: string): Out {
  const ifindex = interfaceIndex('va0');
  const first = generation(n, ifindex, 0);
  // Loaded (programs verified, maps pinned) outside the timed apply, as raw() does: the two are
  // compared on writing the same entries into the same empty maps. The load is reported apart.
  const [, loadMs] = timed(() => DataPlane.open({ instance }).close());
  const [r1, firstMs] = timed(() => runTransaction({ instance, generation: first, interfaces: ['va0'] }));
  // The second apply fills the other generation (empty until now) whole; from the third on, the
  // inactive generation holds the configuration before last, and an apply writes only the delta
  // (found as a delta apply: this process made the two applies before).
  // Each configuration is built before its timing starts (as the first one is): the figure is the
  // transaction's, not the cost of making 100,000 test objects.
  const second = generation(n, ifindex, 1);
  const [r2, secondMs] = timed(() => runTransaction({ instance, generation: second, interfaces: ['va0'] }));
  const third = generation(n, ifindex, 2);
  const [r3, changeMs] = timed(() => runTransaction({ instance, generation: third, interfaces: ['va0'] }));
  // A daemon applies change after change: the steady state is the median of the ones after the
  // first delta, which also pays V8's compilation of the delta path (changeMs, reported too).
  const later: number[] = [];
  for (let k = 0; k < STEADY_CHANGES; k++) later.push(timed(() => runTransaction({ instance, generation: k % 2 === 0 ? second : third, interfaces: ['va0'] }))[1]);
  later.sort((a, b) => a - b);
  return { entries: entryCount(first), loadMs, firstMs, firstOps: r1.ops, secondMs, secondOps: r2.ops, changeMs, changeOps: r3.ops, steadyMs: later[STEADY_CHANGES >> 1]! };
}

/**
 * The daemon's path for one configuration (src/reconcile/engine.ts without the worker, the lock
 * and the status): check the YAML, plan it against the live instance (compile, the live state,
 * encode, diff), and apply it with the desired LogicalState, so that the read-back decodes and
 * compares it as the daemon's does. The live state is the one the previous call applied (`known`)
 * while the maps still stand where it left them, as the daemon plans (src/state/known-live.ts);
 * the first call reads the maps. Times of each part; the next call's `known`.
 */
function daemonApply(instance: string, text: string, known: KnownLive | undefined): { out: Out; known: KnownLive | undefined } {
  // CPU time (user + system) beside wall time: on a loaded machine the wall time is mostly waiting.
  const cpu = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const t0 = performance.now();
  const c0 = cpu();
  const checked = checkConfig([{ file: 'lb.yaml', text }]);
  if (!checked.ok) throw new Error(`generated config invalid: ${JSON.stringify(checked.diagnostics.slice(0, 3))}`);
  const t1 = performance.now();
  const c1 = cpu();
  // The daemon's plan in three parts, each timed: compile, the host's facts (the live state: what
  // the previous apply left while the maps still stand there, else readLive), encode + diff.
  const compiled = compileChecked({ configPath: 'lb.yaml', config: checked.config, warnings: checked.warnings, files: checked.config.files, configDigest: configDigest([{ file: 'lb.yaml', text }]) });
  const cc = cpu();
  const { facts, liveFrom } = gatherHostFactsKnowing(KERNEL_PLAN_HOST, instance, hostQuestionsOf(compiled.state), known);
  const cf = cpu();
  const planned = planWithFacts(compiled, facts);
  const t2 = performance.now();
  const c2 = cpu();
  const request = {
    instance, generation: planned.encoded.generation, interfaces: planned.desired.interfaces, desired: planned.desired,
    targetIds: planned.encoded.targetIds, configDigest: configDigest([{ file: 'lb.yaml', text }]),
  };
  // The apply and the verify step as the daemon's engine makes them (its apply worker calls the same).
  const applied = inProcessApplyAndRead(kernelSyncParts(instance), request, planned.desired, false);
  const t3 = performance.now();
  const c3 = cpu();
  if ('error' in applied.readBack) throw applied.readBack.error;
  if (applied.readBack.left !== null) throw new Error(`verify: ${applied.readBack.left.differences.join('; ')}`);
  const r = applied.result;
  const mark = applied.mark;
  const out = {
    checkMs: t1 - t0, prepareMs: t2 - t1, applyMs: t3 - t2, totalMs: t3 - t0, ops: r.ops,
    checkCpuMs: c1 - c0, prepareCpuMs: c2 - c1, applyCpuMs: c3 - c2, totalCpuMs: c3 - c0,
    compileCpuMs: cc - c1, hostFactsCpuMs: cf - cc, encodeDiffCpuMs: c2 - cf, liveFrom, verifyFrom: applied.readBack.from,
  };
  const next = mark !== null && mark.serial === r.serial && mark.activeGen === r.activeGen
    ? { desired: planned.desired, targetIds: planned.encoded.targetIds, mark } : undefined;
  return { out, known: next };
}

/**
 * N proxies through the daemon's path (daemonApply): the first into a fresh instance (loaded
 * before, as in apply()), then two 1% changes (every 100th proxy reweighted); the second is the
 * steady state. The figure: the steady change against the full apply, both check to read-back.
 */
function daemon(n: number, instance: string): Out {
  const texts = [proxiesYaml(n, 0, { ifname: 'va0', chained: true }), proxiesYaml(n, 100, { offset: 1, ifname: 'va0', chained: true }), proxiesYaml(n, 100, { offset: 2, ifname: 'va0', chained: true })];
  DataPlane.open({ instance }).close();
  let known: KnownLive | undefined;
  const [full, , change] = texts.map((t) => {
    const r = daemonApply(instance, t, known);
    known = r.known;
    return r.out;
  });
  const out: Out = { proxies: n };
  for (const [name, o] of [['full', full!], ['change', change!]] as const) {
    for (const [k, v] of Object.entries(o)) out[`${name}${k[0]!.toUpperCase()}${k.slice(1)}`] = v;
  }
  return out;
}

function raw(n: number, instance: string): Out {
  const ifindex = interfaceIndex('va0');
  const cfg = generation(n, ifindex, 0);
  const dp = DataPlane.open({ instance });
  try {
    const enc = encodeGeneration(1, cfg);
    const [, ms] = timed(() => {
      dp.maps.lb_settings.updateBatch([[Buffer.from([1, 0, 0, 0]), enc.settings]]);
      dp.maps.lb_groups.updateBatch(enc.groups);
      dp.maps.lb_src_routes.updateBatch(enc.srcRoutes);
      dp.maps.lb_listeners.updateBatch(enc.listeners);
      flipTo(dp, 1);
    });
    return { entries: entryCount(cfg), rawMs: ms };
  } finally {
    dp.close();
  }
}

function main(): void {
  const [mode, nText, ns, instance] = process.argv.slice(2);
  const n = Number(nText);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`usage: plan-apply-child plan|apply|raw|daemon N [NS INSTANCE]`);
  let out: Out;
  if (mode === 'plan') out = plan(n);
  else if ((mode === 'apply' || mode === 'raw' || mode === 'daemon') && ns && instance) {
    out = withNetns(ns, () => {
      recoverInstance(instance);
      return mode === 'apply' ? apply(n, instance) : mode === 'raw' ? raw(n, instance) : daemon(n, instance);
    });
  } else throw new Error(`unknown mode ${mode}`);
  out.maxRssMiB = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main();
