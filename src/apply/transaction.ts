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

import { readlinkSync } from 'node:fs';
import { checkMaglevTables, decodeGeneration as decodeLogical } from '../core/compile/decode.js';
import {
  DataPlane, decodeGeneration as decodeRaw, enableRouteLocalnet, flipTo, interfaceIndex, interfaceNamer, routeLocalnet, readCtl, readGenerationsColumns, readGenerationsRaw,
  readGroupHalf, readSrcRoutesRaw, retargetGeneration, type Ctl, type EncodedGeneration, type GenerationConfig,
} from '../dataplane/index.js';
import { choosePaths } from '../dataplane/data-paths.js';
import { LB_LF_PERSIST, LB_LF_SRC_ROUTES, LB_MAX_GROUPS } from '../core/abi.js';
import { LbError, isLbError } from '../core/errors.js';
import { INVENTORY_FORMAT_VERSION, writeInventory, type Inventory } from '../state/inventory.js';
import { isAttached } from '../state/live.js';
import { ensureDir, runDir } from '../state/run-dir.js';
import { readRoutesRecord, removeRoutesRecord, writeRoutesRecord, type RecordBody } from '../state/routes-record.js';
import { listenerKey, type LogicalState } from '../core/state.js';
import { sameJson } from '../core/same-json.js';
import { journalExists, journalOf, journalPath, removeJournal, savedItemsOfRuns, writeJournal, type Journal, type JournalDraft } from './journal.js';
import {
  EMPTY_GROUP_VALUE, firstDifference, restoreOps,
} from '../core/ops.js';
import {
  SHAPES, canonicalColumns, columnOf, columnsDigest, columnsDigestState, columnsOf, diffColumns, encodeCanonicalColumns, encodedOf, opCount, pairsOf,
  type Column, type Columns, type OpRun,
} from '../core/columns.js';
import { executeOps, executeRuns } from './execute-ops.js';
import { differingKeys, planDelta, rememberApplied, takeApplied, type AppliedState, type KeySets } from './delta.js';
import { digestHex, type DigestState } from '../core/generation-digest.js';
import { expectationDifference, readBackRuns } from './read-back.js';
import { changeReach } from './read-back-delta.js';

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
  /** Where lb's BPF objects (lb_xdp, lb_tc, lb_apply .bpf.o) are when the instance must be loaded. */
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

/**
 * The generation's digest (src/core/generation-digest.ts): the journal records it for the desired
 * generation, and recovery compares it with the generation it finds after a flip.
 */
export function generationDigest(raw: EncodedGeneration): string {
  return columnsDigest(columnsOf(raw));
}

