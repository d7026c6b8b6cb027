// The apply transaction: makes the data plane hold one desired generation, all of it or none of
// it. docs/apply.md walks through the steps and what a crash at each point leaves behind.
//
//   journal -> attach -> raw ops on the INACTIVE generation -> flip (one lb_ctl update) -> read back
//   -> detach -> inventory -> remove journal
//
// Packets only ever read the active generation, so the raw ops are invisible to traffic and the
// flip is the one instant the configuration changes. Every failure before the read-back has
// passed is undone exactly: the inactive generation gets its saved bytes back, a flip is flipped
// back, interfaces this apply attached are detached, and the error says nothing changed.
// The caller holds the instance lock and has recovered any leftover journal (src/apply/index.ts).

import { createHash } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { checkMaglevTables, decodeGeneration as decodeLogical } from '../core/compile/decode.js';
import {
  DataPlane, decodeGeneration as decodeRaw, enableRouteLocalnet, encodeGeneration, flipTo, interfaceIndex, interfaceName, routeLocalnet, readCtl, readGenerationRaw, readGenerationsRaw,
  type Ctl, type EncodedGeneration, type GenerationConfig,
} from '../dataplane/index.js';
import { choosePaths } from '../dataplane/data-paths.js';
import { LbError, isLbError } from '../core/errors.js';
import { INVENTORY_FORMAT_VERSION, writeInventory, type Inventory } from '../state/inventory.js';
import { isAttached } from '../state/live.js';
import { ensureDir, runDir } from '../state/run-dir.js';
import { listenerKey, type LogicalState } from '../core/state.js';
import { readJournal, removeJournal, writeJournal, type Journal } from './journal.js';
import {
  canonicalText, diffGeneration, firstDifference, restoreOps, type ConfigMapName, type RawOp, type SavedEntry,
} from '../core/ops.js';
import { executeOps } from './execute-ops.js';

/**
 * Where an injected fault strikes: a number n stops before raw op n (n >= the op count: just
 * before the flip); 'after-flip' right after the flip, before the read-back; 'commit' after the
 * read-back passed, before interfaces are detached, the inventory written and the journal removed.
 */
export type FaultPoint = number | 'after-flip' | 'commit';
/** throw: an LbError LB_APPLY_FAULT (the transaction handles it like any failure); kill: SIGKILL. */
export type FaultAction = 'throw' | 'kill';

export interface ApplyRequest {
  instance: string;
  /** What the target generation must hold (ids included), as encodeState made it. */
  generation: GenerationConfig;
  /** The interfaces that must run lb's programs afterwards: others running them are detached. */
  interfaces: readonly string[];
  /** The same configuration in operator terms: when given, the read-back is decoded and compared to it too. */
  desired?: LogicalState;
  /** "addr:port" -> target id, as encodeState assigned them (recorded in the inventory). */
  targetIds?: ReadonlyMap<string, number>;
  revision?: string | null;
  configDigest?: string | null;
  /** Where lb_xdp.bpf.o and lb_tc.bpf.o are when the instance must be loaded. */
  objectDir?: string;
  /** Fault injection for tests (see FaultPoint); none in production. */
  faultAt?: FaultPoint;
  faultAction?: FaultAction;
  /** Progress lines (attach, ops, flip, detach), for --verbose. */
  log?: (line: string) => void;
}

export interface ApplyResult {
  instance: string;
  /** False when the live configuration already was the desired one: nothing was written. */
  changed: boolean;
  activeGen: number;
  serial: number;
  /** Raw map operations executed. */
  ops: number;
  attached: string[];
  detached: string[];
  warnings: string[];
}

/** Parses LB_FAULT_INJECT: `<n>`, `after-flip` or `commit`, optionally `:throw` or `:kill` (default kill). */
export function parseFaultSpec(text: string | undefined): { at: FaultPoint; action: FaultAction } | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const m = /^\s*(\d+|after-flip|commit)(?::(throw|kill))?\s*$/.exec(text);
  if (!m) throw new LbError('LB_APPLY_FAULT', `LB_FAULT_INJECT=${JSON.stringify(text)} is not <op index>, after-flip or commit (optionally :throw or :kill)`, { value: text });
  return { at: /^\d+$/.test(m[1]!) ? Number(m[1]) : (m[1] as 'after-flip' | 'commit'), action: (m[2] as FaultAction | undefined) ?? 'kill' };
}

/** The network namespace this process runs in, e.g. "net:[4026531840]" (interfaces are per namespace). */
export function currentNetns(): string {
  try {
    return readlinkSync('/proc/thread-self/ns/net');
  } catch {
    return 'unknown';
  }
}

