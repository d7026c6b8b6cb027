// The reconciler's time: the wall clock it stamps the status with, a monotonic clock for
// durations, and the timers of retries and settle windows. One injectable seam, so tests drive
// time by hand instead of sleeping (test/unit/reconcile/fake-clock.ts).

import { performance } from 'node:perf_hooks';

/** An opaque timer handle, as the clock's setTimeout returns it. */
export type TimerHandle = unknown;

export interface Clock {
  /** Wall-clock milliseconds since the epoch (status times, retry deadlines). */
  now(): number;
  /** Milliseconds on a clock that never jumps (durations). */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const REAL_CLOCK: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
