// The choices and option sets `lb`'s command line declares, apart from the commands' code: the
// program is built from these alone, and each command's module (with the apply, the data plane,
// git, the daemon behind it) is loaded only when that command runs. A Node start plus loading
// every command's modules cost ~0.3 s of CPU on each `lb validate`.

import type { Command } from 'commander';
import type { ConfigFormat } from '../core/config/read-source.js';
import type { BreakerAction } from '../runtime/service.js';

export const BREAKER_ACTIONS: readonly BreakerAction[] = ['open', 'close', 'reset'];

export const SHOW_WHAT = ['maps', 'flows', 'targets'] as const;
export type ShowWhat = (typeof SHOW_WHAT)[number];

export const CONVERT_FORMATS: readonly ConfigFormat[] = ['yaml', 'edn'];

export type PlanFormat = 'text' | 'json' | 'markdown';
export const PLAN_FORMATS: readonly PlanFormat[] = ['text', 'json', 'markdown'];

export interface RevisionPlanOptions {
  repo: string;
  base?: string;
  head: string;
  path?: string;
  againstStatus?: string;
  statusBranch?: string;
  format: PlanFormat;
  detailedExitcode: boolean;
  authTokenFile?: string;
}

/** `lb plan`'s options: those of the live plan (commands/plan.ts) and, with --repo, these. */
export interface PlanCommandOptions extends Omit<RevisionPlanOptions, 'repo' | 'head'> {
  config: string;
  out?: string;
  verbose: boolean;
  revision?: string;
  repo?: string;
  head?: string;
}

/** The options of a plan between revisions (commands/plan-revisions.ts), added to `lb plan`. */
export function addRevisionPlanOptions(cmd: Command): Command {
  return cmd
    .option('--repo <path|url>', 'plan between two revisions of this repository instead of against the live data plane (no kernel, no root)')
    .option('--base <ref>', 'with --repo: the revision to plan against (branch, tag or commit)')
    .option('--head <ref>', 'with --repo: the revision to plan (default HEAD)')
    .option('--path <subpath>', 'with --repo: the config inside the repository (default the root)')
    .option('--against-status <node>', 'with --repo: plan against the revision NODE last reported applied on the status branch')
    .option('--status-branch <name>', 'with --against-status: the status branch', 'lb-status')
    .option('--auth-token-file <file>', 'with --repo: token for an http(s) remote (else $LB_GIT_TOKEN)');
}

/** Whether `lb plan` was asked for a plan between revisions (any of its options given). */
export function plansRevisions(o: PlanCommandOptions): boolean {
  return o.repo !== undefined || o.base !== undefined || o.head !== undefined || o.againstStatus !== undefined || o.path !== undefined;
}
