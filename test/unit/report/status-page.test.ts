// The bounded status answer (src/report/status-page.ts): one page of each growing list, of one
// proxy when asked, with totals and a summary over every target of the selection; the arguments
// of the control request are checked.
import { describe, expect, it } from 'vitest';
import { isLbError } from '../../../src/core/errors.js';
import { DEFAULT_SELECTION, pageNotes, pageReport, statusSelection, STATUS_DEFAULT_LIMIT, STATUS_MAX_LIMIT } from '../../../src/report/status-page.js';
import { STATUS_REPORT_SCHEMA, type StatusReport } from '../../../src/report/types.js';
import type { TargetStatus } from '../../../src/runtime/status.js';
import { GENERATED_AT, sampleRuntimeStatus } from '../../lib/runtime-status-fixture.js';

/** A report whose runtime has `n` proxies of two targets each (the second of each proxy unhealthy and draining). */
function bigReport(n: number): StatusReport {
  const rt = sampleRuntimeStatus();
  const targets: TargetStatus[] = [];
  for (let i = 0; i < n; i++) {
    for (const k of [1, 2]) {
      targets.push({
        proxy: `svc-${i}`, group: 'default', targetId: `10.${k}.0.${i % 250}:8080`, configuredWeight: 50, effectiveWeight: k === 1 ? 50 : 0, draining: k === 2, failOpen: false,
        backends: [{ backend: `10.${k}.0.${i % 250}:8080`, health: k === 1 ? 'healthy' : 'unhealthy', recoveryStep: 0, lastError: null, lastLatencyMs: 1, circuit: 'closed' }],
      });
    }
  }
  return {
    schema: STATUS_REPORT_SCHEMA, node: 'n', instance: 'i', source: { kind: 'file', url: '/x', ref: '', path: '' },
    desiredRevision: null, lastAppliedRevision: null, lastAttemptedRevision: null, result: 'applied', conditions: [], plan: null, errors: [], dataPlane: null,
    runtime: { ...rt, targets, circuits: [], dns: [], drains: [] },
    timestamps: { lastAttemptedAt: null, lastAppliedAt: null, generatedAt: GENERATED_AT },
  };
}

describe('pageReport', () => {
  it('cuts 20,000 targets to the default page, counts all of them, and keeps the rest of the report', () => {
    const full = bigReport(10_000);
    const { report, page } = pageReport(full, DEFAULT_SELECTION);
    expect(report.runtime!.targets).toEqual(full.runtime!.targets.slice(0, STATUS_DEFAULT_LIMIT));
    expect(page.lists.targets).toEqual({ total: 20_000, shown: STATUS_DEFAULT_LIMIT });
    expect(page.runtime).toEqual({ targets: 20_000, draining: 10_000, failOpen: 0, health: { healthy: 10_000, unhealthy: 10_000 }, circuitsNotClosed: 0 });
    expect({ ...report, runtime: null }).toEqual({ ...full, runtime: null });
    expect(JSON.stringify(report).length).toBeLessThan(JSON.stringify(full).length / 100);
    expect(pageNotes(page)).toEqual(['targets: showing 1-100 of 20000']);
  });

  it('selects one proxy, then a page of it by offset and limit', () => {
    const full = bigReport(300);
    const one = pageReport(full, { proxy: 'svc-7', offset: 0, limit: 100 });
    expect(one.report.runtime!.targets.map((t) => t.targetId)).toEqual(['10.1.0.7:8080', '10.2.0.7:8080']);
    expect(one.page.runtime).toMatchObject({ targets: 2, draining: 1 });
    expect(pageNotes(one.page)).toEqual([]);
    const second = pageReport(full, { proxy: null, offset: 200, limit: 50 });
    expect(second.report.runtime!.targets[0]).toBe(full.runtime!.targets[200]);
    expect(second.report.runtime!.targets).toHaveLength(50);
    expect(pageNotes(second.page)).toEqual(['targets: showing 201-250 of 600']);
    expect(pageNotes(pageReport(full, { proxy: null, offset: 9999, limit: 10 }).page)).toEqual(['targets: showing none of 600']);
  });

  it('leaves a small report whole, drains and circuits included', () => {
    const small = bigReport(0);
    small.runtime = sampleRuntimeStatus();
    const { report, page } = pageReport(small, DEFAULT_SELECTION);
    expect(report).toEqual(small);
    expect(page.runtime).toEqual({ targets: 3, draining: 1, failOpen: 0, health: { recovering: 1, unhealthy: 1, unchecked: 2 }, circuitsNotClosed: 1 });
  });
});

describe('statusSelection', () => {
  it('takes proxy, offset and limit, with defaults', () => {
    expect(statusSelection({})).toEqual(DEFAULT_SELECTION);
    expect(statusSelection({ proxy: 'web', offset: 5, limit: 0 })).toEqual({ proxy: 'web', offset: 5, limit: 0 });
  });

  it.each([
    [{ limit: STATUS_MAX_LIMIT + 1 }, /limit must be an integer 0\.\.10000/],
    [{ limit: 1.5 }, /limit/],
    [{ offset: -1 }, /offset/],
    [{ proxy: 7 }, /proxy/],
    [{ page: 2 }, /unknown argument "page"/],
  ])('refuses %j', (args, message) => {
    let err: unknown;
    try {
      statusSelection(args as Record<string, unknown>);
    } catch (e) {
      err = e;
    }
    expect(isLbError(err, 'LB_DAEMON_CONTROL')).toBe(true);
    expect((err as Error).message).toMatch(message);
  });
});
