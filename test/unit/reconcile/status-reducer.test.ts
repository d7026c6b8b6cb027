// The status reducer as a table: a state, an event, and the conditions, result, revisions and
// times that must follow. lastTransitionTime moves only when a condition's status changes.
import { describe, expect, it } from 'vitest';
import type { Condition, DataPlaneSummary, ReportError } from '../../../src/report/types.js';
import {
  initialStatus, reduceStatus, type FailureFacts, type StatusEvent, type StatusState,
} from '../../../src/reconcile/status-reducer.js';

const T0 = new Date('2024-05-01T12:00:00.000Z');
const T1 = new Date('2024-05-01T12:01:00.000Z');
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const dataPlane: DataPlaneSummary = { mode: 'xdp-native', interfaces: ['lo'], paths: { lo: 'xdp-native' }, listeners: 1, targets: 2 };
const plan = { add: 5, change: 0, destroy: 0 };
const error: ReportError = { code: 'LB_CONFIG_SCHEMA', message: 'must be integer', file: 'lb.yaml', line: 3, column: 12, pointer: '/proxies/0/listen/port' };
const invalid: FailureFacts = { step: 'validate', disposition: 'stalling', reason: 'ConfigInvalid', message: 'lb.yaml:3:12: must be integer', errors: [error] };
const unreachable: FailureFacts = { step: 'fetch', disposition: 'transient', reason: 'RemoteUnreachable', message: 'connection refused', errors: [] };

/** Statuses at T0, each after the event that makes it. */
const fresh = initialStatus(undefined, T0);
const live = reduceStatus(fresh, { type: 'applied', revision: A, label: 'main@aaaaaaaaaaaa', plan, dataPlane }, T0);
const stalledB = reduceStatus(live, { type: 'stalled', revision: B, label: 'main@bbbbbbbbbbbb', failure: invalid, serving: 'main@aaaaaaaaaaaa' }, T0);
const failing = reduceStatus(live, { type: 'failed', revision: null, label: '(none)', failure: unreachable, serving: 'main@aaaaaaaaaaaa', retryInMs: 1500 }, T0);
const driftOff = reduceStatus(live, {
  type: 'drift-found', entries: 2, differences: ['- Proxy "web"', '+ Proxy "web"'], fresh: true, label: 'main@aaaaaaaaaaaa', dataPlane,
}, T0);
const healFailing = reduceStatus(live, {
  type: 'heal-failed', entries: 1, message: 'no interface named lo', label: 'main@aaaaaaaaaaaa', missing: [],
  repeated: { count: 2, step: 'apply', retryAt: T1.getTime() },
}, T0);
const ifaceMissing = reduceStatus(live, {
  type: 'heal-failed', entries: 1, message: 'interface eth9 is missing', label: 'main@aaaaaaaaaaaa', missing: ['eth9'], repeated: null,
}, T0);

type Cond = Pick<Condition, 'type' | 'status' | 'reason'> & { message?: string | RegExp; moved?: boolean };

interface Row {
  name: string;
  from: StatusState;
  event: StatusEvent;
  /** Every condition after the event, in order; `moved`: its lastTransitionTime is now T1. */
  conditions: Cond[];
  expect?: Partial<StatusState>;
  /** The reducer returns the state it was given: nothing to report. */
  same?: boolean;
}

