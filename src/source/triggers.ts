// What wakes the reconcile loop (webhook, poll, SIGHUP, file change, retry) and the single-flight
// gate they all pass through: while a reconcile runs, any number of triggers mark it dirty and
// cause exactly one more run afterwards, which sees all of them.

export type TriggerKind = 'startup' | 'poll' | 'webhook' | 'sighup' | 'file' | 'retry' | 'drift' | 'manual';

export interface Trigger {
  kind: TriggerKind;
  /** Free text for logs: a delivery id, a pushed sha, a file name. */
  detail?: string;
  /** Date.now() when it arrived. */
  at: number;
  /** The revisions it names (a push webhook's after-sha), when every one of its sources named one. */
  revisions?: readonly string[];
  /** How many arrivals it stands for (a settled burst is one trigger); 1 when absent. */
  count?: number;
}

export interface CoalescerOptions {
  /** Called when a run throws (the run function should handle its own errors; this is a backstop). */
  onError?: (err: unknown) => void;
  /** At most this many triggers are kept for the next run (the newest); default 64. */
  maxPending?: number;
}

export class TriggerCoalescer {
  private readonly runFn: (triggers: Trigger[]) => Promise<void>;
  private readonly onError: (err: unknown) => void;
  private readonly maxPending: number;
  private pending: Trigger[] = [];
  private active: Promise<void> | undefined;
  private scheduled = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private started = 0;

  constructor(run: (triggers: Trigger[]) => Promise<void>, opts: CoalescerOptions = {}) {
    this.runFn = run;
    this.onError = opts.onError ?? (() => {});
    this.maxPending = Math.max(1, opts.maxPending ?? 64);
  }

  /** Asks for a reconcile. Never blocks and never throws; a stopped coalescer ignores it. */
  trigger(kind: TriggerKind, detail?: string, revisions?: readonly string[], count = 1): void {
    if (this.stopped) return;
    this.pending.push({ kind, ...(detail !== undefined ? { detail } : {}), ...(revisions !== undefined ? { revisions } : {}), ...(count !== 1 ? { count } : {}), at: Date.now() });
    // Over the bound, the oldest is folded into the next: its arrivals stay counted, and a fold of
    // two triggers naming different things names nothing (the merged trigger always runs).
    while (this.pending.length > this.maxPending) {
      const [oldest, next] = this.pending as [Trigger, Trigger];
      const sameNames = oldest.kind === next.kind && JSON.stringify(oldest.revisions) === JSON.stringify(next.revisions);
      const { revisions: _dropped, ...rest } = next;
      this.pending.splice(0, 2, { ...(sameNames ? next : rest), count: (oldest.count ?? 1) + (next.count ?? 1) });
    }
    // Start on the next turn of the event loop, so a synchronous burst becomes one run.
    if (!this.active && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.drain();
      });
    }
  }

  get running(): boolean {
    return this.active !== undefined;
  }

  /** No run in progress and none due. */
  get idle(): boolean {
    return this.isIdle();
  }

  /** Runs started so far. */
  get runs(): number {
    return this.started;
  }

  /** Resolves when no run is in progress and none is due. */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops pending triggers, refuses new ones, and waits for the current run to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pending = [];
    await this.active;
    this.notifyIdle();
  }

  private drain(): void {
    if (this.active || this.stopped || this.pending.length === 0) {
      this.notifyIdle();
      return;
    }
    const batch = this.pending;
    this.pending = [];
    this.started += 1;
    this.active = (async () => {
      try {
        await this.runFn(batch);
      } catch (err) {
        this.onError(err);
      }
    })().finally(() => {
      this.active = undefined;
      this.drain();
    });
  }

  private isIdle(): boolean {
    return !this.active && !this.scheduled && (this.stopped || this.pending.length === 0);
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** Calls `handler` on every SIGHUP (the operator's "reconcile now"); returns the unsubscribe. */
export function onSighup(handler: () => void): () => void {
  const listener = (): void => handler();
  process.on('SIGHUP', listener);
  return () => {
    process.off('SIGHUP', listener);
  };
}
