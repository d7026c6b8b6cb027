// Errors of the benchmark harness itself (a missing tool, a failed set-up step, a sanity check
// that did not hold). Failures of the code under test keep their own LbError codes.

export class BenchError extends Error {
  readonly data: Record<string, unknown>;

  constructor(message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BenchError';
    this.data = data;
  }
}
