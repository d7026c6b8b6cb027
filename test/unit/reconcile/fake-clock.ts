// A clock moved by hand: the reconciler's time, retries and settle windows without sleeping.
// Timers fire in order of their due time, each with the clock set to that time.
import type { Clock, TimerHandle } from '../../../src/reconcile/clock.js';

interface Timer { id: number; at: number; fn: () => void }

export class FakeClock implements Clock {
  private t: number;
  private timers: Timer[] = [];
  private nextId = 1;
  /** When each fired timer was due, relative to when it was set: the delays the loop chose. */
  readonly fired: number[] = [];
  private readonly setAt = new Map<number, number>();

  constructor(start = Date.parse('2024-05-01T12:00:00Z')) {
    this.t = start;
  }

  now(): number { return this.t; }
  monotonic(): number { return this.t; }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.push({ id, at: this.t + Math.max(0, ms), fn });
    this.setAt.set(id, this.t);
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
    this.setAt.delete(handle as number);
  }

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.timers.length;
  }

  /** Milliseconds until the next timer is due, undefined when none is. */
  get nextIn(): number | undefined {
    const next = this.earliest();
    return next ? next.at - this.t : undefined;
  }

  /** Moves time forward by `ms`, firing every timer due on the way (bounded: 10 000 timers). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let i = 0; i < 10_000; i++) {
      const next = this.earliest();
      if (!next || next.at > end) break;
      this.fire(next);
    }
    this.t = end;
  }

  /** Moves time to the next timer and fires it; false when no timer is pending. */
  runNext(): boolean {
    const next = this.earliest();
    if (!next) return false;
    this.fire(next);
    return true;
  }

  private earliest(): Timer | undefined {
    return this.timers.reduce<Timer | undefined>((a, b) => (a === undefined || b.at < a.at ? b : a), undefined);
  }

  private fire(timer: Timer): void {
    this.timers = this.timers.filter((t) => t !== timer);
    this.t = Math.max(this.t, timer.at);
    this.fired.push(timer.at - (this.setAt.get(timer.id) ?? timer.at));
    this.setAt.delete(timer.id);
    timer.fn();
  }
}

/** Turns of the event loop until `cond` holds (bounded: 1000 turns); throws naming `what`. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((res) => setImmediate(res));
  }
  throw new Error(`gave up waiting for ${what}`);
}
