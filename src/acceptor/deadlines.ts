// One timer for many deadlines of the same length (the acceptor's ClientHello and connect bounds):
// a Node timer per connection costs an object, a list insert and a clear on the accept path, at
// hundreds of connections a second, for deadlines that almost never fire. Items join in the order
// they start and all wait the same time, so their deadlines ascend: a look every `resolutionMs`
// expires the head of the queue until it reaches one still running. An item fires between its
// deadline and one resolution later. The timer runs while items wait and stops at the first look
// that finds none (not at each delete: at a steady rate the queue empties between connections).

export class Deadlines<T> {
  /** Insertion order is deadline order (one length for all). */
  private readonly items = new Map<T, number>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param timeoutMs the wait of every item (a later `setTimeout` applies to items added after it)
   * @param onExpire called once for an item whose deadline passed, after it left the queue
   */
  constructor(private timeoutMs: number, private readonly onExpire: (item: T) => void) {}

  get size(): number {
    return this.items.size;
  }

  /**
   * A new length for items added from now on. Items already waiting keep theirs; a shorter one
   * then waits behind them, i.e. at most the old length.
   */
  setTimeout(timeoutMs: number): void {
    this.timeoutMs = timeoutMs;
  }

  add(item: T, now = performance.now()): void {
    this.items.set(item, now + this.timeoutMs);
    // Unref'd: waiting connections keep the process alive, not their deadlines.
    this.timer ??= setInterval(() => this.expire(), resolutionFor(this.timeoutMs)).unref();
  }

  /** The item finished in time (or ended otherwise); no-op when it is not waiting. */
  delete(item: T): void {
    this.items.delete(item);
  }

  /** Expires every item whose deadline is at or before `now` (the timer's work; tests call it). */
  expire(now = performance.now()): void {
    for (const [item, deadline] of this.items) {
      if (deadline > now) break;
      this.items.delete(item);
      this.onExpire(item);
    }
    if (this.items.size === 0) this.stop();
  }

  /** Forgets every item without expiring them. */
  clear(): void {
    this.items.clear();
    this.stop();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** A tenth of the wait, within 10 ms .. 250 ms: a 10 s hello bound fires within 10.25 s. */
function resolutionFor(timeoutMs: number): number {
  return Math.min(250, Math.max(10, Math.floor(timeoutMs / 10)));
}
