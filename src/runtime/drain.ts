// Connection draining per (proxy, target id): the target's effective weight is 0 in every group of
// the proxy (no new flows), its established flows continue (conntrack keeps them), and the drain
// is done when the target's active flows reach 0 or the timeout passes.
//
// Pure part: startDrain / observeDrain (time and the flow count are arguments). Shell part:
// DrainManager, which validates names against the config, re-counts at drain-check-interval-ms
// while a drain is running, and emits 'change'.
//
// Decisions:
// - A finished drain (drained or timed-out) keeps the weight at 0 until `lb undrain`: "done" means
//   "safe to remove", not "put back". Undrain is the only way back (or removing the target from the
//   config, which drops its drain).
// - Draining an already drained target starts a new drain (new timeout): the way to extend one.
// - Active flows come from an injected function (the daemon counts the data plane's flows of the
//   target's backends). The counters are per backend: a backend shared with another proxy counts
//   that proxy's flows too, so such a drain may wait for the timeout. A count the function cannot
//   give (undefined) only lets the timeout end the drain.

import { EventEmitter } from 'node:events';
import type { LbConfig } from '../core/config/types.js';
import { LbError } from '../core/errors.js';
import { drainKey, findTargets, proxyTargetIds } from './keys.js';
import { echo } from '../core/config/echo.js';

export type DrainStatus = 'draining' | 'drained' | 'timed-out';

export interface DrainState {
  proxy: string;
  targetId: string;
  status: DrainStatus;
  startedAt: number;
  timeoutMs: number;
  /** startedAt + timeoutMs. */
  deadline: number;
  /** The last count of active flows; null before the first count. */
  activeFlows: number | null;
  lastCheckedAt: number | null;
  /** When it became drained or timed-out. */
  finishedAt: number | null;
}

export function startDrain(proxy: string, targetId: string, timeoutMs: number, now: number): DrainState {
  return {
    proxy, targetId, status: 'draining', startedAt: now, timeoutMs, deadline: now + timeoutMs,
    activeFlows: null, lastCheckedAt: null, finishedAt: null,
  };
}

/** The next state after counting the target's active flows (undefined: unknown) at `now`. */
export function observeDrain(state: DrainState, activeFlows: number | undefined, now: number): DrainState {
  const counted = activeFlows === undefined ? state.activeFlows : activeFlows;
  const next: DrainState = { ...state, activeFlows: counted, lastCheckedAt: now };
  if (state.status !== 'draining') return next;
  if (activeFlows === 0) return { ...next, status: 'drained', finishedAt: now };
  if (now >= state.deadline) return { ...next, status: 'timed-out', finishedAt: now };
  return next;
}

export interface DrainChangeEvent {
  action: 'started' | 'drained' | 'timed-out' | 'undrained' | 'removed';
  state: DrainState;
}

export type ActiveFlowCounter = (proxy: string, targetId: string) => number | undefined | Promise<number | undefined>;

export interface DrainManagerOptions {
  activeFlows: ActiveFlowCounter;
  /** Wall clock, ms (default Date.now). */
  now?: () => number;
}

export class DrainManager extends EventEmitter<{ change: [DrainChangeEvent] }> {
  private readonly drains = new Map<string, DrainState>();
  private readonly activeFlows: ActiveFlowCounter;
  private readonly now: () => number;
  private config: LbConfig;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private stopped = false;

  constructor(config: LbConfig, options: DrainManagerOptions) {
    super();
    this.config = config;
    this.activeFlows = options.activeFlows;
    this.now = options.now ?? Date.now;
  }

  /** A new config: drains of targets it no longer has are dropped ('removed'); new intervals apply. */
  setConfig(config: LbConfig): void {
    this.config = config;
    for (const [key, d] of this.drains) {
      if (findTargets(config, d.proxy, d.targetId).length > 0) continue;
      this.drains.delete(key);
      this.emit('change', { action: 'removed', state: d });
    }
    if (this.timer) clearInterval(this.timer); // the check interval may have changed
    this.timer = null;
    this.reschedule();
  }

  /**
   * Starts draining a target of a proxy (`lb drain PROXY TARGET [--timeout]`); the timeout
   * defaults to settings.default-drain-timeout-ms. Throws LB_RUNTIME_UNKNOWN_TARGET for a name
   * the config does not have.
   */
  drain(proxy: string, targetId: string, options: { timeoutMs?: number } = {}): DrainState {
    this.requireTarget(proxy, targetId);
    const timeoutMs = options.timeoutMs ?? this.config.settings.defaultDrainTimeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new RangeError(`drain timeout must be >= 0 ms, got ${timeoutMs}`);
    const state = startDrain(proxy, targetId, timeoutMs, this.now());
    this.drains.set(drainKey(proxy, targetId), state);
    this.emit('change', { action: 'started', state });
    this.reschedule();
    return state;
  }

