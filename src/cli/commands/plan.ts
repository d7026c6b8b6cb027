// `lb plan`: recover a leftover apply journal, compile the config, read the live state, print the
// difference (text, json or markdown), optionally save it for `lb apply FILE`.
// Exit code 0 (no changes, or changes without --detailed-exitcode), 1 error, 2 changes with
// --detailed-exitcode.

import { recoverInstance, withInstanceLock } from '../../apply/index.js';
import { toPlanFile, writePlanFile } from '../../apply/plan-file.js';
import { checkConfigAt, planCheckedConfig, type PreparedPlan } from '../../apply/prepare.js';
import { ConfigError } from '../../core/config/config-error.js';
import { sortDiagnostics, type Diagnostic } from '../../core/config/diagnostics.js';
import { daemonOnlyWarnings } from '../../core/sni/served.js';
import { encodeGeneration } from '../../dataplane/index.js';
import { hasChanges } from '../../core/plan/plan.js';
import { renderJson } from '../../core/plan/render-json.js';
import { renderMarkdown } from '../../core/plan/render-markdown.js';
import { renderText } from '../../core/plan/render-text.js';
import { printBlock, reportConfigError, reportRecovery, revisionOf, stdio, type CliIo } from '../output.js';

import type { PlanFormat } from '../command-choices.js';
export { PLAN_FORMATS, type PlanFormat } from '../command-choices.js';

export interface PlanOptions {
  instance: string;
  config: string;
  out?: string;
  format: PlanFormat;
  detailedExitcode: boolean;
  verbose: boolean;
  revision?: string;
}

/**
 * What `lb plan` and `lb apply` (without a plan file) share: under the instance lock, finish a
 * leftover apply, plan the config and hand the plan to `fn`. A config error is reported here and
 * its exit code returned.
 */
export async function withPreparedPlan(options: { instance: string; config: string; revision?: string }, io: CliIo,
  fn: (prepared: PreparedPlan) => number | Promise<number>): Promise<number> {
  return withInstanceLock(options.instance, async () => {
    reportRecovery(io, recoverInstance(options.instance));
    let prepared: PreparedPlan;
    let daemonOnly: Diagnostic[];
    try {
      const checked = await checkConfigAt(options.config);
      // By hand, nothing serves the acceptor's proxies: say so (the daemon plans without this).
      daemonOnly = daemonOnlyWarnings(checked.config);
      prepared = planCheckedConfig(checked, {
        instance: options.instance, revision: revisionOf(options.revision),
        warn: (m) => io.err(`lb: warning: ${m}`),
      });
    } catch (err) {
      if (err instanceof ConfigError) return reportConfigError(io, err);
      throw err;
    }
    return fn(daemonOnly.length === 0 ? prepared : { ...prepared, warnings: sortDiagnostics([...prepared.warnings, ...daemonOnly]) });
  });
}

export async function runPlan(options: PlanOptions, io: CliIo = stdio()): Promise<number> {
  return withPreparedPlan(options, io, (prepared) => {
    printBlock(io, renderPlan(prepared, options.format, { color: io.color, verbose: options.verbose, instance: options.instance }));
    if (options.out !== undefined) {
      writePlanFile(options.out, toPlanFile(prepared));
      const note = [`Saved the plan to: ${options.out}`, '', 'To perform exactly these actions, run:', `    lb apply ${options.out}${options.instance === 'default' ? '' : ` --instance ${options.instance}`}`];
      // Keep stdout a pure document for json and markdown.
      for (const line of note) (options.format === 'text' ? io.out : io.err)(line);
    }
    return options.detailedExitcode && hasChanges(prepared.plan) ? 2 : 0;
  });
}

export function renderPlan(p: PreparedPlan, format: PlanFormat, opts: { color: boolean; verbose: boolean; instance: string }): string {
  if (format === 'json') return renderJson(p.plan, { diagnostics: p.warnings });
  if (format === 'markdown') {
    return renderMarkdown(p.plan, { diagnostics: p.warnings, title: `lb plan (instance ${opts.instance}${p.revision ? `, revision ${p.revision}` : ''})` });
  }
  const gen = p.live.ctl.activeGen;
  return renderText(p.plan, {
    color: opts.color,
    diagnostics: p.warnings,
    ...(opts.verbose ? { raw: { before: p.live.exists ? p.live.raw : null, after: encodeGeneration(gen, p.encoded.generation) } } : {}),
  });
}