const rows: Row[] = [
  {
    name: 'the initial status is progressing, Ready Unknown', from: fresh, event: { type: 'desired', revision: A },
    conditions: [
      { type: 'Ready', status: 'Unknown', reason: 'Progressing', message: 'the first reconcile has not completed', moved: false },
      { type: 'Reconciling', status: 'True', reason: 'Progressing', moved: false },
    ],
    expect: { desiredRevision: A, result: 'progressing', lastAppliedRevision: null },
  },
  {
    name: 'applied: Ready True, revisions, plan, data plane', from: fresh,
    event: { type: 'applied', revision: A, label: 'main@aaaaaaaaaaaa', plan, dataPlane },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'Applied revision main@aaaaaaaaaaaa: 5 added, 0 changed, 0 destroyed', moved: true }],
    expect: { result: 'applied', lastAppliedRevision: A, lastAttemptedRevision: A, plan, dataPlane, errors: [], lastAppliedAt: T1.toISOString(), lastAttemptedAt: T1.toISOString() },
  },
  {
    name: 'noop of the applied revision: unchanged, lastAppliedAt kept, Ready stays True (no transition)', from: live,
    event: { type: 'noop', revision: A, label: 'main@aaaaaaaaaaaa', plan: { add: 0, change: 0, destroy: 0 }, dataPlane },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: /already matched it \(no changes\)$/, moved: false }],
    expect: { result: 'unchanged', lastAppliedAt: T0.toISOString(), lastAttemptedAt: T1.toISOString() },
  },
  {
    name: 'noop of another revision (adopted): lastAppliedAt moves', from: live,
    event: { type: 'noop', revision: B, label: 'main@bbbbbbbbbbbb', plan: { add: 0, change: 0, destroy: 0 }, dataPlane },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', moved: false }],
    expect: { result: 'unchanged', lastAppliedRevision: B, lastAppliedAt: T1.toISOString() },
  },
  {
    name: 'unchanged, already reported live: nothing to report', from: live,
    event: { type: 'unchanged', revision: A, because: 'applied', label: 'main@aaaaaaaaaaaa' },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', moved: false }], same: true,
  },
  {
    name: 'unchanged because stalled: nothing to report', from: stalledB,
    event: { type: 'unchanged', revision: B, because: 'stalled', label: 'main@bbbbbbbbbbbb' },
    conditions: [
      { type: 'Ready', status: 'False', reason: 'ConfigInvalid', moved: false },
      { type: 'Stalled', status: 'True', reason: 'ConfigInvalid', moved: false },
    ], same: true,
  },
  {
    name: 'unchanged after a stall (a branch forced back): live again, Stalled gone', from: stalledB,
    event: { type: 'unchanged', revision: A, because: 'applied', label: 'main@aaaaaaaaaaaa' },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'Revision main@aaaaaaaaaaaa is live (unchanged)', moved: true }],
    expect: { result: 'unchanged', lastAttemptedRevision: A, errors: [] },
  },
  {
    name: 'stalled: Stalled and Ready False with the reason, the applied revision stays live', from: live,
    event: { type: 'stalled', revision: B, label: 'main@bbbbbbbbbbbb', failure: invalid, serving: 'main@aaaaaaaaaaaa' },
    conditions: [
      { type: 'Ready', status: 'False', reason: 'ConfigInvalid', message: 'Validation of revision main@bbbbbbbbbbbb failed: lb.yaml:3:12: must be integer; revision main@aaaaaaaaaaaa stays live', moved: true },
      { type: 'Stalled', status: 'True', reason: 'ConfigInvalid', message: 'Validation of revision main@bbbbbbbbbbbb failed: lb.yaml:3:12: must be integer', moved: true },
    ],
    expect: { result: 'stalled', lastAppliedRevision: A, lastAttemptedRevision: B, errors: [error], plan: null },
  },
  {
    name: 'stalled before anything was applied: no serving note, Reconciling gone', from: fresh,
    event: { type: 'stalled', revision: null, label: '(none)', failure: { ...unreachable, step: 'fetch', disposition: 'stalling', reason: 'AuthenticationFailed' }, serving: null },
    conditions: [
      { type: 'Ready', status: 'False', reason: 'AuthenticationFailed', message: 'Fetch of revision (none) failed: connection refused', moved: true },
      { type: 'Stalled', status: 'True', reason: 'AuthenticationFailed', moved: true },
    ],
    expect: { result: 'stalled', lastAttemptedRevision: null },
  },
  {
    name: 'failed: Ready False, Reconciling with the retry delay', from: live,
    event: { type: 'failed', revision: null, label: '(none)', failure: unreachable, serving: 'main@aaaaaaaaaaaa', retryInMs: 1500 },
    conditions: [
      { type: 'Ready', status: 'False', reason: 'RemoteUnreachable', message: 'Fetch failed: connection refused; revision main@aaaaaaaaaaaa stays live', moved: true },
      { type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', message: 'retrying in 1.5s (transient)', moved: true },
    ],
    expect: { result: 'failed', lastAttemptedRevision: A, lastAttemptedAt: T1.toISOString(), plan: null },
  },
  {
    name: 'failed again: no transition, the delay in the message moves', from: failing,
    event: { type: 'failed', revision: null, label: '(none)', failure: unreachable, serving: 'main@aaaaaaaaaaaa', retryInMs: 120_000 },
    conditions: [
      { type: 'Ready', status: 'False', reason: 'RemoteUnreachable', moved: false },
      { type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', message: 'retrying in 2m (transient)', moved: false },
    ],
  },
  {
    name: 'failed after a stall: Stalled gone', from: stalledB,
    event: { type: 'failed', revision: B, label: 'main@bbbbbbbbbbbb', failure: { ...unreachable, step: 'apply', reason: 'ApplyFailed' }, serving: null, retryInMs: 20 },
    conditions: [
      { type: 'Ready', status: 'False', reason: 'ApplyFailed', message: 'Apply of revision main@bbbbbbbbbbbb failed: connection refused', moved: false },
      { type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', message: 'retrying in 20ms (transient)', moved: true },
    ],
  },
  {
    name: 'drift found with self-heal off: Ready False DriftDetected, drift unhealed', from: live,
    event: { type: 'drift-found', entries: 1, differences: ['a', 'b', 'c', 'd'], fresh: true, label: 'main@aaaaaaaaaaaa', dataPlane },
    conditions: [{ type: 'Ready', status: 'False', reason: 'DriftDetected', message: '1 live entry differs from revision main@aaaaaaaaaaaa (self-heal is off): a; b; c', moved: true }],
    expect: { drift: { entries: 1, healed: false, detectedAt: T1.toISOString() } },
  },
  {
    name: 'the same drift again: detectedAt kept', from: driftOff,
    event: { type: 'drift-found', entries: 2, differences: ['x'], fresh: false, label: 'main@aaaaaaaaaaaa', dataPlane },
    conditions: [{ type: 'Ready', status: 'False', reason: 'DriftDetected', moved: false }],
    expect: { drift: { entries: 2, healed: false, detectedAt: T0.toISOString() } },
  },
  {
    name: 'drift gone: Ready True again, drift cleared', from: driftOff, event: { type: 'drift-none', label: 'main@aaaaaaaaaaaa' },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'Revision main@aaaaaaaaaaaa is live: the drift is gone', moved: true }],
    expect: { drift: null },
  },
  {
    name: 'no drift, none before: conditions as they were', from: live, event: { type: 'drift-none', label: 'main@aaaaaaaaaaaa' },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', moved: false }],
    expect: { drift: null },
  },
  {
    name: 'drift healed: Ready True DriftCorrected, Stalled gone', from: healFailing,
    event: { type: 'drift-healed', entries: 3, fresh: false, label: 'main@aaaaaaaaaaaa', dataPlane },
    conditions: [{ type: 'Ready', status: 'True', reason: 'DriftCorrected', message: '3 live entries had drifted from revision main@aaaaaaaaaaaa; re-applied it', moved: true }],
    expect: { drift: { entries: 3, healed: true, detectedAt: T0.toISOString() } },
  },
  {
    name: 'heal failed once: Ready False DriftHealFailed, not Stalled', from: live,
    event: { type: 'heal-failed', entries: 1, message: 'no interface named lo', label: 'main@aaaaaaaaaaaa', missing: [], repeated: null },
    conditions: [{ type: 'Ready', status: 'False', reason: 'DriftHealFailed', message: 'no interface named lo', moved: true }],
    expect: { drift: { entries: 1, healed: false, detectedAt: T1.toISOString() } },
  },
  {
    name: 'heal failing the same way again: Stalled DriftHealFailing, naming the step and the next attempt', from: live,
    event: { type: 'heal-failed', entries: 1, message: 'no interface named lo', label: 'main@aaaaaaaaaaaa', missing: [], repeated: { count: 2, step: 'verify', retryAt: T1.getTime() + 30_000 } },
    conditions: [
      { type: 'Ready', status: 'False', reason: 'DriftHealFailed', moved: true },
      {
        type: 'Stalled', status: 'True', reason: 'DriftHealFailing', moved: true,
        message: 'healing the drift failed 2 times the same way, at the verification step: no interface named lo; the drift timer retries from 2024-05-01T12:01:30.000Z; a link event or a drift check on the control socket heals at once',
      },
    ],
  },
  {
    name: 'heal failed on a missing interface: Degraded InterfaceMissing, Ready stays True, never Stalled', from: live,
    event: { type: 'heal-failed', entries: 1, message: 'gone', label: 'main@aaaaaaaaaaaa', missing: ['eth1', 'eth2'], repeated: { count: 3, step: 'apply', retryAt: 0 } },
    conditions: [
      { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', moved: false },
      { type: 'Degraded', status: 'True', reason: 'InterfaceMissing', message: 'interfaces eth1, eth2 of revision main@aaaaaaaaaaaa are missing; everything else keeps serving, and lb re-attaches when it appears', moved: true },
    ],
  },
  {
    name: 'heal failed before a drift was found (the check failed): drift as it was', from: live,
    event: { type: 'heal-failed', entries: null, message: 'cannot read the maps', label: 'main@aaaaaaaaaaaa', missing: [], repeated: null },
    conditions: [{ type: 'Ready', status: 'False', reason: 'DriftHealFailed', moved: true }],
    expect: { drift: null },
  },
  {
    name: 'the interface is back (no drift): Degraded gone, Ready True', from: ifaceMissing, event: { type: 'drift-none', label: 'main@aaaaaaaaaaaa' },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'Revision main@aaaaaaaaaaaa is live: the drift is gone', moved: false }],
    expect: { drift: null },
  },
  {
    name: 'an apply after drift: drift cleared, Degraded and Stalled gone', from: healFailing,
    event: { type: 'applied', revision: B, label: 'main@bbbbbbbbbbbb', plan, dataPlane },
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', moved: true }],
    expect: { drift: null, lastAppliedRevision: B },
  },
];