  /** Ends a drain (`lb undrain`); returns the drain it removed, undefined when there was none. */
  undrain(proxy: string, targetId: string): DrainState | undefined {
    this.requireTarget(proxy, targetId);
    const key = drainKey(proxy, targetId);
    const state = this.drains.get(key);
    if (!state) return undefined;
    this.drains.delete(key);
    this.emit('change', { action: 'undrained', state });
    this.reschedule();
    return state;
  }

  /** Puts back drains saved by a previous daemon (targets the config lacks are skipped). */
  restore(states: readonly DrainState[]): void {
    for (const s of states) {
      if (findTargets(this.config, s.proxy, s.targetId).length === 0) continue;
      this.drains.set(drainKey(s.proxy, s.targetId), { ...s });
    }
    this.reschedule();
  }

  get(proxy: string, targetId: string): DrainState | undefined {
    return this.drains.get(drainKey(proxy, targetId));
  }

  /** drainKey(proxy, target id) -> state, for buildRuntimeInputs; list() for status. */
  snapshot(): Map<string, DrainState> {
    return new Map(this.drains);
  }

  list(): DrainState[] {
    return [...this.drains.values()].sort((a, b) => (a.proxy === b.proxy ? (a.targetId < b.targetId ? -1 : 1) : a.proxy < b.proxy ? -1 : 1));
  }

  /** Counts the running drains' flows once (the scheduler calls it; tests and the CLI may too). */
  poll(): Promise<void> {
    if (this.polling) return this.polling;
    this.polling = this.pollOnce().finally(() => { this.polling = null; });
    return this.polling;
  }

  /** Resolves when the drain is no longer running (drained, timed-out, undrained or removed). */
  whenDone(proxy: string, targetId: string): Promise<DrainState | undefined> {
    const current = this.get(proxy, targetId);
    if (!current || current.status !== 'draining') return Promise.resolve(current);
    return new Promise((resolve) => {
      const onChange = (e: DrainChangeEvent): void => {
        if (e.state.proxy !== proxy || e.state.targetId !== targetId || e.action === 'started') return;
        this.off('change', onChange);
        resolve(e.state);
      };
      this.on('change', onChange);
    });
  }

  /** Stops the scheduler for good (daemon shutdown); drains stay as they are. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
  }

  private async pollOnce(): Promise<void> {
    for (const [key, d] of [...this.drains]) {
      if (d.status !== 'draining') continue;
      let count: number | undefined;
      try {
        count = await this.activeFlows(d.proxy, d.targetId);
      } catch {
        count = undefined;
      }
      const current = this.drains.get(key);
      if (current !== d) continue; // undrained or restarted meanwhile
      const next = observeDrain(d, count, this.now());
      this.drains.set(key, next);
      if (next.status !== 'draining') this.emit('change', { action: next.status, state: next });
    }
    this.reschedule();
  }

  private reschedule(): void {
    const running = [...this.drains.values()].some((d) => d.status === 'draining');
    if (!running || this.stopped) {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      return;
    }
    if (this.timer) return;
    this.timer = setInterval(() => { void this.poll(); }, this.config.settings.drainCheckIntervalMs);
    this.timer.unref();
  }

  private requireTarget(proxy: string, targetId: string): void {
    if (findTargets(this.config, proxy, targetId).length > 0) return;
    const proxies = this.config.proxies.map((p) => p.name);
    const message = proxies.includes(proxy)
      ? `proxy "${echo(proxy)}" has no target "${echo(targetId)}"; its targets: ${someNames(proxyTargetIds(this.config, proxy))}`
      : `no proxy "${echo(proxy)}" in the active config; proxies: ${someNames(proxies)}`;
    throw new LbError('LB_RUNTIME_UNKNOWN_TARGET', message, { proxy, target: targetId });
  }
}

/** NAMES_LISTED names, escaped, and how many more: a config of 10,000 proxies made a 100 KB error. */
const NAMES_LISTED = 20;

function someNames(names: readonly string[]): string {
  if (names.length === 0) return '(none)';
  const shown = names.slice(0, NAMES_LISTED).map((n) => echo(n)).join(', ');
  return names.length > NAMES_LISTED ? `${shown} and ${names.length - NAMES_LISTED} more` : shown;
}