/** Runs the transaction. The caller holds the instance lock and has recovered leftovers. */
export function runTransaction(req: ApplyRequest): ApplyResult {
  const log = req.log ?? ((): void => undefined);
  const dir = ensureDir(runDir(req.instance));
  if (journalExists(dir)) {
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
  const currentPaths = new Set(before.filter((a) => a.path === paths[a.ifname]?.path && !a.stale).map((a) => a.ifname));
  const current_ = (ifname: string): boolean => currentPaths.has(ifname);
  const attach = wanted.filter((i) => !attachedBefore.has(i));
  const detach = [...attachedBefore].filter((i) => !wanted.includes(i)).sort();

  // What this process remembers of both generations from its own last applies (src/apply/delta.ts):
  // with it, a small change is found, written, journaled and hashed as a delta, without encoding,
  // sorting or hashing the whole table, and without reading the maps or the routes records.
  const prior = takeApplied(req.instance, dp, oldCtl);
  const delta = prior === undefined ? null : planDelta(prior, targetGen, req.generation);
  let desired: Columns;
  let desiredDigestState: DigestState;
  let desiredDigest: string;
  let pairsOfDesired: EncodedGeneration | undefined;
  const desiredRaw = (): EncodedGeneration => (pairsOfDesired ??= encodedOf(desired));
  let known: KnownRoutes | null = null;
  let current: Columns;
  let activeRaw: EncodedGeneration | undefined;
  // The generations as read whole from the maps, the trie walked (no trusted records); active: when read.
  let walked: { inactive: Columns; active: Columns | undefined } | undefined;
  let inactiveWhole: Columns;
  if (delta !== null) {
    ({ desired, digest: desiredDigestState, desiredDigest, current, inactive: inactiveWhole } = delta);
    log(`delta apply: the configuration changed at ${keyCount(delta.changed)} key(s) since this process's last apply`);
  } else {
    // The desired generation in columns, in canonical order (src/core/columns.ts): the diff, the
    // writes, the journal and the read-back all work on these without a Buffer per entry. Its pairs
    // (views into the columns) are made only where code takes pairs: the no-op check and decoding.
    desired = encodeCanonicalColumns(targetGen, req.generation);
    desiredDigestState = columnsDigestState(desired);
    desiredDigest = digestHex(desiredDigestState, desired.settings);
    // What both generations hold, from their records when those can be trusted (src/state/routes-
    // record.ts): then the trie is not walked, and the active generation is not read at all unless
    // its recorded digest is the desired one. The other maps of the inactive one are read whole.
    known = knownRoutes(dp, dir, oldCtl);
    const readActive = known === null || known.loaded || known.activeDigest === desiredDigest;
    const gens = readActive ? [targetGen, oldCtl.activeGen] : [targetGen];
    if (known === null) {
      // No trusted records: read both generations whole, the trie walked (then recorded below).
      const read = readGenerationsColumns(dp, gens);
      const routes = readSrcRoutesRaw(dp, gens);
      const whole = read.map((g, i) => ({ ...g, srcRoutes: columnOf('srcRoutes', routes[i]!) }));
      current = canonicalColumns(whole[0]!);
      walked = { inactive: current, active: whole[1] };
      activeRaw = whole[1] === undefined ? undefined : encodedOf(whole[1]);
    } else {
      const read = readGenerationsColumns(dp, gens);
      const routes = known.inactive();
      current = canonicalColumns({ ...read[0]!, srcRoutes: routes.count === 0 ? columnOf('srcRoutes', []) : routes });
      // The active generation's pairs without routes (those come from its record, or the trie).
      activeRaw = read[1] === undefined ? undefined : encodedOf({ ...read[1], srcRoutes: columnOf('srcRoutes', []) });
    }
    inactiveWhole = current;
  }
  // The generation as read, in pairs: only a rollback checks the restored bytes against it.
  const inactivePairs = (): EncodedGeneration => encodedOf(inactiveWhole);
  const localnetDone = wanted.every((i) => !req.desired?.paths?.[i]?.routeLocalnet || routeLocalnet(i));
  const upToDate = detach.length === 0 && wanted.every((i) => current_(i)) && localnetDone && activeRaw !== undefined
    // The active generation's routes are needed only when everything else already matches.
    && activeIsDesired(dp, oldCtl.activeGen, activeRaw, known === null ? { count: activeRaw.srcRoutes.length, entries: () => activeRaw!.srcRoutes } : known.active,
      desiredRaw(), targetGen, known !== null);
  const routeIds = { ctlMapId: dp.maps.lb_ctl.id, routesMapId: dp.maps.lb_src_routes.id };
  // The active generation as read (when it was), in canonical columns with its digest: made once.
  let activeKnown: { columns: Columns; digest: DigestState } | undefined;
  const activeRead = (): { columns: Columns; digest: DigestState } => {
    if (activeKnown === undefined) {
      const columns = canonicalColumns(walked?.active ?? columnsOf(activeRaw!));
      activeKnown = { columns, digest: columnsDigestState(columns) };
    }
    return activeKnown;
  };
  const activeDigest = (): string => digestHex(activeRead().digest, activeRead().columns.settings);
  // Generations read whole from the maps in this apply are exact: recorded, the next apply needs no walk.
  const recordRead = (): void => {
    if (walked?.active === undefined || activeRaw === undefined) return;
    saveRecord(dir, { gen: oldCtl.activeGen, serial: oldCtl.serial, ...routeIds, digest: activeDigest(), entries: activeRaw.srcRoutes }, log);
    saveRecord(dir, { gen: targetGen, serial: oldCtl.serial - 1, ...routeIds, digest: columnsDigest(walked.inactive), entries: current.srcRoutes }, log);
  };
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
    recordRead();
    writeInventory(dir, inventory(oldCtl));
    // Nothing written: what this process knew of the generations still holds.
    if (prior !== undefined) rememberApplied(req.instance, dp, prior);
    log('the live configuration is the desired one: nothing to write');
    return { instance: req.instance, changed: false, activeGen: oldCtl.activeGen, serial: oldCtl.serial, ops: 0, attached: [], detached: [], warnings: [] };
  }

  // A delta diffs the touched keys only: everywhere else the inactive generation holds the desired entries.
  const ops = diffColumns(targetGen, current, delta?.want ?? desired, EMPTY_GROUP_VALUE);
  const opTotal = opCount(ops);
  const postFlipSerial = (oldCtl.serial + 1) >>> 0;
  const journal: JournalDraft = {
    instance: req.instance,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    netns: currentNetns(),
    targetGen,
    oldCtl,
    postFlipSerial,
    desiredDigest,
    savedItems: savedItemsOfRuns(ops, previousValues(dp, targetGen, current, ops)),
    attach,
    detach,
    inventory: inventory({ activeGen: targetGen, serial: postFlipSerial }),
  };
  // From here on the target generation differs from its record until the apply completes.
  removeRoutesRecord(dir, targetGen);
  writeJournal(dir, journal);
  log(`journal written: generation ${targetGen}, ${opTotal} raw operation(s), serial ${oldCtl.serial} -> ${postFlipSerial}`);

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
    const stop = typeof req.faultAt === 'number' ? req.faultAt : opTotal;
    const done = executeRuns(dp, ops, stop);
    log(`wrote ${done} raw operation(s) to generation ${targetGen}`);
    if (typeof req.faultAt === 'number') fault(req.faultAt < opTotal ? `before raw operation ${req.faultAt} of ${opTotal}` : 'before the flip');
    step = 'flipping lb_ctl';
    const serial = flipTo(dp, targetGen);
    flipped = true;
    log(`flipped to generation ${targetGen} (serial ${serial})`);
    if (serial !== postFlipSerial) {
      throw new LbError('LB_APPLY_JOURNAL', `lb_ctl serial moved to ${serial} during the apply (expected ${postFlipSerial}): another writer touched lb_ctl`, { serial, postFlipSerial });
    }
    if (req.faultAt === 'after-flip') fault('after the flip');
    step = 'verifying the read-back';
    // A delta decodes only what its change reaches (src/apply/read-back-delta.ts); a full apply, all of it.
    let reach: EncodedGeneration | undefined;
    const part = delta === null ? undefined : (): EncodedGeneration => (reach ??= changeReach(desired, [delta.current, delta.want]));
    verify(dp, targetGen, serial, desired, part ?? desiredRaw, ops, req, wanted, paths, part !== undefined);
    log('read back generation: identical to the desired one');
  } catch (err) {
    const cause = err instanceof Error ? err.message : String(err);
    try {
      undoJournal(dp, journalOf(journal), flipped, inactivePairs());
      removeJournal(dir);
    } catch (rbErr) {
      throw new LbError('LB_APPLY_ROLLBACK',
        `apply to instance ${req.instance} failed while ${step} (${cause}), and rolling it back failed too: ${(rbErr as Error).message}. ` +
        `The journal ${journalPath(dir)} is kept: the next \`lb plan\` or \`lb apply\` finishes the recovery`,
        { instance: req.instance, step, rollbackError: (rbErr as Error).message }, { cause: err });
    }
    throw new LbError('LB_APPLY_FAILED',
      `apply to instance ${req.instance} failed while ${step}: ${cause}. It was rolled back: nothing changed, the configuration that was active before is still active`,
      { instance: req.instance, step, code: isLbError(err) ? err.code : undefined }, { cause: err });
  }

  if (req.faultAt === 'commit') fault('after the read-back, before the commit');
  const warnings = finish(dp, dir, journal);
  for (const ifname of journal.detach) log(`detached ${ifname}`);
  // The generation as written, whole (a delta patches the columns it knew, now that they are not needed as they were).
  const written = delta !== null ? delta.commit() : desired;
  // A delta that wrote no route keeps the record's encoded routes from when the generation was last written.
  const sameRoutes = delta !== null && delta.current.srcRoutes.count === 0 && delta.want.srcRoutes.count === 0;
  const routesBody = saveRecord(dir, { gen: targetGen, serial: postFlipSerial, ...routeIds, digest: desiredDigest, entries: written.srcRoutes }, log,
    sameRoutes ? prior?.gens[targetGen]?.routesBody : undefined);
  if ((known === null || known.loaded) && activeRaw !== undefined) {
    saveRecord(dir, { gen: oldCtl.activeGen, serial: oldCtl.serial, ...routeIds, digest: activeDigest(), entries: activeRaw.srcRoutes }, log);
  }
  // For this process's next apply (src/apply/delta.ts): the generation written, the other one as
  // it was known, and the keys where the two may differ. When this apply read the active generation
  // (a loaded instance, untrusted records, or the no-op check of an unchanged configuration: a drift
  // heal), what the maps held is the truth, not what was remembered: its columns when read whole
  // (routes included), and no `differ` (drifted keys are not among the configuration's changes), so
  // the next apply takes the full path and the one after is a delta again.
  const gens: AppliedState['gens'] = [undefined, undefined];
  gens[targetGen] = { columns: written, digest: desiredDigestState, ...(routesBody !== undefined ? { routesBody } : {}) };
  let differ: KeySets | null = null;
  if (activeRaw !== undefined) {
    if (known === null || known.loaded) gens[oldCtl.activeGen] = activeRead();
  } else {
    gens[oldCtl.activeGen] = prior?.gens[oldCtl.activeGen];
    differ = delta !== null ? delta.changed : prior?.config !== undefined ? differingKeys(prior.config, req.generation) : null;
  }
  rememberApplied(req.instance, dp, { activeGen: targetGen, serial: postFlipSerial, config: req.generation, gens, differ });
  return {
    instance: req.instance, changed: true, activeGen: targetGen, serial: postFlipSerial, ops: opTotal,
    attached: attach, detached: detach.filter((i) => !warnings.some((w) => w.startsWith(`${i}:`))), warnings,
  };
}

