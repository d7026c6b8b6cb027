// Work in slices (src/runtime/slices.ts): a slice ends at the first step boundary after SLICE_MS,
// by an injected clock; run whole, the same steps give the same value without a pause.
import { describe, expect, it } from 'vitest';
import { runSliced, runWhole, SLICE_MS } from '../../../src/runtime/slices.js';

/** Ten steps; each moves the fake clock by `stepMs` and records where it ran. */
function* steps(clock: { t: number }, stepMs: number, log: string[]): Generator<void, number> {
  let sum = 0;
  for (let i = 0; i < 10; i++) {
    clock.t += stepMs;
    sum += i;
    log.push(`step ${i}`);
    yield;
  }
  return sum;
}

describe('runSliced', () => {
  it('pauses at the first step boundary once a slice ran SLICE_MS, and returns what runWhole returns', async () => {
    const clock = { t: 0 };
    const log: string[] = [];
    const value = await runSliced(steps(clock, SLICE_MS / 2, log), async () => { log.push('pause'); }, () => clock.t);
    expect(value).toBe(runWhole(steps({ t: 0 }, 0, [])));
    // Two steps of half a slice each make a slice.
    expect(log.filter((l) => l === 'pause')).toHaveLength(5);
    expect(log.slice(0, 4)).toEqual(['step 0', 'step 1', 'pause', 'step 2']);
  });

  it('never pauses while the steps take no time, and pauses after every step that takes a slice', async () => {
    let pauses = 0;
    const pause = async (): Promise<void> => { pauses++; };
    const clock = { t: 0 };
    await runSliced(steps(clock, 0, []), pause, () => clock.t);
    expect(pauses).toBe(0);
    await runSliced(steps(clock, SLICE_MS, []), pause, () => clock.t);
    expect(pauses).toBe(10);
  });
});
