// The breaker's arithmetic as tables: from two reads of the data plane's counters to a sample
// (sampleBetween, CounterDeltas), and from samples and time to states (stepCircuit): the sliding
// window's edges, the thresholds' edges, OPEN -> HALF-OPEN -> CLOSED and back, manual modes.
// Settings: window 10 s in 20 buckets of 500 ms, >= 50 % of >= 10 attempts opens, open 5 s,
// 3 successful probes close.

import { describe, expect, it } from 'vitest';
import {
  CircuitBreakers, CounterDeltas, circuitErrorRate, initialCircuitState, sampleBetween, stepCircuit,
  type CircuitBreakerSettings, type CircuitEvent, type CircuitSample, type CircuitStatus, type CounterReading, type DataPlaneReading,
} from '../../../src/runtime/circuit-breaker.js';

const s: CircuitBreakerSettings = { errorThresholdPct: 50, minRequests: 10, windowSizeMs: 10_000, openDurationMs: 5_000, halfOpenRequests: 3 };
const smp = (attempts: number, failures: number, lateFailures?: number): CircuitEvent =>
  ({ type: 'sample', attempts, failures, ...(lateFailures !== undefined ? { lateFailures } : {}) });
const tick: CircuitEvent = { type: 'tick' };
const c = (targetId: number, newFlows: number | bigint, failedConns: number | bigint): CounterReading =>
  ({ targetId, newFlows: BigInt(newFlows), failedConns: BigInt(failedConns) });

describe('stepCircuit, as a table', () => {
  interface Row {
    name: string;
    events: [number, CircuitEvent][];
    status: CircuitStatus;
    /** Every transition, "at:from->to". */
    log: string[];
    /** The window's totals at the last event's time. */
    window?: { attempts: number; failures: number };
  }
  const rows: Row[] = [
    { name: 'below min-requests at 100 % errors: closed', events: [[1000, smp(9, 9)]], status: 'closed', log: [], window: { attempts: 9, failures: 9 } },
    { name: 'exactly min-requests at exactly the threshold: open', events: [[1000, smp(10, 5)]], status: 'open', log: ['1000:closed->open'] },
    { name: 'one failure short of the threshold: closed', events: [[1000, smp(10, 4)], [1200, smp(10, 5)]], status: 'closed', log: [], window: { attempts: 20, failures: 9 } },
    { name: 'min-requests reached across samples (and buckets) inside the window', events: [[1000, smp(5, 5)], [10_499, smp(5, 0)]], status: 'open', log: ['10499:closed->open'] },
    { name: 'window roll-over: a bucket that started a window ago is gone', events: [[1000, smp(5, 5)], [11_000, smp(5, 0)]], status: 'closed', log: [], window: { attempts: 5, failures: 0 } },
    { name: 'window edge is a bucket edge: 1499 ms is in the bucket of 1000 ms', events: [[1499, smp(5, 5)], [11_000, smp(5, 0)]], status: 'closed', log: [], window: { attempts: 5, failures: 0 } },
    { name: 'window edge is a bucket edge: 1500 ms starts the next bucket', events: [[1500, smp(5, 5)], [11_000, smp(5, 0)]], status: 'open', log: ['11000:closed->open'] },
    { name: 'empty samples only move the clock', events: [[1000, smp(8, 8)], [5000, smp(0, 0)], [10_999, smp(0, 0)]], status: 'closed', log: [], window: { attempts: 8, failures: 8 } },
    { name: 'open stays open until open-duration has passed', events: [[1000, smp(10, 10)], [5999, tick]], status: 'open', log: ['1000:closed->open'] },
    { name: 'open -> half-open at open-duration, by a tick', events: [[1000, smp(10, 10)], [6000, tick]], status: 'half-open', log: ['1000:closed->open', '6000:open->half-open'] },
    { name: 'samples while open are not counted, the one spanning the end is not a probe', events: [[1000, smp(10, 10)], [3000, smp(100, 0)], [6000, smp(5, 5)]], status: 'half-open', log: ['1000:closed->open', '6000:open->half-open'] },
    {
      name: 'half-open -> closed after half-open-requests successes in total',
      events: [[1000, smp(10, 10)], [6000, tick], [7000, smp(2, 0)], [7500, smp(0, 0)], [8000, smp(1, 0)]],
      status: 'closed', log: ['1000:closed->open', '6000:open->half-open', '8000:half-open->closed'], window: { attempts: 0, failures: 0 },
    },
    {
      name: 'half-open -> open on one failed probe; the open duration starts again',
      events: [[1000, smp(10, 10)], [6000, tick], [7000, smp(2, 0)], [8000, smp(2, 1)], [12_999, tick], [13_000, tick]],
      status: 'half-open', log: ['1000:closed->open', '6000:open->half-open', '8000:half-open->open', '13000:open->half-open'],
    },
    {
      name: 'closed again with an empty window: old failures do not count',
      events: [[1000, smp(10, 10)], [6000, tick], [7000, smp(3, 0)], [7500, smp(9, 9)]],
      status: 'closed', log: ['1000:closed->open', '6000:open->half-open', '7000:half-open->closed'], window: { attempts: 9, failures: 9 },
    },
    { name: 'late failures add failures, not attempts', events: [[1000, smp(10, 0)], [1500, smp(0, 5, 5)]], status: 'open', log: ['1500:closed->open'] },
    { name: 'failures not late are attempts too', events: [[1000, smp(10, 0)], [1500, smp(0, 5)]], status: 'closed', log: [], window: { attempts: 15, failures: 5 } },
    {
      name: 'forced closed keeps measuring without opening; reset returns to automatic and clears the window',
      events: [[1000, { type: 'force-close' }], [1500, smp(20, 20)], [2000, { type: 'reset' }], [2500, smp(10, 5)]],
      status: 'open', log: ['2500:closed->open'],
    },
    { name: 'forced open holds past open-duration', events: [[1000, { type: 'force-open' }], [60_000, tick], [61_000, smp(10, 0)]], status: 'open', log: ['1000:closed->open'] },
  ];

  it.each(rows)('$name', ({ events, status, log, window }) => {
    let state = initialCircuitState();
    const seen: string[] = [];
    for (const [now, e] of events) {
      const step = stepCircuit(state, e, s, now);
      state = step.state;
      for (const t of step.transitions) seen.push(`${t.at}:${t.from}->${t.to}`);
    }
    expect(seen).toEqual(log);
    expect(state.status).toBe(status);
    if (window) expect(circuitErrorRate(state, s, events.at(-1)![0])).toMatchObject(window);
  });
});

