import { describe, expect, it } from 'vitest';
import {
  applyCheckResult, healthFraction, initialHealthState, type CheckResult, type HealthState,
} from '../../../src/runtime/health/state.js';

const ok: CheckResult = { ok: true, latencyMs: 2 };
const fail: CheckResult = { ok: false, latencyMs: 3, error: 'ECONNREFUSED' };
const t = { healthyThreshold: 2, unhealthyThreshold: 3 };

function run(results: CheckResult[], from: HealthState = initialHealthState()): HealthState[] {
  const out: HealthState[] = [];
  let s = from;
  results.forEach((r, i) => { s = applyCheckResult(s, r, t, 1000 * (i + 1)); out.push(s); });
  return out;
}
const trace = (states: HealthState[]): string[] => states.map((s) => (s.status === 'recovering' ? `recovering${s.recoveryStep}` : s.status));

describe('health state machine', () => {
  it('starts unknown with the full weight, and the first success makes it healthy', () => {
    expect(initialHealthState().status).toBe('unknown');
    expect(healthFraction(initialHealthState())).toBe(1);
    expect(trace(run([ok]))).toEqual(['healthy']);
  });

  it('unknown needs unhealthyThreshold failures too (a restart does not drop live backends on one blip)', () => {
    expect(trace(run([fail, fail, fail]))).toEqual(['unknown', 'unknown', 'unhealthy']);
  });

  it('goes unhealthy after exactly unhealthyThreshold consecutive failures; a success in between resets the count', () => {
    expect(trace(run([ok, fail, fail, ok, fail, fail, fail]))).toEqual(
      ['healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'unhealthy']);
  });

  it('recovers through 25/50/75% after healthyThreshold successes, then healthy', () => {
    const down = run([fail, fail, fail]).at(-1)!;
    const states = run([ok, ok, ok, ok, ok], down);
    expect(trace(states)).toEqual(['unhealthy', 'recovering1', 'recovering2', 'recovering3', 'healthy']);
    expect(states.map(healthFraction)).toEqual([0, 0.25, 0.5, 0.75, 1]);
  });

  it('a failure while recovering returns to unhealthy and restarts the count', () => {
    const down = run([fail, fail, fail]).at(-1)!;
    expect(trace(run([ok, ok, ok, fail, ok, ok], down))).toEqual(
      ['unhealthy', 'recovering1', 'recovering2', 'unhealthy', 'unhealthy', 'recovering1']);
  });

  it('a failure while unhealthy resets the success count', () => {
    const down = run([fail, fail, fail]).at(-1)!;
    expect(trace(run([ok, fail, ok, ok], down))).toEqual(['unhealthy', 'unhealthy', 'unhealthy', 'recovering1']);
  });

  it('records latency, error, counts and when the status changed', () => {
    const [a, b] = run([ok, fail]);
    expect(a).toMatchObject({ checks: 1, lastCheckAt: 1000, lastLatencyMs: 2, lastError: null, changedAt: 1000, consecutiveSuccesses: 1 });
    expect(b).toMatchObject({ checks: 2, lastCheckAt: 2000, lastLatencyMs: 3, lastError: 'ECONNREFUSED', changedAt: 1000, consecutiveFailures: 1 });
  });

  it('healthyThreshold 1 and unhealthyThreshold 1 act on the first result', () => {
    const t1 = { healthyThreshold: 1, unhealthyThreshold: 1 };
    const down = applyCheckResult(initialHealthState(), fail, t1, 1);
    expect(down.status).toBe('unhealthy');
    expect(applyCheckResult(down, ok, t1, 2)).toMatchObject({ status: 'recovering', recoveryStep: 1 });
  });

  it('a target without a check counts as healthy', () => {
    expect(healthFraction(undefined)).toBe(1);
  });
});
