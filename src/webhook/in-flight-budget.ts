// One budget for the body bytes every connection of the webhook receiver holds at once, so the
// receiver's memory does not grow with the number of clients. When a chunk would overrun it, the
// request holding the most bytes gives way: it is evicted, or, if that is the request charging,
// refused. A genuine delivery is small (a push is ~10 KB) and arrives at once, so it is never the
// largest holder while a flood of big or stalled bodies fills the budget.

export interface BudgetHolder {
  /** Bytes this request holds now. */
  readonly held: number;
}

interface Entry extends BudgetHolder {
  held: number;
  evict: () => void;
}

export class InFlightBudget {
  readonly limit: number;
  private total = 0;
  private readonly entries = new Set<Entry>();

  constructor(limit: number) {
    if (!(Number.isSafeInteger(limit) && limit > 0)) throw new RangeError(`in-flight byte budget must be a positive integer, not ${limit}`);
    this.limit = limit;
  }

  /** Bytes held by all requests now. */
  get used(): number {
    return this.total;
  }

  get holders(): number {
    return this.entries.size;
  }

  /** A new request's account; `evict` is called (once) if another request needs its bytes. */
  open(evict: () => void): BudgetHolder {
    const e: Entry = { held: 0, evict };
    this.entries.add(e);
    return e;
  }

  /**
   * Charges `bytes` to `holder`. False when it must give up instead (it would be the largest
   * holder); the caller then drops its bytes and calls release(). Others evicted here have
   * already been released when their `evict` runs.
   */
  charge(holder: BudgetHolder, bytes: number): boolean {
    const h = holder as Entry;
    if (!this.entries.has(h)) return false;
    // Each pass releases one holder, so this ends within entries.size passes.
    while (this.total + bytes > this.limit) {
      const largest = this.largestOther(h);
      if (largest === undefined || largest.held <= h.held + bytes) return false;
      this.release(largest);
      largest.evict();
    }
    h.held += bytes;
    this.total += bytes;
    return true;
  }

  /** Gives back everything `holder` held; idempotent. */
  release(holder: BudgetHolder): void {
    const h = holder as Entry;
    if (!this.entries.delete(h)) return;
    this.total -= h.held;
    h.held = 0;
  }

  private largestOther(h: Entry): Entry | undefined {
    let best: Entry | undefined;
    for (const e of this.entries) if (e !== h && (best === undefined || e.held > best.held)) best = e;
    return best;
  }
}
