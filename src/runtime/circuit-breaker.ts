// Circuit breaker per backend (addr:port), fed by real traffic. Pure: time is an argument; the
// daemon reads the data plane's cumulative counters and calls in (no timers, no I/O here);
// CounterDeltas turns two reads into a sample.
//
// Input: periodic samples {attempts, failures} per backend, each covering the time since the
// previous sample: attempts = new flows (lb_tstats new_flows delta), failures = failed connection
// attempts (a RST answering the SYN, or a SYN unanswered within a bound; counted by the data
// plane). Sample every backend every period, also with {0, 0}: samples drive the clock too.
//
//   CLOSED    --window has >= minRequests attempts and failures/attempts >= errorThresholdPct--> OPEN
//   OPEN      --openDurationMs elapsed--> HALF-OPEN  (effective weight ~10%: test traffic)
//   HALF-OPEN --a sample with a failure--> OPEN       (the open duration starts again)
//   HALF-OPEN --halfOpenRequests successful attempts in total--> CLOSED (window cleared)
//   manual: force-open (stays OPEN), force-close (stays CLOSED, still measures), reset (CLOSED,
//   automatic, window cleared). Forced states hold until reset or the other force.
//
// The window is sliding in WINDOW_BUCKETS buckets of windowSizeMs / WINDOW_BUCKETS: memory is
// bounded whatever the sampling rate, and the window's edge is accurate to one bucket.
// Samples that arrive while OPEN are not counted (flows started before the weight went to 0, or
// traffic a fail-open group sends anyway); a sample is applied in the state it was measured in,
// then time advances (a sample spanning the end of the open duration is not a probe).

import type { Settings } from '../core/config/types.js';
import { LbError } from '../core/errors.js';

export type CircuitStatus = 'closed' | 'open' | 'half-open';
export type CircuitMode = 'auto' | 'forced-open' | 'forced-closed';
export type CircuitBreakerSettings = Omit<Settings['circuitBreaker'], 'enabled'>;

export const WINDOW_BUCKETS = 20;
/** Share of its weight a HALF-OPEN backend keeps (at least 1 when its weight is > 0). */
export const HALF_OPEN_WEIGHT_FRACTION = 0.1;

export interface CircuitSample {
  attempts: number;
  failures: number;
  /**
   * How many of `failures` belong to attempts counted in an earlier sample (a connection attempt
   * found unanswered only after a bound): they add a failure, not an attempt. Default 0.
   */
  lateFailures?: number;
}

export interface CircuitBucket {
  /** Start of the bucket, ms (a multiple of the bucket length). */
  start: number;
  attempts: number;
  failures: number;
}

export interface CircuitState {
  status: CircuitStatus;
  mode: CircuitMode;
  /** Oldest first; only buckets inside the window. */
  buckets: CircuitBucket[];
  /** When it last opened (the open duration runs from here); null when never. */
  openedAt: number | null;
  /** Successful attempts seen in this HALF-OPEN period. */
  halfOpenSuccesses: number;
  changedAt: number | null;
  /** Why the last transition happened. */
  reason: string | null;
}

export type CircuitEvent =
  | ({ type: 'sample' } & CircuitSample)
  | { type: 'tick' }
  | { type: 'force-open' }
  | { type: 'force-close' }
  | { type: 'reset' };

export interface CircuitTransition {
  from: CircuitStatus;
  to: CircuitStatus;
  reason: string;
  at: number;
}

export interface CircuitStep {
  state: CircuitState;
  /** The status changes this event caused, in order (empty when the status did not change). */
  transitions: CircuitTransition[];
}

export function initialCircuitState(): CircuitState {
  return { status: 'closed', mode: 'auto', buckets: [], openedAt: null, halfOpenSuccesses: 0, changedAt: null, reason: null };
}

