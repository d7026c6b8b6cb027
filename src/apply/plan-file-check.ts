// A saved plan's parts must follow from its desired state. `lb apply PLANFILE` does not trust the
// generation, the target ids or the summary written in the file: it recomputes them from
// desired.state against the live state (which refuseIfStale has shown to be the one planned
// against), refuses the file when they differ, and applies and prints what it recomputed. So what
// is applied is always what desired.state says, and what is printed is what is applied.

import { encodeState } from '../core/compile/encode.js';
import { LbError, isLbError } from '../core/errors.js';
import type { GenerationConfig } from '../core/generation.js';
import { diffStates, type Plan } from '../core/plan/plan.js';
import { planDocument } from '../core/plan/render-json.js';
import type { LiveState } from '../state/live.js';
import { firstDifference } from './canonical-json.js';
import type { PlanFile } from './plan-file.js';

export interface RecomputedPlan {
  /** The generation desired.state encodes to on this host, Maglev tables included. */
  generation: GenerationConfig;
  targetIds: Map<string, number>;
  plan: Plan;
}

const MAX_SHOWN = 160;
const shown = (v: unknown): string => {
  const text = v === undefined ? 'nothing' : JSON.stringify(v);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}...` : text;
};

/**
 * Recomputes the generation, target ids and plan of a saved plan from its desired.state; throws
 * LB_APPLY_PLAN_MISMATCH naming the first disagreeing member (a JSON pointer into the file).
 */
export function recomputePlanFile(path: string, pf: PlanFile, live: LiveState, ifindex: (name: string) => number | undefined): RecomputedPlan {
  const mismatch = (what: string, pointer: string, inFile: unknown, recomputed: unknown): LbError => new LbError('LB_APPLY_PLAN_MISMATCH',
    `the saved plan ${path} disagrees with itself: ${what}. At ${pointer} the file has ${shown(inFile)}; desired.state gives ${shown(recomputed)}. ` +
    `The file was edited after \`lb plan --out\` wrote it; nothing was applied. Run \`lb plan --out ${path}\` again.`,
    { path, pointer });

  let encoded: ReturnType<typeof encodeState>;
  let plan: Plan;
  try {
    encoded = encodeState(pf.desired.state, { ifindex, liveTargetIds: live.targetIds });
    plan = diffStates(pf.desired.state, live.state);
  } catch (err) {
    // It encoded when it was planned, on this host, against this live state: it was changed since.
    throw new LbError('LB_APPLY_PLAN_MISMATCH',
      `the saved plan ${path} is not usable: /desired/state does not encode (${isLbError(err) ? `${err.code}: ` : ''}${err instanceof Error ? err.message : String(err)}); ` +
      `it was edited after \`lb plan --out\` wrote it; nothing was applied. Run \`lb plan --out ${path}\` again.`,
      { path, pointer: '/desired/state' }, { cause: err });
  }

  const generation = firstDifference({ ...pf.desired.generation, maglev: undefined }, { ...encoded.generation, maglev: undefined }, '/desired/generation');
  if (generation) throw mismatch('desired.generation is not the encoding of desired.state', generation.pointer, generation.a, generation.b);

  const targetIds = firstDifference(pf.desired.target_ids, Object.fromEntries(encoded.targetIds), '/desired/target_ids');
  if (targetIds) throw mismatch('desired.target_ids are not the ids desired.state gets against the live state', targetIds.pointer, targetIds.a, targetIds.b);

  const doc = planDocument(plan);
  const changes = firstDifference(
    { has_changes: pf.plan.has_changes, summary: pf.plan.summary, changes: pf.plan.changes },
    { has_changes: doc.has_changes, summary: doc.summary, changes: doc.changes }, '/plan');
  if (changes) throw mismatch('the plan (its summary or changes) is not the difference between desired.state and the live state', changes.pointer, changes.a, changes.b);

  return { generation: encoded.generation, targetIds: encoded.targetIds, plan };
}
