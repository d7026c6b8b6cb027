// The saved plan of `lb plan --out FILE`, applied exactly by `lb apply FILE`. It binds the desired
// generation (ids and ifindexes included) to the live state it was planned against: the live
// digest, and the live state itself so a refusal can say what changed since. The generation's
// Maglev tables (16 KiB each, derived from its listeners and groups) are left out of the file and
// rebuilt when it is read: the same generation gives the same tables.

import { readFileSync } from 'node:fs';
import { maglevTables } from '../core/compile/encode.js';
import type { GenerationConfig } from '../dataplane/index.js';
import { LbError } from '../core/errors.js';
import { planDocument, type PlanDocument } from '../core/plan/render-json.js';
import { writeFileAtomic } from '../state/run-dir.js';
import type { LogicalState } from '../core/state.js';
import type { PreparedPlan } from './prepare.js';

export const PLAN_FILE_FORMAT_VERSION = '1.0';
export const PLAN_FILE_KIND = 'lb-plan';

export interface PlanFile {
  format_version: string;
  kind: typeof PLAN_FILE_KIND;
  created_at: string;
  instance: string;
  revision: string | null;
  config: { path: string; files: string[]; digest: string };
  live: { digest: string; active_gen: number; serial: number; state: LogicalState };
  desired: {
    state: LogicalState;
    generation: GenerationConfig;
    target_ids: Record<string, number>;
    ifindexes: Record<string, number>;
  };
  /** The plan as `lb plan --format json` prints it. */
  plan: PlanDocument;
}

export function toPlanFile(p: PreparedPlan): PlanFile {
  return {
    format_version: PLAN_FILE_FORMAT_VERSION,
    kind: PLAN_FILE_KIND,
    created_at: new Date().toISOString(),
    instance: p.instance,
    revision: p.revision,
    config: { path: p.configPath, files: p.configFiles, digest: p.configDigest },
    live: { digest: p.live.digest, active_gen: p.live.ctl.activeGen, serial: p.live.ctl.serial, state: p.live.state },
    desired: {
      state: p.desired,
      generation: { ...p.encoded.generation, maglev: undefined },
      target_ids: Object.fromEntries(p.encoded.targetIds),
      ifindexes: p.ifindexes,
    },
    plan: planDocument(p.plan, { diagnostics: p.warnings }),
  };
}

export function writePlanFile(path: string, file: PlanFile): void {
  writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`);
}

export function readPlanFile(path: string): PlanFile {
  const bad = (why: string, cause?: unknown): LbError => new LbError('LB_APPLY_PLANFILE', `${path} is not a usable lb plan: ${why}`, { path }, cause ? { cause } : undefined);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw bad((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message, err);
  }
  let v: Partial<PlanFile>;
  try {
    v = JSON.parse(text) as Partial<PlanFile>;
  } catch (err) {
    throw bad(`not JSON (${(err as Error).message})`, err);
  }
  if (v.kind !== PLAN_FILE_KIND) throw bad(`kind is ${JSON.stringify(v.kind)}, expected "${PLAN_FILE_KIND}" (write one with \`lb plan --out FILE\`)`);
  const major = String(v.format_version).split('.')[0];
  if (major !== PLAN_FILE_FORMAT_VERSION.split('.')[0]) {
    throw bad(`format_version ${JSON.stringify(v.format_version)}; this lb reads ${PLAN_FILE_FORMAT_VERSION.split('.')[0]}.x`);
  }
  if (typeof v.instance !== 'string' || !v.live || typeof v.live.digest !== 'string' || !v.desired?.generation || !v.desired.state
    || !v.plan || !v.config) {
    throw bad('fields are missing (instance, live.digest, desired.state, desired.generation, plan, config)');
  }
  const file = v as PlanFile;
  try {
    file.desired.generation.maglev = maglevTables(file.desired.generation);
  } catch (err) {
    throw bad(`desired.generation is malformed (${(err as Error).message})`, err);
  }
  return file;
}