describe('reduceStatus', () => {
  it.each(rows)('$name', (row) => {
    const before = structuredClone(row.from);
    const next = reduceStatus(row.from, row.event, T1);
    expect(row.from, 'the reducer does not change the state it is given').toEqual(before);
    if (row.same !== undefined) expect(next === row.from).toBe(row.same);
    expect(next.conditions.map((c) => c.type)).toEqual(row.conditions.map((c) => c.type));
    for (const want of row.conditions) {
      const got = next.conditions.find((c) => c.type === want.type)!;
      expect(got, want.type).toMatchObject({ status: want.status, reason: want.reason });
      if (typeof want.message === 'string') expect(got.message).toBe(want.message);
      else if (want.message) expect(got.message).toMatch(want.message);
      if (want.moved !== undefined) expect(got.lastTransitionTime, `${want.type} lastTransitionTime`).toBe((want.moved ? T1 : T0).toISOString());
    }
    if (row.expect) expect(next).toMatchObject(row.expect);
  });

  it('an adopted data plane starts with its revision and data plane', () => {
    const st = initialStatus({ lastAppliedRevision: A, lastAppliedAt: T0.toISOString(), dataPlane }, T1);
    expect(st).toMatchObject({ result: 'progressing', lastAppliedRevision: A, lastAppliedAt: T0.toISOString(), dataPlane, desiredRevision: null });
  });
});
