// Conditions the Kubernetes way (meta.SetStatusCondition): setting a condition keeps its
// lastTransitionTime unless its status changes.

import type { Condition, ConditionStatus, ConditionType } from './types.js';

const ORDER: ConditionType[] = ['Ready', 'Reconciling', 'Stalled', 'Degraded'];

export function setCondition(
  list: readonly Condition[],
  c: { type: ConditionType; status: ConditionStatus; reason: string; message: string },
  now: Date = new Date(),
): Condition[] {
  const prev = list.find((x) => x.type === c.type);
  const lastTransitionTime = prev && prev.status === c.status ? prev.lastTransitionTime : now.toISOString();
  const next = [...list.filter((x) => x.type !== c.type), { ...c, lastTransitionTime }];
  return next.sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type));
}

export function removeCondition(list: readonly Condition[], type: ConditionType): Condition[] {
  return list.filter((x) => x.type !== type);
}

export function findCondition(list: readonly Condition[], type: ConditionType): Condition | undefined {
  return list.find((x) => x.type === type);
}