export function stepCircuit(state: CircuitState, event: CircuitEvent, s: CircuitBreakerSettings, now: number): CircuitStep {
  const transitions: CircuitTransition[] = [];
  const move = (st: CircuitState, to: CircuitStatus, reason: string, patch: Partial<CircuitState> = {}): CircuitState => {
    if (st.status !== to) transitions.push({ from: st.status, to, reason, at: now });
    return { ...st, ...patch, status: to, changedAt: st.status !== to ? now : st.changedAt, reason: st.status !== to ? reason : st.reason };
  };

  let st: CircuitState = { ...state, buckets: pruneBuckets(state.buckets, s, now) };
  switch (event.type) {
    case 'force-open':
      st = move(st, 'open', 'forced open', { mode: 'forced-open', openedAt: now, halfOpenSuccesses: 0 });
      break;
    case 'force-close':
      st = move(st, 'closed', 'forced closed', { mode: 'forced-closed', halfOpenSuccesses: 0 });
      break;
    case 'reset':
      st = move(st, 'closed', 'reset', { mode: 'auto', buckets: [], halfOpenSuccesses: 0 });
      break;
    case 'sample':
      st = applySample(st, sanitize(event), s, now, move);
      break;
    case 'tick':
      break;
  }
  if (st.mode === 'auto' && st.status === 'open' && st.openedAt !== null && now - st.openedAt >= s.openDurationMs) {
    st = move(st, 'half-open', `open for ${s.openDurationMs} ms: probing`, { halfOpenSuccesses: 0 });
  }
  return { state: st, transitions };
}

type Move = (st: CircuitState, to: CircuitStatus, reason: string, patch?: Partial<CircuitState>) => CircuitState;

function applySample(st: CircuitState, sample: CircuitSample, s: CircuitBreakerSettings, now: number, move: Move): CircuitState {
  if (st.status === 'open') return st;
  if (st.status === 'half-open') {
    if (sample.failures > 0) {
      return move(st, 'open', `${sample.failures} of ${sample.attempts} probe attempts failed`, { openedAt: now, halfOpenSuccesses: 0, buckets: [] });
    }
    const successes = st.halfOpenSuccesses + sample.attempts;
    if (successes >= s.halfOpenRequests) {
      return move(st, 'closed', `${successes} probe attempts succeeded`, { halfOpenSuccesses: 0, buckets: [] });
    }
    return { ...st, halfOpenSuccesses: successes };
  }
  const buckets = addToBuckets(st.buckets, sample, s, now);
  const next = { ...st, buckets };
  if (st.mode !== 'auto') return next;
  const { attempts, failures } = totals(buckets);
  if (attempts >= s.minRequests && failures * 100 >= s.errorThresholdPct * attempts) {
    const pct = Math.min(100, Math.round((failures * 1000) / attempts) / 10);
    return move(next, 'open', `error rate ${pct}% (${failures}/${attempts}) >= ${s.errorThresholdPct}% in ${s.windowSizeMs} ms`,
      { openedAt: now, halfOpenSuccesses: 0, buckets: [] });
  }
  return next;
}

function sanitize(e: CircuitSample): CircuitSample {
  const count = (n: number | undefined): number => (n !== undefined && Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);
  const attempts = count(e.attempts);
  const failures = count(e.failures);
  const late = Math.min(count(e.lateFailures), failures);
  // A failed attempt is an attempt: counters read at slightly different instants must not
  // yield a rate above 100%. Late failures were counted as attempts before.
  return { attempts: Math.max(attempts, failures - late), failures };
}

function bucketMs(s: CircuitBreakerSettings): number {
  return Math.max(1, Math.floor(s.windowSizeMs / WINDOW_BUCKETS));
}

function pruneBuckets(buckets: readonly CircuitBucket[], s: CircuitBreakerSettings, now: number): CircuitBucket[] {
  return buckets.filter((b) => b.start > now - s.windowSizeMs);
}

function addToBuckets(buckets: readonly CircuitBucket[], sample: CircuitSample, s: CircuitBreakerSettings, now: number): CircuitBucket[] {
  if (sample.attempts === 0 && sample.failures === 0) return [...buckets];
  const size = bucketMs(s);
  const start = Math.floor(now / size) * size;
  const out = buckets.map((b) => ({ ...b }));
  const last = out[out.length - 1];
  if (last && last.start === start) {
    last.attempts += sample.attempts;
    last.failures += sample.failures;
  } else {
    out.push({ start, attempts: sample.attempts, failures: sample.failures });
  }
  return out;
}

