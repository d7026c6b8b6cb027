// What stands between a trigger and a run: settle windows, which gather a burst of one kind
// (GitHub and friends may send several deliveries for one push) into one trigger, and the rule
// that a run asked for only by triggers naming the revision already applied is skipped. The
// single-flight gate behind them is TriggerCoalescer (src/source/triggers.ts).

import type { Trigger, TriggerKind } from '../source/triggers.js';
import type { Clock, TimerHandle } from './clock.js';

/** Per trigger kind, how long to gather a burst before starting a run. */
export const DEFAULT_SETTLE_MS: Partial<Record<TriggerKind, number>> = { webhook: 250 };

/** What a window passes on when it closes: one trigger standing for the whole burst. */
export type SettledTrigger = (kind: TriggerKind, detail: string | undefined, revisions: readonly string[] | undefined, count: number) => void;

/** Details and revisions kept per window: enough for logs, bounded for a flood. */
const MAX_KEPT = 16;

interface Window {
  timer: TimerHandle;
  details: string[];
  revisions: Set<string>;
  /** Some arrival named no revision (or too many were named): the settled trigger names none. */
  unnamed: boolean;
  count: number;
}

export class SettleWindows {
  private readonly open = new Map<TriggerKind, Window>();
  private waiters: (() => void)[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly settleMs: Partial<Record<TriggerKind, number>>,
    private readonly pass: SettledTrigger,
  ) {}

  /** Passes the trigger on at once when its kind does not settle; else adds it to its kind's window. */
  add(kind: TriggerKind, detail?: string, revision?: string): void {
    const ms = this.settleMs[kind] ?? 0;
    if (ms <= 0) {
      this.pass(kind, detail, revision !== undefined ? [revision] : undefined, 1);
      return;
    }
    const pending = this.open.get(kind);
    if (pending) {
      pending.count += 1;
      if (detail !== undefined && pending.details.length < MAX_KEPT) pending.details.push(detail);
      if (revision === undefined) pending.unnamed = true;
      else if (pending.revisions.size < MAX_KEPT) pending.revisions.add(revision);
      else pending.unnamed = true;
      return;
    }
    const window: Window = {
      details: detail !== undefined ? [detail] : [],
      revisions: new Set(revision !== undefined ? [revision] : []),
      unnamed: revision === undefined,
      count: 1,
      timer: this.clock.setTimeout(() => {
        this.open.delete(kind);
        this.pass(kind, window.details.join(' ') || undefined, window.unnamed ? undefined : [...window.revisions], window.count);
        this.notify();
      }, ms),
    };
    this.open.set(kind, window);
  }

  /** No window open. */
  get empty(): boolean {
    return this.open.size === 0;
  }

  /** Resolves when every open window has closed (or was dropped). */
  whenEmpty(): Promise<void> {
    if (this.empty) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Drops every open window without passing it on. */
  clear(): void {
    for (const w of this.open.values()) this.clock.clearTimeout(w.timer);
    this.open.clear();
    this.notify();
  }

  private notify(): void {
    if (!this.empty) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** What the loop knows of the revision it applied, for skipping triggers that only name it. */
export interface AppliedFacts {
  /** The revision last applied, undefined before the first apply. */
  applied: string | undefined;
  /** The revision the source pointed at when last fetched. */
  desired: string | null;
  /** A forced reconcile is due (it never skips). */
  force: boolean;
  /** The last run applied or found the applied revision unchanged (it did not fail). */
  lastRunSucceeded: boolean;
  /** The runtime inputs are those the applied revision was compiled with (asked last: it takes a snapshot). */
  runtimeUnchanged: () => boolean;
}

/** True when every trigger names a revision, and each is the one last fetched and applied. */
export function onlyNamesApplied(triggers: readonly Trigger[], facts: AppliedFacts): boolean {
  const { applied } = facts;
  if (applied === undefined || facts.desired !== applied || facts.force || !facts.lastRunSucceeded || !facts.runtimeUnchanged()) return false;
  return triggers.every((t) => t.kind !== 'drift' && t.revisions !== undefined && t.revisions.length > 0 && t.revisions.every((r) => r === applied));
}
