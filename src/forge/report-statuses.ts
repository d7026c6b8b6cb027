// The daemon's side of commit statuses: from the options (forge, token file, optional API base and
// project) and the followed repository, a notifier that turns each significant report into the
// commit status it means (status-of-report.ts), linking the node's status.md on the status branch.

import { LbError } from '../core/errors.js';
import type { Logger } from '../log.js';
import type { StatusReport } from '../report/types.js';
import { CommitStatusNotifier, type CommitStatusNotifierOptions } from './commit-status-notifier.js';
import { FORGE_KINDS, fileLink, forgeTargetOf, type ForgeKind, type ForgeTarget } from './forge-api.js';
import { commitStatusOf } from './status-of-report.js';

export interface CommitStatusOptions {
  forge: string;
  tokenFile?: string;
  /** API base URL (default: derived from the repository URL). */
  api?: string;
  /** owner/repo, or GitLab's project id or path (default: from the repository URL). */
  project?: string;
}

export class ReportStatuses {
  readonly notifier: CommitStatusNotifier;
  private readonly link: string | undefined;

  constructor(notifier: CommitStatusNotifier, link?: string) {
    this.notifier = notifier;
    this.link = link;
  }

  /** Sends the status the report means, if any; returns at once. */
  report(r: StatusReport): void {
    const s = commitStatusOf(r, this.link);
    if (s) this.notifier.notify(s);
  }

  close(): void {
    this.notifier.close();
  }
}

const usage = (message: string): LbError => new LbError('LB_DAEMON_USAGE', message);

/** Checks the options and builds the daemon's commit statuses for `repo`; throws LB_DAEMON_USAGE. */
export function reportStatusesFor(opts: CommitStatusOptions, ctx: {
  repo: string; node: string; statusBranch?: string; log: Logger; notifier?: Partial<CommitStatusNotifierOptions>;
}): ReportStatuses {
  if (!FORGE_KINDS.includes(opts.forge as ForgeKind)) throw usage(`--commit-status ${opts.forge}: expected one of ${FORGE_KINDS.join(', ')}`);
  const kind = opts.forge as ForgeKind;
  if (opts.tokenFile === undefined) throw usage('--commit-status needs --commit-status-token-file FILE (a token allowed to set commit statuses)');
  const derived = forgeTargetOf(kind, ctx.repo);
  const api = (opts.api ?? derived?.api)?.replace(/\/+$/, '');
  const project = opts.project ?? derived?.project;
  if (api === undefined || project === undefined) {
    throw usage(`--commit-status: cannot tell the ${kind} API or project from ${ctx.repo}; give --commit-status-api URL and --commit-status-project ${kind === 'gitlab' ? 'ID|GROUP/PROJECT' : 'OWNER/REPO'}`);
  }
  if (kind !== 'gitlab' && project.split('/').length !== 2) throw usage(`--commit-status-project ${project}: expected OWNER/REPO`);
  const target: ForgeTarget = { kind, api, project };
  const link = ctx.statusBranch !== undefined ? fileLink(kind, ctx.repo, ctx.statusBranch, `${ctx.node}/status.md`) : undefined;
  return new ReportStatuses(new CommitStatusNotifier({ target, tokenFile: opts.tokenFile, log: ctx.log, ...ctx.notifier }), link);
}