function totals(buckets: readonly CircuitBucket[]): CircuitSample {
  let attempts = 0;
  let failures = 0;
  for (const b of buckets) { attempts += b.attempts; failures += b.failures; }
  return { attempts, failures };
}

/** Attempts, failures and their ratio (0..1; 0 without attempts) in the window ending at `now`. */
export function circuitErrorRate(state: CircuitState, s: CircuitBreakerSettings, now: number): CircuitSample & { rate: number } {
  const t = totals(pruneBuckets(state.buckets, s, now));
  // Late failures may outlive their attempts in the window: never above 100%.
  return { ...t, rate: t.attempts === 0 ? 0 : Math.min(1, t.failures / t.attempts) };
}

/** Share of its weight the circuit lets through: 1 closed, HALF_OPEN_WEIGHT_FRACTION half-open, 0 open. */
export function circuitFraction(state: Pick<CircuitState, 'status'> | undefined): number {
  switch (state?.status) {
    case undefined:
    case 'closed':
      return 1;
    case 'half-open':
      return HALF_OPEN_WEIGHT_FRACTION;
    case 'open':
      return 0;
  }
}

/** Prometheus value of lb_circuit_breaker_state (as the original: 0 closed, 1 half-open, 2 open). */
export function circuitStateValue(status: CircuitStatus): number {
  return status === 'closed' ? 0 : status === 'half-open' ? 1 : 2;
}

// ---- from the data plane's cumulative counters to samples ------------------------------------

/** One backend's cumulative counters as read from the data plane (its lb_tstats slot). */
export interface CounterReading {
  /** The lb_tstats slot: a new id is a new series (no delta across it). */
  targetId: number;
  newFlows: bigint;
  failedConns: bigint;
}

/** One read of the data plane, as far as the breaker is concerned. */
export interface DataPlaneReading {
  counters: ReadonlyMap<string, CounterReading>;
  /** Connection attempts found unanswered since the previous read, per backend. */
  unanswered: ReadonlyMap<string, number>;
}

/**
 * The sample of one backend between two reads: attempts = new flows, failures = failed
 * connections + attempts found unanswered. Counter deltas only within one series: a first read, a
 * new slot, or counters that went back (a map recreated) give no delta. Unanswered attempts are
 * found after a bound, so they were counted as attempts when they started: late failures.
 */
export function sampleBetween(prev: CounterReading | undefined, cur: CounterReading | undefined, unanswered: number): CircuitSample {
  let attempts = 0;
  let refused = 0;
  if (cur && prev && cur.targetId === prev.targetId && cur.newFlows >= prev.newFlows && cur.failedConns >= prev.failedConns) {
    attempts = Number(cur.newFlows - prev.newFlows);
    refused = Number(cur.failedConns - prev.failedConns);
  }
  return { attempts, failures: refused + unanswered, lateFailures: unanswered };
}

/**
 * The last reading of every backend, so each read of the data plane becomes one sample per
 * backend (sampleBetween). Also kept while the breaker is disabled (remember()), so enabling it
 * does not count everything since the previous read as one sample.
 */
export class CounterDeltas {
  private readonly last = new Map<string, CounterReading>();

  /**
   * One sample for each of `backends` (every backend of the config, also without traffic: samples
   * drive the breaker's clock) from a read (null: nothing read, every sample empty).
   */
  samples(backends: Iterable<string>, reading: DataPlaneReading | null): [string, CircuitSample][] {
    const out: [string, CircuitSample][] = [];
    for (const backend of backends) {
      const cur = reading?.counters.get(backend);
      const sample = sampleBetween(this.last.get(backend), cur, reading?.unanswered.get(backend) ?? 0);
      if (cur) this.last.set(backend, cur);
      out.push([backend, sample]);
    }
    return out;
  }