/**
 * What each key the runs touch holds in generation `gen` before the apply (null: absent), for the
 * journal. Hash and LPM entries come from the generation as known (`current`: an LPM lookup would
 * answer a shorter prefix); array slots always exist, and their exact bytes (empty-looking slots
 * included) come from the maps: lb_settings by lookup, lb_groups by one batch read of the
 * generation's half when many slots are touched, else slot by slot.
 */
function previousValues(dp: DataPlane, gen: number, current: Columns, runs: readonly OpRun[]): (run: OpRun, i: number) => Buffer | null {
  const lists: Record<'lb_listeners' | 'lb_src_routes' | 'lb_maglev', Column> = {
    lb_listeners: current.listeners, lb_src_routes: current.srcRoutes, lb_maglev: current.maglev,
  };
  const groupOps = runs.filter((r) => r.map === 'lb_groups').reduce((n, r) => n + r.count, 0);
  let half: Buffer | undefined;
  let halfWords: Int32Array | null = null;
  let allZero = false;
  const size = SHAPES.groups.valueSize;
  // Every all-zero slot answers this one buffer: savedItemsOfRuns compares consecutive answers with
  // equals(), which is then `this === other`, and makes no view per slot (an empty generation's
  // 10,000 slots are all zero).
  const zeroSlot = Buffer.alloc(size);
  const keyOf = (run: OpRun, i: number): Buffer => run.keys.subarray(i * run.keySize, (i + 1) * run.keySize);
  let keysOf: { run: OpRun; words: Uint32Array | null } | undefined;
  return (run, i) => {
    if (run.map === 'lb_settings') return dp.maps.lb_settings.lookup(keyOf(run, i)) ?? null;
    if (run.map === 'lb_groups') {
      if (groupOps <= 256) return dp.maps.lb_groups.lookup(keyOf(run, i)) ?? null;
      // A view of the buffer the next lb_groups read reuses: savedItemsOfRuns, this function's one
      // caller, copies every value it keeps before anything reads lb_groups again (no 16 MiB copy).
      if (half === undefined) {
        half = readGroupHalf(dp, gen);
        halfWords = half.byteOffset % 4 === 0 && size % 4 === 0 ? new Int32Array(half.buffer, half.byteOffset, half.length >> 2) : null;
        allZero = slotsAllZero(half, size, runs.filter((r) => r.map === 'lb_groups'), gen);
      }
      if (allZero) return zeroSlot;
      // 32-bit views, not readUInt32LE per slot (Node JavaScript, run interpreted while cold).
      if (keysOf?.run !== run) keysOf = { run, words: run.keys.byteOffset % 4 === 0 ? new Uint32Array(run.keys.buffer, run.keys.byteOffset, run.count) : null };
      const slot = (keysOf.words !== null ? keysOf.words[i]! : run.keys.readUInt32LE(i * 4)) - gen * LB_MAX_GROUPS;
      if (halfWords !== null) {
        const from = slot * (size >> 2);
        let zero = true;
        for (let w = from, end = from + (size >> 2); w < end && zero; w++) zero = halfWords[w] === 0;
        if (zero) return zeroSlot;
      }
      return half.subarray(slot * size, (slot + 1) * size);
    }
    const p = run.prev[i]!;
    if (p < 0) return null;
    const c = lists[run.map];
    return c.values.subarray(p * c.valueSize, (p + 1) * c.valueSize);
  };
}

