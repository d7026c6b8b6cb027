import { describe, expect, it } from 'vitest';
import { findCondition, setCondition } from '../../../src/report/index.js';

describe('setCondition', () => {
  it('keeps lastTransitionTime while the status holds, and moves it when the status changes', () => {
    const t0 = new Date('2024-01-01T00:00:00Z');
    const t1 = new Date('2024-01-01T00:05:00Z');
    let list = setCondition([], { type: 'Stalled', status: 'True', reason: 'RefNotFound', message: 'x' }, t0);
    list = setCondition(list, { type: 'Ready', status: 'False', reason: 'RefNotFound', message: 'x' }, t0);
    expect(list.map((c) => c.type)).toEqual(['Ready', 'Stalled']);
    list = setCondition(list, { type: 'Ready', status: 'False', reason: 'ConfigInvalid', message: 'y' }, t1);
    expect(findCondition(list, 'Ready')).toMatchObject({ reason: 'ConfigInvalid', message: 'y', lastTransitionTime: t0.toISOString() });
    list = setCondition(list, { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'ok' }, t1);
    expect(findCondition(list, 'Ready')?.lastTransitionTime).toBe(t1.toISOString());
  });
});
