// The daemon's side of the pair keeper (pair-keeper-main.ts): one process per instance, named
// lb-acceptor-holder:<instance>:pairs and recorded in /run/lb/<instance>/pair-keeper.json (pid and
// start time, like the socket holder: holder.ts), listening on /run/lb/<instance>/pair-keeper.sock.
// The daemon hands it both sockets of a pair when it splices them (keep), takes it back when the
// pair ends (drop), and a daemon that starts after another takes every kept pair's descriptors
// back (list). `lb down` ends it, and with it the pairs it kept.
//
// Used by the FrontDoor with the kernel relay (splice.ts keeps and drops, pair-adopt.ts takes back;
// docs/sni.md).

import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';
import { ensureDir, runDir } from '../state/run-dir.js';
import { endRecorded, liveRecord, startTime, type HolderRecord } from './holder.js';
import { closeFd, connectSeqpacket, listenSeqpacket, receiveMessage, receiveMessageNow, sendMessage } from './unix-fds.js';

/** How long a send or receive to the keeper may block the daemon. */
const TIMEOUT_MS = 2000;
/** Bounds a listing (the acceptor holds at most maxConnections pairs). */
const LIST_MAX = 1_000_000;

export function pairKeeperArgv0(instance: string): string {
  return `lb-acceptor-holder:${instance}:pairs`;
}

const recordPath = (instance: string): string => join(runDir(instance), 'pair-keeper.json');
const socketPath = (instance: string): string => join(runDir(instance), 'pair-keeper.sock');

/** A pair the keeper held: its two descriptors, now this process's to close, and the daemon's record of it. */
export interface KeptPair { id: string; fds: [number, number]; rec: unknown }

/** A pair the keeper relayed (the splice relay) and that ended: bytes each way (up: client to backend) and why. */
export interface RelayedEnd { id: string; up: number; down: number; reason: 'closed' | 'reset' | 'idle'; by?: 'client' | 'backend'; rec: unknown }

function isRelayedEnd(m: unknown): m is RelayedEnd & { op: 'end' } {
  const e = m as Partial<RelayedEnd> & { op?: unknown } | null;
  return e?.op === 'end' && typeof e.id === 'string' && typeof e.up === 'number' && typeof e.down === 'number'
    && (e.reason === 'closed' || e.reason === 'reset' || e.reason === 'idle');
}

export class PairKeeper {
  /** After close(): the descriptor number may belong to another file by now, so nothing is sent. */
  private closed = false;

  /** Ends the keeper sent while list() waited for its answer: takeEnds() returns them first. */
  private readonly stashed: RelayedEnd[] = [];

  /** After detach(): the keeper sends no end here. */
  private detached = false;

  private constructor(private readonly fd: number, readonly pid: number, readonly started: boolean) {}

  /** Connects to the instance's keeper, started here when none runs. `script`: the keeper's entry point (built JS). */
  static open(instance: string, script = join(packageRoot(), 'dist', 'src', 'acceptor', 'pair-keeper-main.js')): PairKeeper {
    const live = liveRecord(recordPath(instance), pairKeeperArgv0(instance));
    if (live) {
      try {
        return new PairKeeper(connectSeqpacket(socketPath(instance), TIMEOUT_MS), live.pid, false);
      } catch {
        // A keeper that does not answer cannot give its pairs back: ended, and a new one started.
        endPairKeeper(instance);
      }
    }
    ensureDir(runDir(instance));
    rmSync(socketPath(instance), { force: true });
    const listening = listenSeqpacket(socketPath(instance));
    let rec: HolderRecord;
    try {
      const child = spawn(process.execPath, [script], { argv0: pairKeeperArgv0(instance), detached: true, stdio: ['ignore', 'ignore', 'ignore', listening] });
      child.unref();
      const start = child.pid === undefined ? undefined : startTime(child.pid);
      if (child.pid === undefined || start === undefined) throw new Error('the SNI pair keeper did not start');
      rec = { pid: child.pid, start };
      writeFileSync(recordPath(instance), JSON.stringify(rec), { mode: 0o600 });
    } finally {
      // The keeper has its own copy; connections queue on it until the keeper accepts them.
      closeFd(listening);
    }
    return new PairKeeper(connectSeqpacket(socketPath(instance), TIMEOUT_MS), rec.pid, true);
  }

  /** Hands the keeper a copy of both sockets of a pair; false when the message could not be sent. */
  keep(id: string, fds: readonly [number, number], rec: unknown): boolean {
    if (this.closed) return false;
    return sendMessage(this.fd, { op: 'keep', id, rec }, fds);
  }