describe('sampleBetween, as a table', () => {
  const rows: { name: string; prev?: CounterReading; cur?: CounterReading; unanswered: number; sample: CircuitSample }[] = [
    { name: 'first read: a baseline, no delta', cur: c(1, 1000, 7), unanswered: 0, sample: { attempts: 0, failures: 0, lateFailures: 0 } },
    { name: 'same slot: the deltas', prev: c(1, 1000, 7), cur: c(1, 1010, 9), unanswered: 0, sample: { attempts: 10, failures: 2, lateFailures: 0 } },
    { name: 'unanswered attempts are late failures', prev: c(1, 1000, 7), cur: c(1, 1010, 9), unanswered: 3, sample: { attempts: 10, failures: 5, lateFailures: 3 } },
    { name: 'a new slot is a new series', prev: c(1, 1000, 7), cur: c(2, 5, 0), unanswered: 0, sample: { attempts: 0, failures: 0, lateFailures: 0 } },
    { name: 'new flows went back: a new series', prev: c(1, 1000, 7), cur: c(1, 10, 9), unanswered: 0, sample: { attempts: 0, failures: 0, lateFailures: 0 } },
    { name: 'failed connections went back: a new series', prev: c(1, 1000, 7), cur: c(1, 1010, 6), unanswered: 0, sample: { attempts: 0, failures: 0, lateFailures: 0 } },
    { name: 'not read at all: only what was found unanswered', prev: c(1, 1000, 7), unanswered: 2, sample: { attempts: 0, failures: 2, lateFailures: 2 } },
    { name: 'beyond 32 bits', prev: c(1, 2n ** 40n, 2n ** 33n), cur: c(1, 2n ** 40n + 3n, 2n ** 33n + 1n), unanswered: 0, sample: { attempts: 3, failures: 1, lateFailures: 0 } },
  ];

  it.each(rows)('$name', ({ prev, cur, unanswered, sample }) => {
    expect(sampleBetween(prev, cur, unanswered)).toEqual(sample);
  });
});