  /** The breaker is off: remember every backend's counters, sample nothing. */
  remember(reading: DataPlaneReading | null): void {
    if (reading) for (const [backend, c] of reading.counters) this.last.set(backend, c);
  }

  /** Forgets backends that are no longer in the config. */
  retain(backends: Iterable<string>): void {
    const keep = new Set(backends);
    for (const key of this.last.keys()) if (!keep.has(key)) this.last.delete(key);
  }

  /** The last reading of a backend (tests, debugging). */
  reading(backend: string): CounterReading | undefined {
    return this.last.get(backend);
  }
}

export interface BackendTransition extends CircuitTransition {
  backend: string;
}

/**
 * The breakers of every backend (key "addr:port"). A container over stepCircuit: no timers, the
 * caller passes the time. Disabled (settings.circuit-breaker.enabled false): observe and tick do
 * nothing, the snapshot is empty, and the manual commands throw LB_RUNTIME_BREAKER_DISABLED.
 */
export class CircuitBreakers {
  private readonly states = new Map<string, CircuitState>();
  private settings: Settings['circuitBreaker'];

  constructor(settings: Settings['circuitBreaker']) {
    this.settings = settings;
  }

  /** New settings (config reload). Disabling drops every state, forced ones included. */
  configure(settings: Settings['circuitBreaker']): void {
    this.settings = settings;
    if (!settings.enabled) this.states.clear();
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /** Forgets backends that are no longer in the config. */
  retain(backends: Iterable<string>): void {
    const keep = new Set(backends);
    for (const key of this.states.keys()) if (!keep.has(key)) this.states.delete(key);
  }

  /** One sample of a backend's traffic since its previous sample. */
  observe(backend: string, sample: CircuitSample, now: number): BackendTransition[] {
    if (!this.settings.enabled) return [];
    return this.apply(backend, { type: 'sample', ...sample }, now);
  }

  /** One sample per backend (CounterDeltas.samples), in order; the transitions they caused. */
  observeAll(samples: Iterable<[string, CircuitSample]>, now: number): BackendTransition[] {
    const transitions: BackendTransition[] = [];
    for (const [backend, sample] of samples) transitions.push(...this.observe(backend, sample, now));
    return transitions;
  }

  /** Advances time for every backend (OPEN -> HALF-OPEN when no samples arrive). */
  tick(now: number): BackendTransition[] {
    if (!this.settings.enabled) return [];
    return [...this.states.keys()].flatMap((b) => this.apply(b, { type: 'tick' }, now));
  }

  forceOpen(backend: string, now: number): BackendTransition[] {
    return this.manual(backend, { type: 'force-open' }, now);
  }

  forceClose(backend: string, now: number): BackendTransition[] {
    return this.manual(backend, { type: 'force-close' }, now);
  }

  reset(backend: string, now: number): BackendTransition[] {
    return this.manual(backend, { type: 'reset' }, now);
  }

  state(backend: string): CircuitState | undefined {
    return this.states.get(backend);
  }

  /** Backend -> state, for buildRuntimeInputs, status and metrics. Backends never sampled are absent (closed). */
  snapshot(): Map<string, CircuitState> {
    return new Map(this.states);
  }

  errorRate(backend: string, now: number): number {
    const st = this.states.get(backend);
    return st ? circuitErrorRate(st, this.settings, now).rate : 0;
  }

  private manual(backend: string, event: CircuitEvent, now: number): BackendTransition[] {
    if (!this.settings.enabled) {
      throw new LbError('LB_RUNTIME_BREAKER_DISABLED',
        `the circuit breaker is disabled (settings.circuit-breaker.enabled is false); cannot ${event.type} ${backend}`, { backend, action: event.type });
    }
    return this.apply(backend, event, now);
  }

  private apply(backend: string, event: CircuitEvent, now: number): BackendTransition[] {
    const { state, transitions } = stepCircuit(this.states.get(backend) ?? initialCircuitState(), event, this.settings, now);
    this.states.set(backend, state);
    return transitions.map((t) => ({ ...t, backend }));
  }
}
