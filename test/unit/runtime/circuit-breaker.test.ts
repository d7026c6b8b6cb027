import { describe, expect, it } from 'vitest';
import {
  CircuitBreakers, circuitErrorRate, circuitFraction, circuitStateValue, initialCircuitState, stepCircuit,
  type CircuitBreakerSettings, type CircuitEvent, type CircuitState,
} from '../../../src/runtime/circuit-breaker.js';
import { isLbError } from '../../../src/core/errors.js';

const s: CircuitBreakerSettings = { errorThresholdPct: 50, minRequests: 10, windowSizeMs: 10_000, openDurationMs: 5_000, halfOpenRequests: 3 };
const sample = (attempts: number, failures: number): CircuitEvent => ({ type: 'sample', attempts, failures });

function drive(events: [number, CircuitEvent][], from: CircuitState = initialCircuitState()): { state: CircuitState; log: string[] } {
  let state = from;
  const log: string[] = [];
  for (const [now, e] of events) {
    const r = stepCircuit(state, e, s, now);
    state = r.state;
    for (const t of r.transitions) log.push(`${t.at}:${t.from}->${t.to}`);
  }
  return { state, log };
}

describe('circuit breaker (pure)', () => {
  it('stays closed below min-requests even at 100% errors', () => {
    const { state, log } = drive([[1000, sample(9, 9)]]);
    expect(state.status).toBe('closed');
    expect(log).toEqual([]);
  });

  it('stays closed below the error threshold', () => {
    const { state } = drive([[1000, sample(10, 4)], [2000, sample(10, 5)]]);
    expect(state.status).toBe('closed');
    expect(circuitErrorRate(state, s, 2000)).toEqual({ attempts: 20, failures: 9, rate: 0.45 });
  });

  it('opens when the window reaches min-requests and the threshold (>=)', () => {
    const { state, log } = drive([[1000, sample(5, 3)], [2000, sample(5, 2)]]);
    expect(state.status).toBe('open');
    expect(log).toEqual(['2000:closed->open']);
    expect(state.openedAt).toBe(2000);
    expect(state.reason).toMatch(/error rate 50% \(5\/10\)/);
  });

  it('forgets samples older than the window (sliding)', () => {
    // 10 failures at t=1s slide out by t=11.5s; 10 successes then keep it closed.
    const { state } = drive([[1000, sample(8, 8)], [11_500, sample(10, 1)]]);
    expect(state.status).toBe('closed');
    expect(circuitErrorRate(state, s, 11_500)).toMatchObject({ attempts: 10, failures: 1 });
  });

  it('counts samples inside the window together', () => {
    const { state } = drive([[1000, sample(8, 8)], [9_000, sample(2, 0)]]);
    expect(state.status).toBe('open');
  });

  it('goes half-open after open-duration (by tick or by a sample), not before', () => {
    const opened = drive([[1000, sample(10, 10)]]).state;
    expect(drive([[5_999, { type: 'tick' }]], opened).state.status).toBe('open');
    expect(drive([[6_000, { type: 'tick' }]], opened).log).toEqual(['6000:open->half-open']);
    expect(drive([[6_000, sample(0, 0)]], opened).state.status).toBe('half-open');
  });

  it('ignores samples while open (they were measured before probing)', () => {
    const opened = drive([[1000, sample(10, 10)]]).state;
    const r = drive([[3000, sample(50, 0)], [6_000, sample(5, 5)]], opened);
    // the 6 s sample covers the open period: applied as open (ignored), then time moves to half-open
    expect(r.state.status).toBe('half-open');
    expect(r.state.halfOpenSuccesses).toBe(0);
  });

  it('half-open closes after half-open-requests successful attempts in total', () => {
    const half = drive([[1000, sample(10, 10)], [6_000, { type: 'tick' }]]).state;
    const r = drive([[7_000, sample(1, 0)], [8_000, sample(1, 0)], [9_000, sample(0, 0)], [10_000, sample(1, 0)]], half);
    expect(r.log).toEqual(['10000:half-open->closed']);
    expect(r.state.buckets).toEqual([]);
  });

  it('half-open re-opens on a failure, and the open duration starts again', () => {
    const half = drive([[1000, sample(10, 10)], [6_000, { type: 'tick' }]]).state;
    const r = drive([[7_000, sample(2, 0)], [8_000, sample(2, 1)], [12_999, { type: 'tick' }], [13_000, { type: 'tick' }]], half);
    expect(r.log).toEqual(['8000:half-open->open', '13000:open->half-open']);
    expect(r.state.halfOpenSuccesses).toBe(0);
  });

  it('a closed circuit after recovery starts with an empty window', () => {
    const half = drive([[1000, sample(10, 10)], [6_000, { type: 'tick' }]]).state;
    const closed = drive([[7_000, sample(3, 0)]], half).state;
    expect(closed.status).toBe('closed');
    // 9 failures alone are below min-requests: the old failures do not count
    expect(drive([[7_500, sample(9, 9)]], closed).state.status).toBe('closed');
  });

  it('force-open holds against time; force-close holds against errors but keeps measuring; reset returns to automatic', () => {
    const forced = drive([[1000, { type: 'force-open' }], [100_000, { type: 'tick' }], [100_001, sample(100, 0)]]);
    expect(forced.state).toMatchObject({ status: 'open', mode: 'forced-open' });
    expect(forced.log).toEqual(['1000:closed->open']);

    const held = drive([[1000, { type: 'force-close' }], [2000, sample(100, 100)]]);
    expect(held.state).toMatchObject({ status: 'closed', mode: 'forced-closed' });
    expect(circuitErrorRate(held.state, s, 2000).rate).toBe(1);

    const reset = drive([[3000, { type: 'reset' }]], held.state);
    expect(reset.state).toMatchObject({ status: 'closed', mode: 'auto', buckets: [] });
    expect(drive([[4000, sample(10, 10)]], reset.state).state.status).toBe('open');
  });

  it('force-close from open closes, force-open from half-open opens, reset from open closes', () => {
    const opened = drive([[1000, sample(10, 10)]]).state;
    expect(drive([[2000, { type: 'force-close' }]], opened).log).toEqual(['2000:open->closed']);
    const half = drive([[6_000, { type: 'tick' }]], opened).state;
    expect(drive([[7000, { type: 'force-open' }]], half).log).toEqual(['7000:half-open->open']);
    expect(drive([[2000, { type: 'reset' }]], opened).log).toEqual(['2000:open->closed']);
  });

  it('treats failures above attempts, negative and fractional counts sanely', () => {
    const { state } = drive([[1000, sample(3, 5)]]);
    expect(circuitErrorRate(state, s, 1000)).toMatchObject({ attempts: 5, failures: 5 });
    expect(drive([[1000, sample(-5, -1)]]).state.buckets).toEqual([]);
  });

  it('keeps memory bounded: one bucket per window/20 whatever the sample rate', () => {
    let st = initialCircuitState();
    for (let t = 0; t < 30_000; t += 10) st = stepCircuit(st, sample(1, 0), s, t).state;
    expect(st.buckets.length).toBeLessThanOrEqual(20);
  });

  it('late failures (attempts found unanswered after a bound) add failures, not attempts; the rate never exceeds 100 %', () => {
    const { state, log } = drive([
      [1000, sample(10, 0)],
      [4000, { type: 'sample', attempts: 0, failures: 10, lateFailures: 10 }],
    ]);
    expect(log).toEqual(['4000:closed->open']);
    expect(state.reason).toBe('error rate 100% (10/10) >= 50% in 10000 ms');
    // Without lateFailures the same failures would count as new attempts too (50 %).
    const plain = drive([[1000, sample(10, 0)], [4000, sample(0, 9)]]);
    expect(circuitErrorRate(plain.state, s, 4000)).toMatchObject({ attempts: 19, failures: 9 });
    // The attempts aged out of the window, their late failures not: at most 100 %.
    const aged = drive([[1000, sample(10, 0)], [10_500, { type: 'sample', attempts: 0, failures: 4, lateFailures: 4 }]],
      { ...initialCircuitState(), mode: 'forced-closed' });
    expect(circuitErrorRate(aged.state, s, 11_500)).toMatchObject({ attempts: 0, failures: 4, rate: 0 });
    const partly = drive([[9000, sample(2, 0)], [10_500, { type: 'sample', attempts: 0, failures: 4, lateFailures: 4 }]],
      { ...initialCircuitState(), mode: 'forced-closed' });
    expect(circuitErrorRate(partly.state, s, 10_600)).toMatchObject({ attempts: 2, failures: 4, rate: 1 });
  });

  it('maps states to weight shares and metric values', () => {
    expect([circuitFraction(undefined), circuitFraction({ status: 'closed' }), circuitFraction({ status: 'half-open' }), circuitFraction({ status: 'open' })])
      .toEqual([1, 1, 0.1, 0]);
    expect(['closed', 'half-open', 'open'].map((x) => circuitStateValue(x as never))).toEqual([0, 1, 2]);
  });
});