/**
 * Whether every slot from the lowest to the highest the runs touch is all zero in the half (a
 * generation never written: a first apply's), by one native compare against a zeroed buffer; then
 * no slot needs a look of its own.
 */
function slotsAllZero(half: Buffer, size: number, runs: readonly OpRun[], gen: number): boolean {
  let lo = Infinity;
  let hi = -Infinity;
  for (const run of runs) {
    if (run.keys.byteOffset % 4 !== 0) return false; // (columns are aligned; a view of odd bytes: look slot by slot)
    const keys = new Uint32Array(run.keys.buffer, run.keys.byteOffset, run.count); // little-endian slot indexes
    for (let i = 0; i < run.count; i++) {
      const slot = keys[i]! - gen * LB_MAX_GROUPS;
      if (slot < lo) lo = slot;
      if (slot > hi) hi = slot;
    }
  }
  if (!(lo >= 0 && hi < LB_MAX_GROUPS && lo <= hi)) return false;
  const bytes = (hi + 1 - lo) * size;
  return half.compare(Buffer.alloc(bytes), 0, bytes, lo * size, (hi + 1) * size) === 0;
}

function keyCount(k: KeySets): number {
  return k.listeners.count + k.groups.count + k.srcRoutes.count + k.maglev.count;
}

/** A cheap necessary condition of equality (a's routes counted apart), before comparing whole generations. */
function sameCounts(a: EncodedGeneration, aRoutes: number, b: EncodedGeneration): boolean {
  const present = (g: EncodedGeneration): number => g.groups.filter(([, v]) => v.readUInt32LE(0) > 0).length;
  return a.listeners.length === b.listeners.length && aRoutes === b.srcRoutes.length
    && a.maglev.length === b.maglev.length && present(a) === present(b);
}