export function generationDigest(raw: EncodedGeneration): string {
  return createHash('sha256').update(canonicalText(raw)).digest('hex');
}

/** Runs the transaction. The caller holds the instance lock and has recovered leftovers. */
export function runTransaction(req: ApplyRequest): ApplyResult {
  const log = req.log ?? ((): void => undefined);
  const dir = ensureDir(runDir(req.instance));
  if (readJournal(dir) !== null) {
    throw new LbError('LB_APPLY_JOURNAL', `instance ${req.instance} has an unfinished apply journal; recover it first (\`lb plan\` or \`lb apply\` do)`, { instance: req.instance });
  }
  const dp = DataPlane.open({ instance: req.instance, ...(req.objectDir ? { objectDir: req.objectDir } : {}) });
  try {
    return transact(dp, dir, req, log);
  } catch (err) {
    // An instance this apply loaded goes again when the apply failed: "nothing changed" includes the pins.
    if (!dp.adopted && isLbError(err, 'LB_APPLY_FAILED')) {
      dp.close();
      DataPlane.down(req.instance);
    }
    throw err;
  } finally {
    dp.close();
  }
}

function transact(dp: DataPlane, dir: string, req: ApplyRequest, log: (line: string) => void): ApplyResult {
  const oldCtl = readCtl(dp);
  const targetGen = 1 - oldCtl.activeGen;
  const wanted = [...new Set(req.interfaces)].sort();
  const paths = choosePaths(wanted, req.desired?.paths);
  const before = dp.attachments();
  const attachedBefore = new Set(before.filter(isAttached).map((a) => a.ifname));
  // Attached as wanted: the chosen path, our current programs (an older version is replaced).
  const current = new Set(before.filter((a) => a.path === paths[a.ifname]?.path && !a.stale).map((a) => a.ifname));
  const attach = wanted.filter((i) => !attachedBefore.has(i));
  const detach = [...attachedBefore].filter((i) => !wanted.includes(i)).sort();

  const desiredRaw = encodeGeneration(targetGen, req.generation);
  const [activeRaw, inactive] = readGenerationsRaw(dp, [oldCtl.activeGen, targetGen]) as [EncodedGeneration, EncodedGeneration];
  const localnetDone = wanted.every((i) => !req.desired?.paths?.[i]?.routeLocalnet || routeLocalnet(i));
  const upToDate = detach.length === 0 && wanted.every((i) => current.has(i)) && localnetDone && sameCounts(activeRaw, desiredRaw)
    && firstDifference(activeRaw, encodeGeneration(oldCtl.activeGen, req.generation)) === null;
  const inventory = (ctl: Ctl): Inventory => ({
    format_version: INVENTORY_FORMAT_VERSION,
    instance: req.instance,
    revision: req.revision ?? null,
    configDigest: req.configDigest ?? null,
    appliedAt: new Date().toISOString(),
    activeGen: ctl.activeGen,
    serial: ctl.serial,
    interfaces: wanted,
    paths,
    ifindexes: Object.fromEntries(wanted.map((i) => [i, interfaceIndex(i)])),
    listeners: Object.fromEntries((req.desired?.listeners ?? []).map((l) => [listenerKey(l), l.proxy])),
    targetIds: Object.fromEntries(req.targetIds ?? []),
  });
  if (upToDate) {
    writeInventory(dir, inventory(oldCtl));
    log('the live configuration is the desired one: nothing to write');
    return { instance: req.instance, changed: false, activeGen: oldCtl.activeGen, serial: oldCtl.serial, ops: 0, attached: [], detached: [], warnings: [] };
  }

  const ops = diffGeneration(targetGen, inactive, desiredRaw);
  const postFlipSerial = (oldCtl.serial + 1) >>> 0;
  const journal: Journal = {
    instance: req.instance,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    netns: currentNetns(),
    targetGen,
    oldCtl,
    postFlipSerial,
    desiredDigest: generationDigest(desiredRaw),
    saved: saveEntries(dp, inactive, ops),
    attach,
    detach,
    inventory: inventory({ activeGen: targetGen, serial: postFlipSerial }),
  };
  writeJournal(dir, journal);
  log(`journal written: generation ${targetGen}, ${ops.length} raw operation(s), serial ${oldCtl.serial} -> ${postFlipSerial}`);

  const fault = (point: string): void => {
    if (req.faultAction === 'kill') killSelf();
    throw new LbError('LB_APPLY_FAULT', `fault injected ${point}`, { point });
  };
  let flipped = false;
  let step = 'turning on route_localnet';
  try {
    for (const ifname of wanted) {
      if (req.desired?.paths?.[ifname]?.routeLocalnet && enableRouteLocalnet(ifname)) log(`route_localnet=1 on ${ifname}: it has loopback targets`);
    }
    step = 'attaching interfaces';
    for (const ifname of wanted) {
      const r = dp.attach(ifname, { path: paths[ifname]!.path });
      if (r.xdpChanged || r.tcChanged) {
        const how = r.path === 'xdp' ? `XDP ${r.xdpMode}${r.nativeError ? `; native refused: ${r.nativeError}` : ''}` : 'TC ingress';
        log(`attached ${ifname}: ${r.path} data path (${how}, TC egress): ${paths[ifname]!.reason}`);
      }
    }
    step = 'updating lb_tx_ports';
    dp.syncTxPorts();
    step = `writing generation ${targetGen}`;
    const stop = typeof req.faultAt === 'number' ? req.faultAt : ops.length;
    const done = executeOps(dp, ops, stop);
    log(`wrote ${done} raw operation(s) to generation ${targetGen}`);
    if (typeof req.faultAt === 'number') fault(req.faultAt < ops.length ? `before raw operation ${req.faultAt} of ${ops.length}` : 'before the flip');
    step = 'flipping lb_ctl';
    const serial = flipTo(dp, targetGen);
    flipped = true;
    log(`flipped to generation ${targetGen} (serial ${serial})`);
    if (serial !== postFlipSerial) {
      throw new LbError('LB_APPLY_JOURNAL', `lb_ctl serial moved to ${serial} during the apply (expected ${postFlipSerial}): another writer touched lb_ctl`, { serial, postFlipSerial });
    }
    if (req.faultAt === 'after-flip') fault('after the flip');
    step = 'verifying the read-back';
    verify(dp, targetGen, desiredRaw, req, wanted, paths);
    log('read back generation: identical to the desired one');
  } catch (err) {
    const cause = err instanceof Error ? err.message : String(err);
    try {
      undoJournal(dp, journal, flipped, inactive);
      removeJournal(dir);
    } catch (rbErr) {
      throw new LbError('LB_APPLY_ROLLBACK',
        `apply to instance ${req.instance} failed while ${step} (${cause}), and rolling it back failed too: ${(rbErr as Error).message}. ` +
        `The journal ${dir}/journal.json is kept: the next \`lb plan\` or \`lb apply\` finishes the recovery`,
        { instance: req.instance, step, rollbackError: (rbErr as Error).message }, { cause: err });
    }
    throw new LbError('LB_APPLY_FAILED',
      `apply to instance ${req.instance} failed while ${step}: ${cause}. It was rolled back: nothing changed, the configuration that was active before is still active`,
      { instance: req.instance, step, code: isLbError(err) ? err.code : undefined }, { cause: err });
  }

  if (req.faultAt === 'commit') fault('after the read-back, before the commit');
  const warnings = finish(dp, dir, journal);
  for (const ifname of journal.detach) log(`detached ${ifname}`);
  return {
    instance: req.instance, changed: true, activeGen: targetGen, serial: postFlipSerial, ops: ops.length,
    attached: attach, detached: detach.filter((i) => !warnings.some((w) => w.startsWith(`${i}:`))), warnings,
  };
}

