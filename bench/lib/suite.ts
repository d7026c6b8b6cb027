// What a benchmark suite is: a named measurement that produces absolute figures and ratios
// between figures measured in the same run (docs/design.md §7: goals are ratios against a baseline
// measured alongside, never absolute thresholds). bench/main.ts runs a list of suites; a new
// benchmark (plan/apply, gitops) is one more module exporting a Suite.

import type { BenchEnv } from './env.js';

export interface BenchOptions {
  /** Measurement rounds per variant (pps); the median is reported. */
  rounds: number;
  /** Seconds of each pps measurement window (after the warm-up). */
  ppsSeconds: number;
  /** Seconds of warm-up before each pps window (flows created, caches warm). */
  ppsWarmupSeconds: number;
  /** Seconds of each wrk run. */
  httpSeconds: number;
  /** wrk rounds over every target (the second in reverse order); the median is reported. */
  httpRounds: number;
  /** BPF_PROG_TEST_RUN repeat count of the single-call reference runs. */
  testRunRepeat: number;
  /** BPF_PROG_TEST_RUN calls of 250 repeats per program (the like-for-like batched runs). */
  testRunCalls: number;
  /** Print progress. */
  verbose: boolean;
}

export interface SuiteContext {
  options: BenchOptions;
  /** The shared sandbox (namespaces, lb instance, nft rules), created on first use. */
  env(): Promise<BenchEnv>;
  log(message: string): void;
}

/** One absolute figure. */
export interface Measurement {
  key: string;
  label: string;
  value: number;
  unit: string;
  /** Every sample the value summarises (the median of them, for repeated measurements). */
  samples?: number[];
  /** Anything that explains or checks the figure (counters, errors, offered load). */
  detail?: Record<string, unknown>;
}

/**
 * A comparison of two figures of the same run (a ratio, or a difference such as ns over the empty
 * program), optionally with the goal it is held against.
 */
export interface Ratio {
  key: string;
  label: string;
  value: number;
  /** Goal: value >= goal (or <= goal when `atMost`). */
  goal?: number;
  atMost?: boolean;
  /** Unit of value and goal; default 'x' (a ratio). */
  unit?: string;
  note?: string;
}

export interface SuiteResult {
  suite: string;
  title: string;
  /** How it was measured, one sentence per line (printed and written to the JSON). */
  method: string[];
  measurements: Measurement[];
  ratios: Ratio[];
  /** Observations the reader needs (a path not taken, errors seen). */
  notes: string[];
}

export interface Suite {
  name: string;
  title: string;
  run(ctx: SuiteContext): Promise<SuiteResult>;
}
