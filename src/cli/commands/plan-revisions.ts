// `lb plan --repo PATH|URL --base REF --head REF`: the plan a merge would make, with no kernel, no
// instance and no root. Both revisions are read the way the daemon reads them (GitSource export,
// loadConfig) and compiled the way it compiles them; the head's state is diffed against the
// base's. With --against-status NODE the base is the revision NODE last reported applied on the
// status branch, and the plan says when that node drifted, is stalled or stopped reporting.
// Exit codes as `lb plan`: 0 no changes (or changes without --detailed-exitcode), 2 changes with
// --detailed-exitcode, 1 error (an invalid head: its diagnostics, file:line:column).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../core/config/config-error.js';
import { LbError } from '../../core/errors.js';
import { changesAnything, planBetweenConfigs } from '../../core/plan/between-configs.js';
import { renderBetween, type BetweenHeader, type RevisionSide } from '../../core/plan/render-between.js';
import { nodeNotes, nodeRow } from '../../report/fleet.js';
import { readStatusBranch } from '../../report/status-reader.js';
import { readRevisionConfig } from '../../source/revision-config.js';
import type { GitAuthOptions } from '../../source/credentials.js';
import { printBlock, reportConfigError, stdio, type CliIo } from '../output.js';
import type { PlanCommandOptions, RevisionPlanOptions } from '../command-choices.js';

export { addRevisionPlanOptions, plansRevisions, type PlanCommandOptions, type RevisionPlanOptions } from '../command-choices.js';

/** What is wrong with the options of a plan between revisions, or undefined. */
function usageError(o: PlanCommandOptions): string | undefined {
  if (o.repo === undefined) return '--base, --head, --path and --against-status plan between revisions of a repository: give --repo PATH|URL';
  if ((o.base === undefined) === (o.againstStatus === undefined)) return 'plan --repo needs exactly one of --base REF and --against-status NODE';
  if (o.out !== undefined || o.verbose || o.revision !== undefined) return '--out, --verbose and --revision are for a plan against the live data plane, not with --repo';
  return undefined;
}

export async function runPlanRevisions(cli: PlanCommandOptions, io: CliIo = stdio(), now: () => Date = () => new Date()): Promise<number> {
  const usage = usageError(cli);
  if (usage !== undefined) {
    io.err(`lb: ${usage}`);
    return 1;
  }
  const options: RevisionPlanOptions = { ...cli, repo: cli.repo!, head: cli.head ?? 'HEAD' };
  const auth: GitAuthOptions | undefined = options.authTokenFile !== undefined ? { tokenFile: options.authTokenFile } : undefined;
  const work = await mkdtemp(join(tmpdir(), 'lb-plan-'));
  try {
    const notes: string[] = [];
    let baseRef: string | null;
    let baseLabel: string;
    if (options.againstStatus !== undefined) {
      const node = options.againstStatus;
      const status = await readStatusBranch({ repo: options.repo, workDir: join(work, 'status'), ...(options.statusBranch ? { branch: options.statusBranch } : {}), ...(auth ? { auth } : {}) });
      const report = status.reports.find((r) => r.node === node);
      if (!report) {
        const known = status.reports.map((r) => r.node).join(', ') || 'none';
        throw new LbError('LB_REPORT_READ', `node ${JSON.stringify(node)} has no report on the status branch (nodes: ${known})`, { node });
      }
      const row = nodeRow(report, now());
      if (row.applied !== null && !/^[0-9a-f]{40}$/.test(row.applied)) {
        throw new LbError('LB_REPORT_READ', `node ${JSON.stringify(node)} applied ${row.applied}, not a commit of a repository (it follows a plain config path): there is no revision to plan against`, { node });
      }
      notes.push(...nodeNotes(row));
      baseRef = row.applied;
      baseLabel = `${node} applied`;
    } else {
      baseRef = options.base!;
      baseLabel = options.base!;
    }

    const read = (ref: string, dir: string) => readRevisionConfig({ repo: options.repo, ref, workDir: join(work, dir), ...(options.path !== undefined ? { path: options.path } : {}), ...(auth ? { auth } : {}) });
    let head;
    try {
      head = await read(options.head, 'head');
    } catch (err) {
      if (err instanceof ConfigError) {
        io.err(`lb: the head ${options.head} has an invalid config:`);
        return reportConfigError(io, err);
      }
      throw err;
    }
    if (head.config === null) {
      io.err(`lb: the config path ${JSON.stringify(options.path)} does not exist at the head ${options.head} (${head.commit.slice(0, 12)})`);
      return 1;
    }
    let base = null;
    if (baseRef !== null) {
      try {
        base = await read(baseRef, 'base');
      } catch (err) {
        if (err instanceof ConfigError) {
          io.err(`lb: the base ${baseLabel} has an invalid config, so there is nothing valid to plan against:`);
          return reportConfigError(io, err);
        }
        throw err;
      }
      if (base.config === null) notes.push(`the config path ${options.path ?? ''} does not exist at the base: the plan creates everything`);
    }

    const planned = planBetweenConfigs(base?.config ?? null, head.config, head.warnings);
    if (planned.errors.length > 0) {
      io.err(`lb: the head ${options.head} does not compile:`);
      return reportConfigError(io, new ConfigError('compile', [...planned.errors, ...planned.diagnostics]));
    }
    const side = (ref: string, commit: string | null): RevisionSide => ({ ref, revision: commit });
    const header: BetweenHeader = {
      base: side(baseLabel, base?.commit ?? null),
      head: side(options.head, head.commit),
      path: options.path ?? '',
      notes,
    };
    printBlock(io, renderBetween(planned, header, options.format, { color: io.color }));
    return options.detailedExitcode && changesAnything(planned) ? 2 : 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
