// `lb apply [PLANFILE]`: without a plan file, plan the config, show it, ask for "yes" (unless
// --auto-approve) and run the transaction. With a plan file, apply exactly the generation it holds,
// or refuse it as stale when the live state moved since it was made, or as edited when its parts
// disagree (its digest; a generation, target ids or summary that desired.state does not give).

import { createInterface } from 'node:readline/promises';
import { parseFaultSpec, recoverInstance, runTransaction, withInstanceLock, type ApplyRequest } from '../../apply/index.js';
import { readPlanFile, type PlanFile } from '../../apply/plan-file.js';
import { recomputePlanFile } from '../../apply/plan-file-check.js';
import { KERNEL_PLAN_HOST } from '../../apply/prepare.js';
import { interfaceIndex } from '../../dataplane/index.js';
import { LbError, isLbError } from '../../core/errors.js';
import { diffStates, type PlanSummary } from '../../core/plan/plan.js';
import { NO_CHANGES, planSections } from '../../core/plan/render-text.js';
import { readLive, type LiveState } from '../../state/live.js';
import { printBlock, reportRecovery, stdio, type CliIo } from '../output.js';
import { renderPlan, withPreparedPlan } from './plan.js';

export interface ApplyOptions {
  instance: string;
  planFile?: string;
  config: string;
  autoApprove: boolean;
  verbose: boolean;
  revision?: string;
}

export interface ApplyDeps {
  /** Whether a human can be asked (stdin and stdout are terminals). */
  interactive: boolean;
  /** Asks a question on the terminal and resolves with the answer. */
  ask(question: string): Promise<string>;
  /** LB_FAULT_INJECT (tests only). */
  faultSpec?: string;
}

const PROMPT = [
  'Do you want to perform these actions?',
  '  lb will perform the actions described above.',
  "  Only 'yes' will be accepted to approve.",
  '',
  '  Enter a value: ',
].join('\n');

