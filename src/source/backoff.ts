// Exponential backoff with jitter and a cap: the delay before retry n is
// min(cap, initial * factor^n), spread by +-jitter so that many nodes do not retry in step.

export interface BackoffOptions {
  /** First delay (default 1 s). */
  initialMs?: number;
  /** Cap (default 5 min). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Spread as a fraction of the delay, 0..1 (default 0.2: +-20 %). */
  jitter?: number;
  /** Uniform [0, 1) source (tests pass a fixed one). */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private n = 0;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 1000;
    this.maxMs = opts.maxMs ?? 300_000;
    this.factor = opts.factor ?? 2;
    this.jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.2));
    this.random = opts.random ?? Math.random;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs) || !(this.factor >= 1)) {
      throw new RangeError('backoff needs 0 < initialMs <= maxMs and factor >= 1');
    }
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.n;
  }

  /** The delay before the next retry; counts one more failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** Math.min(this.n, 64));
    this.n += 1;
    const spread = 1 + this.jitter * (2 * this.random() - 1);
    return Math.max(1, Math.min(this.maxMs, Math.round(base * spread)));
  }

  /** After a success. */
  reset(): void {
    this.n = 0;
  }
}
