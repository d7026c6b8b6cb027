// Reading an instance's pinned data plane from a long-lived process (the daemon) without loading
// anything: the runtime's sample every second, the event hub's sweeps, the /metrics scrapes.
//
// The handle stays open between reads while the pin directory is unchanged. Opening all the pins
// for each read (DataPlane.open: a readdir, then an OBJ_GET and a GET_INFO per pin, and a close
// per pin after) cost the daemon's thread ~0.5 ms a read, the larger part of an idle daemon's CPU.
// Any pin created, replaced or removed (`lb up`, `lb down`, an upgrade re-pinning its programs,
// whether by this daemon or behind its back) moves the directory's mtime or ctime, or its inode
// when the directory itself is made anew: the next read then closes the handle and opens the pins
// again (or reads null), so a process never reads maps the instance no longer uses, and holds
// them until its next read at most (IDLE_CLOSE_MS when it stops reading).

import { statSync } from 'node:fs';
import { instanceDir, listPins } from './bpffs.js';
import { DataPlane, MAP_NAMES } from './data-plane.js';

const PINS: readonly string[] = ['prog_xdp', 'prog_tc', ...MAP_NAMES];

/**
 * Whether every pin of the instance is there. DataPlane.open would load and pin the objects of a
 * partial instance (one being loaded or taken down right now): a reader must not.
 */
export function instanceComplete(instance: string): boolean {
  const pins = new Set(listPins(instanceDir(instance)));
  return PINS.every((p) => pins.has(p));
}

/**
 * bpffs stamps a directory's times from the coarse clock (one tick, 4 ms at HZ=250): a change in
 * the same tick as the last one leaves the times as they were. A handle is kept only when the
 * directory's last change is older than this, so that any later change moves the stamp.
 */
export const STAMP_SETTLE_MS = 100;

/**
 * A handle no read used for this long is closed: the maps of an instance taken down stay
 * allocated while a descriptor holds them (lb_flows alone is ~70 MB), and a process that stopped
 * reading (a daemon's reader stopped, a test done with its instance) would otherwise hold them.
 */
export const IDLE_CLOSE_MS = 5_000;

interface DirStamp {
  key: string;
  changedMs: number;
}

function dirStamp(dir: string): DirStamp | undefined {
  try {
    const s = statSync(dir, { bigint: true });
    return { key: `${s.ino} ${s.mtimeNs} ${s.ctimeNs}`, changedMs: Number((s.mtimeNs > s.ctimeNs ? s.mtimeNs : s.ctimeNs) / 1_000_000n) };
  } catch {
    return undefined;
  }
}

export class PinnedDataPlane {
  private dp: DataPlane | undefined;
  private stamp: string | undefined;
  private idle: NodeJS.Timeout | undefined;
  /** Handles opened so far (tests read it: how often the pins were opened). */
  opens = 0;

  /** `now`: the wall clock in ms (the directory's times are wall-clock); injected by tests. */
  constructor(readonly instance: string, private readonly now: () => number = Date.now) {}

  /** fn on the instance's data plane; null when it is not (wholly) pinned: a read never loads one. */
  read<T>(fn: (dp: DataPlane) => T): T | null {
    const stamp = dirStamp(instanceDir(this.instance));
    if (this.dp !== undefined && stamp?.key === this.stamp) {
      this.idle?.refresh();
      return fn(this.dp);
    }
    this.close();
    if (stamp === undefined || !instanceComplete(this.instance)) return null;
    const dp = DataPlane.open({ instance: this.instance });
    this.opens++;
    // Kept when nothing changed while it was opened and the stamp is settled (STAMP_SETTLE_MS).
    if (this.now() - stamp.changedMs > STAMP_SETTLE_MS && dirStamp(instanceDir(this.instance))?.key === stamp.key) {
      this.dp = dp;
      this.stamp = stamp.key;
      this.idle = setTimeout(() => this.close(), IDLE_CLOSE_MS).unref();
      return fn(dp);
    }
    try {
      return fn(dp);
    } finally {
      dp.close();
    }
  }

  /** Closes the handle kept, if any (the next read opens the pins again). */
  close(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
    this.dp?.close();
    this.dp = undefined;
    this.stamp = undefined;
  }
}

const shared = new Map<string, PinnedDataPlane>();

/**
 * The process's one reader of an instance (per thread): the daemon's readers share it, so that
 * the first of them to find the pins changed closes the handle for all.
 */
export function pinnedDataPlane(instance: string): PinnedDataPlane {
  let r = shared.get(instance);
  if (!r) shared.set(instance, (r = new PinnedDataPlane(instance)));
  return r;
}
