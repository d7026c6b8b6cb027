// HealthMonitor: runs the checks of a set of specs on a schedule and keeps each endpoint's state.
// Shell: timers and sockets; the transitions are state.ts (pure).
//
// Scheduling: each check's first run is jittered uniformly over its interval (a restart does not
// probe every backend at the same instant), later runs follow every interval * [0.95, 1.05)
// after the previous run started (never two runs of one check at once: a run that outlasts the
// interval delays the next). At most `concurrency` probes are in flight; the rest wait in FIFO.
//
// Events (for the daemon): 'change' when an endpoint's status or recovery step changes (recompile
// the weights), 'check' after every probe (feed lb_health_check_latency_seconds).

import { EventEmitter } from 'node:events';
import { runProbe, type Probe } from './checkers.js';
import { applyCheckResult, initialHealthState, type CheckResult, type HealthState } from './state.js';
import type { HealthCheckSpec } from './specs.js';

export interface HealthMonitorOptions {
  /** Probes in flight at once (default 32). */
  concurrency?: number;
  /** The probe (default runProbe); tests inject a fake. */
  probe?: Probe;
  /** Uniform [0, 1) for the jitter (default Math.random). */
  random?: () => number;
  /** Wall clock, ms (default Date.now): stamps lastCheckAt and changedAt. */
  now?: () => number;
  /** Verify HTTPS certificates (default false; see checkers.ts). */
  verifyTls?: boolean;
}

export interface HealthChangeEvent {
  spec: HealthCheckSpec;
  previous: HealthState;
  state: HealthState;
}

export interface HealthCheckEvent {
  spec: HealthCheckSpec;
  result: CheckResult;
  state: HealthState;
}

interface Entry {
  spec: HealthCheckSpec;
  state: HealthState;
  timer: NodeJS.Timeout | null;
  queued: boolean;
  running: boolean;
  /** Bumped when the entry is removed, so a late result is dropped. */
  removed: boolean;
}

export class HealthMonitor extends EventEmitter<{ change: [HealthChangeEvent]; check: [HealthCheckEvent] }> {
  private readonly entries = new Map<string, Entry>();
  private readonly queue: Entry[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly concurrency: number;
  private readonly probe: Probe;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly verifyTls: boolean;
  private running = false;
  /** Probes in flight. */
  private active = 0;

  constructor(options: HealthMonitorOptions = {}) {
    super();
    this.concurrency = Math.max(1, options.concurrency ?? 32);
    this.probe = options.probe ?? runProbe;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.verifyTls = options.verifyTls ?? false;
  }

  /**
   * Replaces the set of checks (call after each config load or DNS change). A key that stays
   * keeps its state and schedule; a new key starts `unknown`; a gone key stops.
   */
  setSpecs(specs: readonly HealthCheckSpec[]): void {
    const keep = new Set(specs.map((s) => s.key));
    for (const [key, e] of this.entries) {
      if (keep.has(key)) continue;
      e.removed = true;
      if (e.timer) clearTimeout(e.timer);
      this.entries.delete(key);
    }
    for (const spec of specs) {
      const e = this.entries.get(spec.key);
      if (e) { e.spec = spec; continue; }
      const entry: Entry = { spec, state: initialHealthState(), timer: null, queued: false, running: false, removed: false };
      this.entries.set(spec.key, entry);
      if (this.running) this.schedule(entry, this.random() * spec.check.intervalMs);
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (const e of this.entries.values()) this.schedule(e, this.random() * e.spec.check.intervalMs);
  }

  /** Stops scheduling and waits for the probes in flight (their results are still recorded). */
  async stop(): Promise<void> {
    this.running = false;
    for (const e of this.entries.values()) {
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
      e.queued = false;
    }
    this.queue.length = 0;
    await Promise.all([...this.inflight]);
  }

  /** Runs the checks now (all, or one key) outside the schedule and resolves when they are done. */
  async checkNow(key?: string): Promise<void> {
    const targets = key === undefined ? [...this.entries.values()] : [this.entries.get(key)].filter((e): e is Entry => !!e);
    await Promise.all(targets.filter((e) => !e.running).map((e) => this.run(e)));
    this.pump(); // these runs took probe slots: let queued checks go
  }

  state(key: string): HealthState | undefined {
    return this.entries.get(key)?.state;
  }

  /** Current state per health key: the input of buildRuntimeInputs and the metrics. */
  snapshot(): Map<string, HealthState> {
    return new Map([...this.entries].map(([k, e]) => [k, e.state]));
  }

  specs(): HealthCheckSpec[] {
    return [...this.entries.values()].map((e) => e.spec);
  }

  private schedule(e: Entry, delayMs: number): void {
    if (!this.running || e.removed) return;
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      e.timer = null;
      this.enqueue(e);
    }, Math.max(0, delayMs));
    e.timer.unref();
  }

  private enqueue(e: Entry): void {
    if (e.queued || e.removed || !this.running) return;
    if (e.running) { // a checkNow() run is in flight: it counts as this turn
      this.schedule(e, e.spec.check.intervalMs);
      return;
    }
    e.queued = true;
    this.queue.push(e);
    this.pump();
  }

  private pump(): void {
    while (this.running && this.queue.length > 0 && this.active < this.concurrency) {
      const e = this.queue.shift()!;
      e.queued = false;
      if (e.removed) continue;
      const startedAt = performance.now();
      void this.run(e).then(() => {
        const interval = e.spec.check.intervalMs * (0.95 + 0.1 * this.random());
        this.schedule(e, interval - (performance.now() - startedAt));
        this.pump();
      });
    }
  }

  private run(e: Entry): Promise<void> {
    e.running = true;
    this.active++;
    const spec = e.spec;
    const p = Promise.resolve()
      .then(() => this.probe({ addr: spec.addr, port: spec.port, check: spec.check, ...(spec.host ? { host: spec.host } : {}), verifyTls: this.verifyTls }))
      .catch((err: unknown): CheckResult => ({ ok: false, latencyMs: 0, error: `probe failed: ${String(err)}` }))
      .then((result) => {
        e.running = false;
        this.active--;
        if (e.removed) return;
        const previous = e.state;
        const state = applyCheckResult(previous, result, spec.check, this.now());
        e.state = state;
        this.emit('check', { spec: e.spec, result, state });
        if (state.status !== previous.status || state.recoveryStep !== previous.recoveryStep) {
          this.emit('change', { spec: e.spec, previous, state });
        }
      });
    const tracked = p.finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
    return tracked;
  }
}
