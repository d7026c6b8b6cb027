// Poll scheduling: `--poll 30s` (an interval, jittered so a fleet of nodes does not hit the remote in
// step) or `--poll "*/5 * * * *"` (a cron schedule through node-cron, for "only during business
// hours" and the like).

import cron, { type ScheduledTask } from 'node-cron';
import { SourceError } from './disposition.js';
import { silentLogger, type Logger } from '../log.js';

export type PollSchedule =
  | { kind: 'interval'; everyMs: number; /** Fraction 0..1, default 0.1. */ jitter: number }
  | { kind: 'cron'; expression: string; timezone?: string };

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "500ms", "30s", "5m", "1h30m" -> milliseconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  if (t === '' || end !== t.length) {
    throw new SourceError('LB_SOURCE_SCHEDULE', `invalid duration ${JSON.stringify(text)}: expected e.g. 500ms, 30s, 5m, 1h30m`, {
      disposition: 'stalling',
      reason: 'InvalidSchedule',
    });
  }
  return Math.round(total);
}

/** A duration, or a cron expression (5 or 6 fields, node-cron syntax). */
export function parsePollSchedule(text: string, opts: { jitter?: number; timezone?: string; minIntervalMs?: number } = {}): PollSchedule {
  const t = text.trim();
  if (t.split(/\s+/).length >= 5) {
    if (!cron.validate(t)) {
      throw new SourceError('LB_SOURCE_SCHEDULE', `invalid cron schedule ${JSON.stringify(text)}`, { disposition: 'stalling', reason: 'InvalidSchedule' });
    }
    return { kind: 'cron', expression: t, ...(opts.timezone !== undefined ? { timezone: opts.timezone } : {}) };
  }
  const everyMs = parseDuration(t);
  const min = opts.minIntervalMs ?? 100;
  if (everyMs < min) {
    throw new SourceError('LB_SOURCE_SCHEDULE', `poll interval ${t} is below the minimum of ${min} ms`, { disposition: 'stalling', reason: 'InvalidSchedule' });
  }
  return { kind: 'interval', everyMs, jitter: Math.min(1, Math.max(0, opts.jitter ?? 0.1)) };
}

export interface Poller {
  stop(): void;
}

/** Calls `onTick` on the schedule until stopped. Timers are unref'd: a poller alone keeps no process alive. */
export function startPoller(schedule: PollSchedule, onTick: () => void, opts: { random?: () => number; log?: Logger } = {}): Poller {
  const log = opts.log ?? silentLogger;
  if (schedule.kind === 'cron') {
    const task: ScheduledTask = cron.createTask(schedule.expression, () => onTick(), {
      ...(schedule.timezone !== undefined ? { timezone: schedule.timezone } : {}),
      name: 'lb-poll',
      noOverlap: true,
      unref: true,
      suppressMissedWarning: true,
      logger: {
        info: (m) => log.debug({ component: 'poll' }, m),
        warn: (m) => log.warn({ component: 'poll' }, m),
        error: (m) => log.error({ component: 'poll' }, String(m)),
        debug: (m) => log.debug({ component: 'poll' }, String(m)),
      },
    });
    void task.start();
    return {
      stop: () => {
        void task.destroy();
      },
    };
  }
  const random = opts.random ?? Math.random;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = (): void => {
    if (stopped) return;
    const delay = Math.max(1, Math.round(schedule.everyMs * (1 + schedule.jitter * (2 * random() - 1))));
    timer = setTimeout(() => {
      onTick();
      arm();
    }, delay);
    timer.unref();
  };
  arm();
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
