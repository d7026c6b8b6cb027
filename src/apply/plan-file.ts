// The saved plan of `lb plan --out FILE`, applied exactly by `lb apply FILE`. It binds the desired
// generation (ids and ifindexes included) to the live state it was planned against: the live
// digest, and the live state itself so a refusal can say what changed since. The generation's
// Maglev tables (16 KiB each, derived from its listeners and groups) are left out of the file and
// rebuilt when it is read: the same generation gives the same tables.
//
// The file carries a digest of everything else in it: an edit after `lb plan --out` is refused
// when the file is read. The digest has no key, so it only catches edits that did not recompute
// it; `lb apply` also recomputes the generation, target ids and plan from desired.state against
// the live state and refuses a file whose parts disagree (src/apply/plan-file-check.ts).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonicalJson } from './canonical-json.js';
import { maglevTables } from '../core/compile/encode.js';
import type { GenerationConfig } from '../dataplane/index.js';
import { LbError } from '../core/errors.js';
import { planDocument, type PlanDocument } from '../core/plan/render-json.js';
import { writeFileAtomic } from '../state/run-dir.js';
import type { LogicalState } from '../core/state.js';
import type { PreparedPlan } from './prepare.js';

/** 1.1 added `digest`. */
export const PLAN_FILE_FORMAT_VERSION = '1.1';
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
  /** "sha256:<hex>" of the canonical JSON of every other member (planFileDigest). */
  digest: string;
}

/** The digest of a plan file: sha256 of the canonical JSON of all but `digest` and the rebuilt Maglev tables. */
export function planFileDigest(file: Omit<PlanFile, 'digest'> & { digest?: unknown }): string {
  const content = { ...file, digest: undefined, desired: { ...file.desired, generation: { ...file.desired.generation, maglev: undefined } } };
  return `sha256:${createHash('sha256').update(`lb-plan-file\n${canonicalJson(content)}`).digest('hex')}`;
}

export function toPlanFile(p: PreparedPlan): PlanFile {
  const file: Omit<PlanFile, 'digest'> = {
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
  return { ...file, digest: planFileDigest(file) };
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
  if (typeof file.digest !== 'string') {
    throw new LbError('LB_APPLY_PLAN_MISMATCH', `${path} has no digest (written by an lb before ${PLAN_FILE_FORMAT_VERSION}, or edited); nothing was applied. Run \`lb plan --out ${path}\` again.`, { path });
  }
  const digest = planFileDigest(file);
  if (digest !== file.digest) {
    throw new LbError('LB_APPLY_PLAN_MISMATCH',
      `${path} was changed after \`lb plan --out\` wrote it: /digest is ${file.digest}, its content gives ${digest}; nothing was applied. Run \`lb plan --out ${path}\` again.`,
      { path, recorded: file.digest, computed: digest });
  }
  try {
    file.desired.generation.maglev = maglevTables(file.desired.generation);
  } catch (err) {
    throw bad(`desired.generation is malformed (${(err as Error).message})`, err);
  }
  return file;
}