  /**
   * Hands the keeper both sockets of a pair to relay from now on (pipe-relay.ts): the caller then
   * closes its own descriptors without ending the connection. False when the message could not be sent.
   */
  relay(id: string, fds: readonly [number, number], idleMs: number, rec: unknown): boolean {
    if (this.closed) return false;
    return sendMessage(this.fd, { op: 'relay', id, idleMs, rec }, fds);
  }

  /** The ends of relayed pairs the keeper reported since the last call, without waiting (also those of a previous daemon's pairs). */
  takeEnds(): RelayedEnd[] {
    const out = this.stashed.splice(0);
    if (this.closed || this.detached) return out;
    for (let i = 0; i < LIST_MAX; i++) {
      const got = receiveMessageNow(this.fd);
      if (got === 'empty' || got === null) break;
      for (const fd of got.fds) closeFd(fd);
      if (isRelayedEnd(got.message)) out.push(endOf(got.message));
    }
    return out;
  }

  /**
   * The daemon stops reporting ends: the keeper keeps those of later ends for the next daemon.
   * Returns the ends it sent before (every one: its answer comes after them), which this daemon
   * reports. Without an answer (a keeper that does not know detach), what came until the timeout.
   */
  detach(): RelayedEnd[] {
    const out = this.takeEnds();
    if (this.closed || this.detached) return out;
    this.detached = true;
    if (!sendMessage(this.fd, { op: 'detach' })) return out;
    for (let i = 0; i < LIST_MAX; i++) {
      const got = receiveMessage(this.fd);
      if (!got) break;
      for (const fd of got.fds) closeFd(fd);
      if (isRelayedEnd(got.message)) out.push(endOf(got.message));
      else if ((got.message as { end?: unknown } | null)?.end === true) break;
    }
    return out;
  }

  /** The keeper closes its copies of the pair's sockets. */
  drop(id: string): boolean {
    if (this.closed) return false;
    return sendMessage(this.fd, { op: 'drop', id });
  }

  /**
   * Every pair the keeper holds (kept: with new descriptors of its sockets) and relays (records
   * only); throws when the keeper does not answer whole.
   */
  list(): { kept: KeptPair[]; relayed: Array<{ id: string; rec: unknown }> } {
    if (this.closed || !sendMessage(this.fd, { op: 'list' })) throw new Error('the SNI pair keeper did not take the list request');
    const pairs: KeptPair[] = [];
    const relayed: Array<{ id: string; rec: unknown }> = [];
    try {
      for (let i = 0; i < LIST_MAX; i++) {
        const got = receiveMessage(this.fd);
        if (!got) throw new Error('the SNI pair keeper stopped answering the list');
        const m = got.message as { end?: unknown; id?: unknown; rec?: unknown; relayed?: unknown } | null;
        if (m?.end === true) return { kept: pairs, relayed };
        if (isRelayedEnd(m)) {
          this.stashed.push(endOf(m));
          continue;
        }
        if (typeof m?.id === 'string' && m.relayed === true) {
          relayed.push({ id: m.id, rec: m.rec });
          continue;
        }
        if (typeof m?.id !== 'string' || got.fds.length !== 2) {
          for (const fd of got.fds) closeFd(fd);
          continue;
        }
        pairs.push({ id: m.id, fds: [got.fds[0]!, got.fds[1]!], rec: m.rec });
      }
      throw new Error('the SNI pair keeper listed too many pairs');
    } catch (err) {
      for (const p of pairs) for (const fd of p.fds) closeFd(fd);
      throw err;
    }
  }

  /** Closes this connection; the keeper and its pairs stay for the next daemon. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}

function endOf(m: RelayedEnd): RelayedEnd {
  return { id: m.id, up: m.up, down: m.down, reason: m.reason, ...(m.by === 'client' || m.by === 'backend' ? { by: m.by } : {}), rec: m.rec };
}

/** How long `lb down` gives the keeper to reset its relayed pairs before it is killed. */
const STOP_WAIT_MS = 2000;

/**
 * Ends the instance's keeper; false when none ran. Asked first to reset the pairs it relays (a
 * process that dies closes its sockets with a FIN each: a cut stream would look whole), killed
 * after STOP_WAIT_MS or when it does not answer; the pairs it only kept close with it.
 */
export function endPairKeeper(instance: string): boolean {
  const rec = liveRecord(recordPath(instance), pairKeeperArgv0(instance));
  if (rec) {
    try {
      // Its receive times out after STOP_WAIT_MS; the keeper's exit ends it sooner (EOF).
      const fd = connectSeqpacket(socketPath(instance), STOP_WAIT_MS);
      if (sendMessage(fd, { op: 'stop' })) receiveMessage(fd);
      closeFd(fd);
    } catch {
      // Not answering: killed below.
    }
  }
  rmSync(recordPath(instance), { force: true });
  rmSync(socketPath(instance), { force: true });
  return endRecorded(rec);
}
