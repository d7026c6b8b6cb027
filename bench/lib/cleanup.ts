// Undo steps registered as the benchmark builds its sandbox, run in reverse order at the end,
// on failure, and (synchronously) on SIGINT/SIGTERM/SIGHUP. Every step runs even when an
// earlier one fails; the failures are reported together.

export interface CleanupStep {
  label: string;
  run: () => void | Promise<void>;
  /** Variant usable from a signal handler (no awaiting); default: run() when it is synchronous. */
  runSync?: () => void;
}

export class Cleanup {
  private steps: CleanupStep[] = [];
  private readonly log: (m: string) => void;

  constructor(log: (m: string) => void = () => {}) {
    this.log = log;
  }

  add(step: CleanupStep): void {
    this.steps.push(step);
  }

  /** Runs and forgets every step, newest first. Returns the errors. */
  async runAll(): Promise<Array<{ label: string; error: unknown }>> {
    const errors: Array<{ label: string; error: unknown }> = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      this.log(`cleanup: ${step.label}`);
      try {
        await step.run();
      } catch (error) {
        errors.push({ label: step.label, error });
      }
    }
    return errors;
  }

  /** Synchronous teardown for signal handlers. */
  runAllSync(): void {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        if (step.runSync) step.runSync();
        else void step.run();
      } catch (error) {
        process.stderr.write(`bench cleanup: ${step.label}: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    }
  }
}