/** A generation's routes: how many, and the entries when asked for. */
interface LazyRoutes {
  count: number;
  entries(): Array<[Buffer, Buffer]>;
}

/** The source routes of both generations when they are known without walking the trie. */
interface KnownRoutes {
  active: LazyRoutes;
  /** The recorded digest of the active generation. */
  activeDigest: string;
  inactive(): Column;
  /** This apply loaded the instance: both generations are empty. */
  loaded: boolean;
}

function knownRoutes(dp: DataPlane, dir: string, ctl: Ctl): KnownRoutes | null {
  // Both generations of an instance this apply loaded are empty: its active one is read (cheaply).
  if (!dp.adopted) return { active: { count: 0, entries: () => [] }, activeDigest: '', inactive: () => columnOf('srcRoutes', []), loaded: true };
  const ours = (r: ReturnType<typeof readRoutesRecord>): r is NonNullable<typeof r> =>
    r !== null && r.ctlMapId === dp.maps.lb_ctl.id && r.routesMapId === dp.maps.lb_src_routes.id;
  const active = readRoutesRecord(dir, ctl.activeGen);
  const inactive = readRoutesRecord(dir, 1 - ctl.activeGen);
  if (!ours(active) || !ours(inactive) || active.serial !== ctl.serial || inactive.serial >= ctl.serial) return null;
  return { active: { count: active.count, entries: active.entries }, activeDigest: active.digest, inactive: inactive.column, loaded: false };
}

/** A record that cannot be written is no failure of the apply: the next apply reads the map instead. */
function saveRecord(dir: string, rec: Parameters<typeof writeRoutesRecord>[1], log: (line: string) => void, body?: RecordBody): RecordBody | undefined {
  try {
    return writeRoutesRecord(dir, rec, body);
  } catch (err) {
    removeRoutesRecord(dir, rec.gen);
    log(`could not record the source routes of generation ${rec.gen} (${(err as Error).message}); the next apply reads them from the map`);
    return undefined;
  }
}

