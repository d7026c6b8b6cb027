import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseDuration, parsePollSchedule, startPoller } from '../../../src/source/index.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('parseDuration', () => {
  it('reads ms, s, m, h and combinations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1.5s')).toBe(1500);
  });

  it('refuses anything else with LB_SOURCE_SCHEDULE', () => {
    for (const bad of ['', '30', 's', '5 m', '1d', '10sx', '-5s']) {
      expect(() => parseDuration(bad), bad).toThrow(expect.objectContaining({ code: 'LB_SOURCE_SCHEDULE' }));
    }
  });
});

describe('parsePollSchedule', () => {
  it('takes a duration or a cron expression', () => {
    expect(parsePollSchedule('30s')).toEqual({ kind: 'interval', everyMs: 30_000, jitter: 0.1 });
    expect(parsePollSchedule('*/5 * * * *')).toEqual({ kind: 'cron', expression: '*/5 * * * *' });
    expect(parsePollSchedule('0 */2 9-17 * * 1-5', { timezone: 'Europe/Paris' })).toMatchObject({ kind: 'cron', timezone: 'Europe/Paris' });
    expect(() => parsePollSchedule('61 * * * *')).toThrow(/invalid cron/);
    expect(() => parsePollSchedule('10ms')).toThrow(/below the minimum/);
  });
});

describe('startPoller', () => {
  it('ticks every interval, jittered, until stopped', () => {
    vi.useFakeTimers();
    let ticks = 0;
    const p = startPoller({ kind: 'interval', everyMs: 1000, jitter: 0.1 }, () => ticks++, { random: () => 0 });
    vi.advanceTimersByTime(899);
    expect(ticks).toBe(0);
    vi.advanceTimersByTime(1);
    expect(ticks).toBe(1);
    vi.advanceTimersByTime(900 * 4);
    expect(ticks).toBe(5);
    p.stop();
    vi.advanceTimersByTime(10_000);
    expect(ticks).toBe(5);
  });

  it('runs a cron schedule through node-cron', async () => {
    let ticks = 0;
    const p = startPoller({ kind: 'cron', expression: '* * * * * *' }, () => ticks++);
    try {
      for (let i = 0; i < 40 && ticks === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(ticks).toBeGreaterThan(0);
    } finally {
      p.stop();
    }
  });
});