describe('CircuitBreakers registry', () => {
  const settings = { enabled: true, ...s };

  it('tracks backends separately and reports transitions with the backend', () => {
    const cb = new CircuitBreakers(settings);
    expect(cb.observe('10.0.0.1:80', { attempts: 10, failures: 10 }, 1000)).toEqual([
      expect.objectContaining({ backend: '10.0.0.1:80', from: 'closed', to: 'open', at: 1000 }),
    ]);
    expect(cb.observe('10.0.0.2:80', { attempts: 10, failures: 0 }, 1000)).toEqual([]);
    expect(cb.tick(6000).map((t) => `${t.backend} ${t.to}`)).toEqual(['10.0.0.1:80 half-open']);
    expect(cb.errorRate('10.0.0.2:80', 6000)).toBe(0);
    expect([...cb.snapshot().keys()]).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    cb.retain(['10.0.0.2:80']);
    expect([...cb.snapshot().keys()]).toEqual(['10.0.0.2:80']);
  });

  it('manual commands work on a backend never sampled', () => {
    const cb = new CircuitBreakers(settings);
    cb.forceOpen('10.0.0.9:80', 5);
    expect(cb.state('10.0.0.9:80')).toMatchObject({ status: 'open', mode: 'forced-open' });
    cb.reset('10.0.0.9:80', 6);
    expect(cb.state('10.0.0.9:80')?.status).toBe('closed');
  });

  it('disabled: observes nothing, and manual commands say why they cannot act', () => {
    const cb = new CircuitBreakers({ ...settings, enabled: false });
    expect(cb.observe('10.0.0.1:80', { attempts: 100, failures: 100 }, 1)).toEqual([]);
    expect(cb.snapshot().size).toBe(0);
    let err: unknown;
    try { cb.forceOpen('10.0.0.1:80', 1); } catch (e) { err = e; }
    expect(isLbError(err, 'LB_RUNTIME_BREAKER_DISABLED')).toBe(true);
  });

  it('disabling through configure drops every state', () => {
    const cb = new CircuitBreakers(settings);
    cb.forceOpen('10.0.0.1:80', 1);
    cb.configure({ ...settings, enabled: false });
    expect(cb.snapshot().size).toBe(0);
  });
});