/** A cheap necessary condition of equality, before encoding and comparing whole generations. */
function sameCounts(a: EncodedGeneration, b: EncodedGeneration): boolean {
  const present = (g: EncodedGeneration): number => g.groups.filter(([, v]) => v.readUInt32LE(0) > 0).length;
  return a.listeners.length === b.listeners.length && a.srcRoutes.length === b.srcRoutes.length
    && a.maglev.length === b.maglev.length && present(a) === present(b);
}

/** The entries of the inactive generation the ops touch, as they are now (exact bytes). */
function saveEntries(dp: DataPlane, inactive: EncodedGeneration, ops: readonly RawOp[]): SavedEntry[] {
  const present = new Map<string, Buffer>();
  for (const [map, list] of [['lb_listeners', inactive.listeners], ['lb_src_routes', inactive.srcRoutes], ['lb_maglev', inactive.maglev]] as const) {
    for (const [k, v] of list) present.set(`${map}/${k.toString('hex')}`, v);
  }
  const seen = new Set<string>();
  const saved: SavedEntry[] = [];
  for (const op of ops) {
    const id = `${op.map}/${op.key.toString('hex')}`;
    if (seen.has(id)) continue;
    seen.add(id);
    saved.push({ map: op.map, key: op.key, value: savedValue(dp, op.map, op.key, present.get(id)) });
  }
  return saved;
}

function savedValue(dp: DataPlane, map: ConfigMapName, key: Buffer, hashValue: Buffer | undefined): Buffer | null {
  // Array slots always exist: read their exact bytes (empty-looking slots included). Hash and LPM
  // entries come from the walk of the generation: an LPM lookup would answer a shorter prefix.
  if (map === 'lb_settings' || map === 'lb_groups') return dp.maps[map].lookup(key) ?? null;
  return hashValue ?? null;
}