/**
 * Whether the active generation `gen` already holds the desired generation (encoded for the other
 * one). The batch-readable maps decide first; when the routes came from the records and all else
 * matches, the trie itself is read: a drift heal re-applies the very configuration the record
 * describes, and must find what drifted.
 */
function activeIsDesired(dp: DataPlane, gen: number, activeRaw: EncodedGeneration, activeRoutes: LazyRoutes, desiredRaw: EncodedGeneration,
  desiredGen: number, routesFromRecord: boolean): boolean {
  if (!sameCounts(activeRaw, activeRoutes.count, desiredRaw)) return false;
  const want = retargetGeneration({ ...desiredRaw, srcRoutes: [] }, desiredGen, gen);
  if (firstDifference({ ...activeRaw, srcRoutes: [] }, want) !== null) return false;
  want.srcRoutes = retargetGeneration({ ...desiredRaw, listeners: [], groups: [], maglev: [] }, desiredGen, gen).srcRoutes;
  const sameRoutes = (routes: Array<[Buffer, Buffer]>): boolean => firstDifference({ ...want, srcRoutes: routes }, want) === null;
  if (!sameRoutes(activeRoutes.entries())) return false;
  return !routesFromRecord || sameRoutes(readGenerationsRaw(dp, [gen])[0]!.srcRoutes);
}

function verify(dp: DataPlane, gen: number, serial: number, desired: Columns, desiredRaw: () => EncodedGeneration, ops: readonly OpRun[], req: ApplyRequest,
  wanted: string[], paths: Readonly<Record<string, { path: string }>>, partial: boolean): void {
  readBackRuns(dp, gen, ops); // a put's value, a delete's absence
  // lb_ctl still shows this apply's flip: nothing flipped while the generation was read back.
  const ctl = readCtl(dp);
  if (ctl.activeGen !== gen || ctl.serial !== serial) {
    throw new LbError('LB_APPLY_VERIFY', `lb_ctl moved during the read-back: generation ${ctl.activeGen}, serial ${ctl.serial} (expected ${gen}, ${serial})`, { gen, serial });
  }
  // What was not written holds what the diff found there, so the generation now holds the desired
  // one. Without a desired LogicalState only the Maglev check decodes: it needs the routes of
  // persistent listeners alone (decoding 100,000 routes formats 100,000 addresses), and nothing
  // at all without persistent listeners or tables. A delta (`partial`) decodes the part of the
  // desired generation its change reaches (desiredRaw() is that part), with the same checks.
  // A delta without any of these decodes nothing either: finding its part scans the whole desired
  // generation (~45 ms of a 1% change of 100,000 entries), for no check.
  const persistent = persistentRoutes(desired);
  if (persistent !== null || desired.maglev.count > 0 || req.desired !== undefined) {
    const raw = req.desired === undefined && !partial
      ? { settings: desired.settings, listeners: pairsOf(desired.listeners), groups: pairsOf(desired.groups), srcRoutes: persistent ?? [], maglev: pairsOf(desired.maglev) }
      : desiredRaw();
    const maglev = checkMaglevTables(decodeRaw(gen, raw));
    if (maglev !== null) throw new LbError('LB_APPLY_VERIFY', `generation ${gen} read back: ${maglev}`, { gen });
  }
  const attachments = new Map(dp.attachments().map((a) => [a.ifname, a]));
  const missing = wanted.filter((i) => attachments.get(i)?.path !== paths[i]?.path);
  if (missing.length > 0) throw new LbError('LB_APPLY_VERIFY', `lb's programs are not attached to ${missing.join(', ')} as chosen after attaching`, { missing });
  const localnetOff = wanted.filter((i) => req.desired?.paths?.[i]?.routeLocalnet && !routeLocalnet(i));
  if (localnetOff.length > 0) throw new LbError('LB_APPLY_VERIFY', `route_localnet is off on ${localnetOff.join(', ')} after turning it on`, { localnetOff });
  if (req.desired === undefined) return;
  if (desired.listeners.count !== req.desired.listeners.length) {
    throw new LbError('LB_APPLY_VERIFY', `generation ${gen} holds ${desired.listeners.count} listener(s), the desired state ${req.desired.listeners.length}`, { gen });
  }
  const proxies = new Map(req.desired.listeners.map((l) => [listenerKey(l), l]));
  const ifname = interfaceNamer();
  const decoded = decodeLogical(decodeRaw(gen, desiredRaw()), {
    ifname,
    proxyOf: (key) => proxies.get(key)?.proxy ?? null,
    interfaces: wanted,
    ...(req.desired.paths !== undefined ? { paths: req.desired.paths } : {}), // checked on the attachments above
  });
  // The desired listeners the decoded ones stand for: all of them, or (a delta) those of its part.
  const listeners = partial ? decoded.listeners.map((l) => proxies.get(listenerKey(l))).filter((l) => l !== undefined) : req.desired.listeners;
  const want = { ...req.desired, interfaces: [...req.desired.interfaces].sort(), listeners };
  if (!sameJson(decoded, want, stableJson)) {
    const [a, b] = [stableJson(decoded), stableJson(want)];
    throw new LbError('LB_APPLY_VERIFY', `generation ${gen} decodes to a state different from the desired one (first difference near: ${firstTextDifference(a, b)})`, { gen });
  }
}

