// Work in slices: a computation written as a generator that yields between small steps runs
// either in one go (tools, tests) or in slices of a few milliseconds with a pause between them
// (the daemon's thread: its event loop serves /healthz, webhooks and the control socket in
// between). The runtime's builds over every target of a 10,000-proxy config take 50-100 ms in one go.
//
// A slice ends at the first step boundary after SLICE_MS: slices of a fixed count of steps took
// 3 ms on a quiet machine and 10 ms on a loaded one, and each pause costs a turn of the event loop
// in which every other sliced job (the prepare worker's transfers) takes its own slice, so the
// answer a caller waits for needs as few slices as the budget allows: 10 ms is a tenth of the
// 100 ms the ops endpoints answer within, and a status answer built while the run prepares takes
// half as many turns as with 4 ms.

import { performance } from 'node:perf_hooks';

/** The longest a slice runs before it pauses (at the next step boundary). */
export const SLICE_MS = 10;

/** Runs `steps` to the end in one go; its value. */
export function runWhole<T>(steps: Generator<void, T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs `steps` to the end, pausing with `pause` once a slice ran SLICE_MS by `now` (ms); its value. */
export async function runSliced<T>(steps: Generator<void, T>, pause: () => Promise<void>, now: () => number = () => performance.now()): Promise<T> {
  let sliceStart = now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (now() - sliceStart >= SLICE_MS) {
      await pause();
      sliceStart = now();
    }
  }
}

/**
 * One slice budget shared by several computations in a row (a /metrics scrape: the data plane
 * read, the runtime gauges, then family after family): runSliced starts a slice per call, so a
 * row of computations each under SLICE_MS would run together without a pause.
 */
export class SliceBudget {
  private sliceStart: number;

  constructor(private readonly pause: () => Promise<void>, private readonly now: () => number = () => performance.now()) {
    this.sliceStart = now();
  }

  /** Pauses when the slice ran SLICE_MS. */
  async checkpoint(): Promise<void> {
    if (this.now() - this.sliceStart < SLICE_MS) return;
    await this.pause();
    this.sliceStart = this.now();
  }

  /** Runs `steps` to the end within this budget, a checkpoint after every step; its value. */
  async run<T>(steps: Generator<void, T>): Promise<T> {
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      await this.checkpoint();
    }
  }
}