function verify(dp: DataPlane, gen: number, desiredRaw: EncodedGeneration, req: ApplyRequest, wanted: string[],
  paths: Readonly<Record<string, { path: string }>>): void {
  const after = readGenerationRaw(dp, gen);
  const diff = firstDifference(after, desiredRaw);
  if (diff !== null) throw new LbError('LB_APPLY_VERIFY', `generation ${gen} read back differs: ${diff}`, { gen });
  const generation = decodeRaw(gen, after);
  const maglev = checkMaglevTables(generation);
  if (maglev !== null) throw new LbError('LB_APPLY_VERIFY', `generation ${gen} read back: ${maglev}`, { gen });
  const attachments = new Map(dp.attachments().map((a) => [a.ifname, a]));
  const missing = wanted.filter((i) => attachments.get(i)?.path !== paths[i]?.path);
  if (missing.length > 0) throw new LbError('LB_APPLY_VERIFY', `lb's programs are not attached to ${missing.join(', ')} as chosen after attaching`, { missing });
  const localnetOff = wanted.filter((i) => req.desired?.paths?.[i]?.routeLocalnet && !routeLocalnet(i));
  if (localnetOff.length > 0) throw new LbError('LB_APPLY_VERIFY', `route_localnet is off on ${localnetOff.join(', ')} after turning it on`, { localnetOff });
  if (req.desired === undefined) return;
  const proxies = new Map(req.desired.listeners.map((l) => [listenerKey(l), l.proxy]));
  const decoded = decodeLogical(generation, {
    ifname: (index) => interfaceName(index),
    proxyOf: (key) => proxies.get(key) ?? null,
    interfaces: wanted,
    ...(req.desired.paths !== undefined ? { paths: req.desired.paths } : {}), // checked on the attachments above
  });
  const a = stableJson(decoded);
  const b = stableJson({ ...req.desired, interfaces: [...req.desired.interfaces].sort() });
  if (a !== b) {
    throw new LbError('LB_APPLY_VERIFY', `generation ${gen} decodes to a state different from the desired one (first difference near: ${firstTextDifference(a, b)})`, { gen });
  }
}

/**
 * Puts the target generation back as it was before the journal's apply, flipping back first if
 * the flip happened; detaches the interfaces the apply attached. `inactive` (the generation as
 * read before the apply) makes it check the restored bytes.
 */
export function undoJournal(dp: DataPlane, journal: Journal, flipped: boolean, inactive?: EncodedGeneration): void {
  const ctl = readCtl(dp);
  if (flipped || (ctl.activeGen === journal.targetGen && ctl.serial === journal.postFlipSerial)) flipTo(dp, journal.oldCtl.activeGen);
  executeOps(dp, restoreOps(journal.saved));
  if (inactive !== undefined) {
    const diff = firstDifference(readGenerationRaw(dp, journal.targetGen), inactive);
    if (diff !== null) throw new LbError('LB_APPLY_ROLLBACK', `generation ${journal.targetGen} does not read back as saved after restoring it: ${diff}`, {});
  }
  for (const ifname of journal.attach) detachQuietly(dp, ifname);
}

/** After the new configuration is live: detach what it no longer uses, record it, drop the journal. */
export function finish(dp: DataPlane, dir: string, journal: Journal): string[] {
  const warnings: string[] = [];
  for (const ifname of journal.detach) {
    const w = detachQuietly(dp, ifname);
    if (w) warnings.push(w);
  }
  writeInventory(dir, { ...journal.inventory, appliedAt: new Date().toISOString() });
  removeJournal(dir);
  return warnings;
}

/** Detaches lb's programs from an interface; an interface that is gone needs nothing. Returns a warning or null. */
function detachQuietly(dp: DataPlane, ifname: string): string | null {
  try {
    dp.detach(ifname);
    return null;
  } catch (err) {
    if (isLbError(err, 'LB_NET_IFACE')) return null;
    return `${ifname}: detaching lb's programs failed: ${(err as Error).message}`;
  }
}

function killSelf(): never {
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself is delivered before the kill() call returns to user space; this only
  // guards against a platform where it is not.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
  throw new LbError('LB_APPLY_FAULT', 'SIGKILL to self did not end the process', {});
}

/** JSON with object keys sorted: equal values give equal text whatever the construction order. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : v));
}

function firstTextDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 40);
  return `${JSON.stringify(a.slice(from, i + 40))} vs ${JSON.stringify(b.slice(from, i + 40))}`;
}