/**
 * The routes of persistent listeners that have source routes (lb_listener: id at 0, flags at 8),
 * as pairs; null when no listener is persistent.
 */
function persistentRoutes(c: Columns): Array<[Buffer, Buffer]> | null {
  let persistent = false;
  const ids = new Set<number>();
  const l = c.listeners;
  // Through a 32-bit view when the column allows it (readUInt32LE is Node JavaScript: 10,000
  // listeners, interpreted while the apply is cold); lb_listener is little-endian words.
  const lw = l.values.byteOffset % 4 === 0 && l.valueSize % 4 === 0 ? new Uint32Array(l.values.buffer, l.values.byteOffset, (l.count * l.valueSize) >> 2) : null;
  const stride = l.valueSize >> 2;
  for (let i = 0; i < l.count; i++) {
    const flags = lw !== null ? lw[i * stride + 2]! : l.values.readUInt32LE(i * l.valueSize + 8);
    if ((flags & LB_LF_PERSIST) === 0) continue;
    persistent = true;
    if ((flags & LB_LF_SRC_ROUTES) !== 0) ids.add(lw !== null ? lw[i * stride]! : l.values.readUInt32LE(i * l.valueSize));
  }
  if (!persistent) return null;
  if (ids.size === 0) return [];
  const r = c.srcRoutes;
  const out: Array<[Buffer, Buffer]> = [];
  for (let i = 0; i < r.count; i++) {
    if (ids.has(r.keys.readUInt32LE(i * r.keySize + 4) & 0x7fffffff)) {
      out.push([r.keys.subarray(i * r.keySize, (i + 1) * r.keySize), r.values.subarray(i * r.valueSize, (i + 1) * r.valueSize)]);
    }
  }
  return out;
}

/**
 * Puts the target generation back as it was before the journal's apply, flipping back first if
 * the flip happened; detaches the interfaces the apply attached. `inactive` (the generation as
 * read before the apply) makes it check the restored bytes.
 */
export function undoJournal(dp: DataPlane, journal: Journal, flipped: boolean, inactive?: EncodedGeneration): void {
  // The generation is rewritten here: whatever its record said, the next apply reads the map.
  removeRoutesRecord(runDir(journal.instance), journal.targetGen);
  const ctl = readCtl(dp);
  if (flipped || (ctl.activeGen === journal.targetGen && ctl.serial === journal.postFlipSerial)) flipTo(dp, journal.oldCtl.activeGen);
  executeOps(dp, restoreOps(journal.saved));
  if (inactive !== undefined) {
    // The batch-readable maps whole, the source routes where the rollback restored them.
    const [read] = readGenerationsRaw(dp, [journal.targetGen], { srcRoutes: false }) as [EncodedGeneration];
    const diff = firstDifference({ ...read, srcRoutes: inactive.srcRoutes }, inactive)
      ?? expectationDifference(dp, journal.targetGen, journal.saved.filter((e) => e.map === 'lb_src_routes'));
    if (diff !== null) throw new LbError('LB_APPLY_ROLLBACK', `generation ${journal.targetGen} does not read back as saved after restoring it: ${diff}`, {});
  }
  for (const ifname of journal.attach) detachQuietly(dp, ifname);
}

/** After the new configuration is live: detach what it no longer uses, record it, drop the journal. */
export function finish(dp: DataPlane, dir: string, journal: Pick<Journal, 'detach' | 'inventory'>): string[] {
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
