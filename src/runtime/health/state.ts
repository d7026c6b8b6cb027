// The health state machine of one checked endpoint. Pure: a check result and the time go in, the
// next state comes out; the monitor (monitor.ts) owns the clock and the sockets.
//
//   unknown    --success--> healthy
//   unknown    --unhealthyThreshold consecutive failures--> unhealthy
//   healthy    --unhealthyThreshold consecutive failures--> unhealthy
//   unhealthy  --healthyThreshold consecutive successes--> recovering step 1 (25% of the weight)
//   recovering step s --success--> step s+1 (50%, 75%), after step 3 --success--> healthy (100%)
//   recovering --any failure--> unhealthy (a backend that fails while it ramps up is not ready)
//
// Decisions:
// - `unknown` (no result yet, e.g. right after a daemon restart) carries the full weight and the
//   normal unhealthy threshold: a restart must not take traffic off live backends because of one
//   slow first check. A new backend that is down therefore gets traffic for up to
//   unhealthyThreshold intervals; the fail-open rule (effective-weight.ts) covers whole groups.
// - Recovery is counted in checks, not in time, so it scales with the check interval.

export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy' | 'recovering';

/** Steps of gradual recovery: step s carries s/(RECOVERY_STEPS + 1) of the weight (25/50/75%). */
export const RECOVERY_STEPS = 3;

export interface HealthThresholds {
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export interface CheckResult {
  ok: boolean;
  /** Time to the verdict (connect, or status line), ms; the timeout when it timed out. */
  latencyMs: number;
  /** Why it failed ("ECONNREFUSED", "status 503", "timeout after 3000 ms"); absent on success. */
  error?: string;
  /** HTTP(S) status code, when one was received. */
  statusCode?: number;
}

export interface HealthState {
  status: HealthStatus;
  /** 1..RECOVERY_STEPS while recovering, else 0. */
  recoveryStep: number;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  checks: number;
  lastCheckAt: number | null;
  lastLatencyMs: number | null;
  lastError: string | null;
  /** When the status (or recovery step) last changed; null: never. */
  changedAt: number | null;
}

export function initialHealthState(): HealthState {
  return {
    status: 'unknown', recoveryStep: 0, consecutiveSuccesses: 0, consecutiveFailures: 0, checks: 0,
    lastCheckAt: null, lastLatencyMs: null, lastError: null, changedAt: null,
  };
}

/** The next state after one check result at time `now` (ms). */
export function applyCheckResult(state: HealthState, result: CheckResult, t: HealthThresholds, now: number): HealthState {
  const successes = result.ok ? state.consecutiveSuccesses + 1 : 0;
  const failures = result.ok ? 0 : state.consecutiveFailures + 1;
  let status = state.status;
  let step = state.recoveryStep;
  switch (state.status) {
    case 'unknown':
    case 'healthy':
      if (result.ok) status = 'healthy';
      else if (failures >= t.unhealthyThreshold) status = 'unhealthy';
      break;
    case 'unhealthy':
      if (result.ok && successes >= t.healthyThreshold) { status = 'recovering'; step = 1; }
      break;
    case 'recovering':
      if (!result.ok) { status = 'unhealthy'; step = 0; }
      else if (step >= RECOVERY_STEPS) { status = 'healthy'; step = 0; }
      else step += 1;
      break;
  }
  if (status !== 'recovering') step = 0;
  const changed = status !== state.status || step !== state.recoveryStep;
  return {
    status, recoveryStep: step, consecutiveSuccesses: successes, consecutiveFailures: failures,
    checks: state.checks + 1, lastCheckAt: now, lastLatencyMs: result.latencyMs,
    lastError: result.ok ? null : (result.error ?? 'failed'), changedAt: changed ? now : state.changedAt,
  };
}

/** Share of the configured weight a health state allows: 1, 0, or 0.25/0.5/0.75 while recovering. */
export function healthFraction(state: Pick<HealthState, 'status' | 'recoveryStep'> | undefined): number {
  if (state === undefined) return 1;
  switch (state.status) {
    case 'unknown':
    case 'healthy':
      return 1;
    case 'unhealthy':
      return 0;
    case 'recovering':
      return state.recoveryStep / (RECOVERY_STEPS + 1);
  }
}