describe('CounterDeltas over a sequence of reads', () => {
  const A = '10.0.0.1:80';
  const B = '10.0.0.2:80';
  const read = (counters: [string, CounterReading][], unanswered: [string, number][] = []): DataPlaneReading =>
    ({ counters: new Map(counters), unanswered: new Map(unanswered) });
  type Step =
    | { op: 'samples'; backends: string[]; reading: DataPlaneReading | null; expect: [string, number, number][] }
    | { op: 'remember'; reading: DataPlaneReading | null }
    | { op: 'retain'; backends: string[] };
  const steps: Step[] = [
    { op: 'samples', backends: [A, B], reading: read([[A, c(0, 100, 1)], [B, c(1, 50, 0)]]), expect: [[A, 0, 0], [B, 0, 0]] },
    { op: 'samples', backends: [A, B], reading: read([[A, c(0, 110, 3)], [B, c(1, 50, 0)]], [[B, 1]]), expect: [[A, 10, 2], [B, 0, 1]] },
    // Nothing read (no data plane): every backend still gets a sample, the last readings stay.
    { op: 'samples', backends: [A, B], reading: null, expect: [[A, 0, 0], [B, 0, 0]] },
    { op: 'samples', backends: [A, B], reading: read([[A, c(0, 115, 3)], [B, c(1, 52, 2)]]), expect: [[A, 5, 0], [B, 2, 2]] },
    // The breaker off: readings remembered (also of backends not asked about), nothing sampled.
    { op: 'remember', reading: read([[A, c(0, 200, 3)], [B, c(1, 90, 2)]]) },
    { op: 'samples', backends: [A, B], reading: read([[A, c(0, 204, 4)], [B, c(1, 91, 2)]]), expect: [[A, 4, 1], [B, 1, 0]] },
    // B left the config and came back: its next read is a baseline again.
    { op: 'retain', backends: [A] },
    { op: 'samples', backends: [A, B], reading: read([[A, c(0, 204, 4)], [B, c(1, 99, 9)]]), expect: [[A, 0, 0], [B, 0, 0]] },
    { op: 'samples', backends: [A, B], reading: read([[A, c(0, 205, 4)], [B, c(1, 100, 9)]]), expect: [[A, 1, 0], [B, 1, 0]] },
  ];

  it('samples each backend from its previous read', () => {
    const deltas = new CounterDeltas();
    steps.forEach((step, i) => {
      if (step.op === 'remember') deltas.remember(step.reading);
      else if (step.op === 'retain') deltas.retain(step.backends);
      else {
        const got = deltas.samples(step.backends, step.reading).map(([b, x]) => [b, x.attempts, x.failures]);
        expect(got, `step ${i}`).toEqual(step.expect);
      }
    });
  });

  it('feeds CircuitBreakers.observeAll: the transitions of every backend, in order', () => {
    const breakers = new CircuitBreakers({ enabled: true, ...s });
    const deltas = new CounterDeltas();
    expect(breakers.observeAll(deltas.samples([A, B], read([[A, c(0, 0, 0)], [B, c(1, 0, 0)]])), 1000)).toEqual([]);
    const t = breakers.observeAll(deltas.samples([A, B], read([[A, c(0, 10, 10)], [B, c(1, 10, 5)]])), 1500);
    expect(t.map((x) => `${x.backend}:${x.from}->${x.to}`)).toEqual([`${A}:closed->open`, `${B}:closed->open`]);
    expect(breakers.observeAll(deltas.samples([A, B], read([[A, c(0, 10, 10)], [B, c(1, 10, 5)]])), 6500).map((x) => `${x.backend}:${x.to}`))
      .toEqual([`${A}:half-open`, `${B}:half-open`]);
  });
});