function terminal(): ApplyDeps {
  return {
    interactive: process.stdin.isTTY === true && process.stdout.isTTY === true,
    ask: async (question) => {
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
    ...(process.env.LB_FAULT_INJECT !== undefined ? { faultSpec: process.env.LB_FAULT_INJECT } : {}),
  };
}

export async function runApply(options: ApplyOptions, io: CliIo = stdio(), deps: ApplyDeps = terminal()): Promise<number> {
  const fault = parseFaultSpec(deps.faultSpec);
  const faultOptions: Partial<ApplyRequest> = fault ? { faultAt: fault.at, faultAction: fault.action } : {};
  const log = options.verbose ? (line: string): void => io.err(`lb: ${line}`) : undefined;
  if (options.planFile !== undefined) return applyPlanFile(options, options.planFile, io, { ...faultOptions, ...(log ? { log } : {}) });

  return withPreparedPlan(options, io, async (prepared) => {
    printBlock(io, renderPlan(prepared, 'text', { color: io.color, verbose: options.verbose, instance: options.instance }));
    if (prepared.plan.changes.length === 0) {
      io.out('');
      io.out(complete(io, { add: 0, change: 0, destroy: 0 }));
      return 0;
    }
    if (!options.autoApprove) {
      if (!deps.interactive) {
        throw new LbError('LB_APPLY_APPROVAL', 'no terminal to ask for approval: pass --auto-approve to apply without asking, or save a plan with `lb plan --out FILE` and apply that', {});
      }
      io.out('');
      const answer = await deps.ask(PROMPT);
      if (answer.trim() !== 'yes') throw new LbError('LB_APPLY_APPROVAL', 'Apply cancelled: the answer was not "yes". Nothing changed.', { answer });
    }
    const result = runTransaction({
      instance: options.instance,
      generation: prepared.encoded.generation,
      interfaces: prepared.desired.interfaces,
      desired: prepared.desired,
      targetIds: prepared.encoded.targetIds,
      revision: prepared.revision,
      configDigest: prepared.configDigest,
      ...faultOptions,
      ...(log ? { log } : {}),
    });
    for (const w of result.warnings) io.err(`lb: warning: ${w}`);
    io.out('');
    io.out(complete(io, prepared.plan.summary));
    return 0;
  });
}

async function applyPlanFile(options: ApplyOptions, path: string, io: CliIo, extra: Partial<ApplyRequest>): Promise<number> {
  const pf = readPlanFile(path);
  if (pf.instance !== options.instance) {
    throw new LbError('LB_APPLY_PLANFILE', `${path} was planned for instance ${pf.instance}, not ${options.instance}; pass --instance ${pf.instance}`,
      { path, planned: pf.instance, instance: options.instance });
  }
  return withInstanceLock(options.instance, async () => {
    reportRecovery(io, recoverInstance(options.instance));
    const live = readLive(options.instance, { warn: (m) => io.err(`lb: warning: ${m}`) });
    refuseIfStale(path, pf, live);
    // What is applied and printed is recomputed from desired.state, never taken from the file.
    const recomputed = recomputePlanFile(path, pf, live, KERNEL_PLAN_HOST.ifindex);
    if (recomputed.plan.changes.length === 0) {
      io.out(NO_CHANGES);
      io.out('');
      io.out(complete(io, { add: 0, change: 0, destroy: 0 }));
      return 0;
    }
    const result = runTransaction({
      instance: options.instance,
      generation: recomputed.generation,
      interfaces: pf.desired.state.interfaces,
      desired: pf.desired.state,
      targetIds: recomputed.targetIds,
      revision: pf.revision,
      configDigest: pf.config.digest,
      ...extra,
    });
    for (const w of result.warnings) io.err(`lb: warning: ${w}`);
    io.out(complete(io, recomputed.plan.summary));
    return 0;
  });
}

/** LB_APPLY_STALE, naming what changed, when the live state is not the one the plan was made against. */
export function refuseIfStale(path: string, pf: PlanFile, live: LiveState): void {
  const reasons: string[] = [];
  if (live.digest !== pf.live.digest) {
    const moved = diffStates(live.state, pf.live.state);
    if (moved.changes.length > 0) {
      for (const section of planSections(moved)) {
        reasons.push(`  # ${section.title}`);
        for (const line of section.lines) reasons.push(`  ${line.sign} ${'    '.repeat(line.depth)}${line.text}`);
      }
    } else {
      reasons.push(`  the data plane was rewritten without a visible change (lb_ctl generation ${pf.live.active_gen} serial ${pf.live.serial} -> generation ${live.ctl.activeGen} serial ${live.ctl.serial})`);
    }
  }
  for (const [name, index] of Object.entries(pf.desired.ifindexes ?? {})) {
    let now: number | undefined;
    try {
      now = interfaceIndex(name);
    } catch (err) {
      if (!isLbError(err, 'LB_NET_IFACE')) throw err;
    }
    if (now !== index) reasons.push(`  interface ${name} ${now === undefined ? 'no longer exists' : `is now ifindex ${now}`} (it was ${index} when planned)`);
  }
  if (reasons.length === 0) return;
  throw new LbError('LB_APPLY_STALE',
    `the saved plan ${path} is stale: the live state of instance ${pf.instance} changed since it was planned (${pf.created_at}) ` +
    `(+ appeared, ~ changed, - disappeared since then):\n` +
    `${reasons.join('\n')}\nNothing was applied. Run \`lb plan --out ${path}\` again.`,
    { path, planned: pf.live.digest, live: live.digest });
}

function complete(io: CliIo, s: PlanSummary): string {
  const text = `Apply complete! Resources: ${s.add} added, ${s.change} changed, ${s.destroy} destroyed.`;
  return io.color ? `\u001b[1m\u001b[32m${text}\u001b[0m` : text;
}
