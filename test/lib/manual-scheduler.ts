// A scheduler the test drives: what the code under test schedules (a retry after a backoff delay)
// runs only when the test fires it, so a test can look at the state while something waits, with
// no real sleep and no timed assertion.

interface Task {
  fn: () => void;
  ms: number;
}

export class ManualScheduler {
  /** Every delay ever asked for, in order. */
  readonly delays: number[] = [];
  private pending: Task[] = [];
  private wakeups: (() => void)[] = [];

  /** The function to inject (same contract as setTimeout: runs fn later, returns a cancel). */
  readonly schedule = (fn: () => void, ms: number): (() => void) => {
    const task = { fn, ms };
    this.pending.push(task);
    this.delays.push(ms);
    for (const w of this.wakeups.splice(0)) w();
    return () => {
      this.pending = this.pending.filter((t) => t !== task);
    };
  };

  /** Tasks scheduled and neither run nor cancelled. */
  get size(): number {
    return this.pending.length;
  }

  /** Resolves once a task is pending (at once when one is); the test's timeout bounds the wait. */
  async scheduled(): Promise<void> {
    while (this.pending.length === 0) await new Promise<void>((resolve) => this.wakeups.push(resolve));
  }

  /** Runs the oldest pending task now (as if its delay had passed). */
  fire(): void {
    const task = this.pending.shift();
    if (!task) throw new Error('nothing is scheduled');
    task.fn();
  }
}

/** Lets pending promise callbacks and I/O callbacks run (to observe that something did NOT happen). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
