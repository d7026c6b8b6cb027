// Work in slices (src/runtime/slices.ts): a slice ends at the first step boundary after SLICE_MS,
// by an injected clock; run whole, the same steps give the same value without a pause.
import { describe, expect, it } from 'vitest';
import { runSliced, runWhole, SliceBudget, SLICE_MS } from '../../../src/runtime/slices.js';

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

describe('SliceBudget', () => {
  it('carries one slice across computations: short ones in a row pause once the slice ran SLICE_MS', async () => {
    const clock = { t: 0 };
    const log: string[] = [];
    const budget = new SliceBudget(async () => { log.push('pause'); }, () => clock.t);
    // Four computations of ten steps of a twentieth of a slice each (half a slice each): runSliced
    // never pauses (each call starts a slice of its own); the budget pauses every two computations.
    for (let i = 0; i < 4; i++) expect(await budget.run(steps(clock, SLICE_MS / 20, log))).toBe(45);
    expect(log.filter((l) => l === 'pause')).toHaveLength(2);
    expect(log.indexOf('pause')).toBe(20); // after the last step of the second computation
    let pauses = 0;
    for (let i = 0; i < 4; i++) await runSliced(steps(clock, SLICE_MS / 20, []), async () => { pauses++; }, () => clock.t);
    expect(pauses).toBe(0);
  });

  it('checkpoint pauses only once the slice ran SLICE_MS', async () => {
    const clock = { t: 0 };
    let pauses = 0;
    const budget = new SliceBudget(async () => { pauses++; }, () => clock.t);
    await budget.checkpoint();
    clock.t += SLICE_MS - 1;
    await budget.checkpoint();
    expect(pauses).toBe(0);
    clock.t += 1;
    await budget.checkpoint();
    expect(pauses).toBe(1);
    await budget.checkpoint(); // a new slice began at the pause
    expect(pauses).toBe(1);
  });
});
