// `lb status --fleet --repo URL`: every node's last report on the status branch, one row each
// (node, applied and desired revision, Ready, drift, age of the report, flags: STALE, STALLED,
// BEHIND, DRIFT), for a reviewer or a PR comment (--format markdown). Reads the branch like any
// revision (GitSource), so it needs no instance and no root.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_STALE_AFTER_SEC, FLEET_COLUMNS, fleetCells, nodeRow, renderFleetMarkdown } from '../../report/fleet.js';
import { readStatusBranch } from '../../report/status-reader.js';
import { alignRows } from '../../runtime/status-text.js';
import { parseDuration } from '../../source/poll.js';
import { redactUrl } from '../../source/url.js';
import { stdio, type CliIo } from '../output.js';

export const FLEET_FORMAT_VERSION = '1.0';

export interface FleetOptions {
  repo: string;
  statusBranch: string;
  format: 'text' | 'json' | 'markdown';
  /** A report older than this flags its node STALE (a duration: 90s, 15m; default 15m). */
  staleAfter?: string;
  authTokenFile?: string;
}

export async function runStatusFleet(options: FleetOptions, io: CliIo = stdio(), now: () => Date = () => new Date()): Promise<number> {
  const staleAfterSec = options.staleAfter === undefined ? DEFAULT_STALE_AFTER_SEC : parseDuration(options.staleAfter) / 1000;
  const work = await mkdtemp(join(tmpdir(), 'lb-fleet-'));
  try {
    const read = await readStatusBranch({
      repo: options.repo, branch: options.statusBranch, workDir: work,
      ...(options.authTokenFile !== undefined ? { auth: { tokenFile: options.authTokenFile } } : {}),
    });
    const at = now();
    const rows = read.reports.map((r) => nodeRow(r, at, staleAfterSec));
    for (const s of read.skipped) io.err(`lb: warning: status branch ${options.statusBranch}: skipped ${s}`);
    if (options.format === 'json') {
      io.out(JSON.stringify({
        format_version: FLEET_FORMAT_VERSION, repo: redactUrl(options.repo), branch: options.statusBranch, commit: read.commit,
        generated_at: at.toISOString(), stale_after_sec: staleAfterSec,
        nodes: rows.map((r) => ({ ...r, ageSec: Number.isFinite(r.ageSec) ? r.ageSec : null })),
      }, null, 2));
    } else if (options.format === 'markdown') {
      io.out(renderFleetMarkdown(rows, `lb fleet: ${rows.length} node${rows.length === 1 ? '' : 's'} on ${options.statusBranch} (${read.commit.slice(0, 12)})`).trimEnd());
    } else if (rows.length === 0) {
      io.out(`No node has reported on ${options.statusBranch} yet.`);
    } else {
      for (const line of alignRows([[...FLEET_COLUMNS], ...rows.map(fleetCells)])) io.out(line.trimEnd());
    }
    return 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** `lb status` with --fleet, --repo or --format markdown: checks the combination, then runs the fleet table. */
export async function runStatusFleetCli(o: { format: 'text' | 'json' | 'markdown'; fleet: boolean; repo?: string; statusBranch: string; staleAfter?: string; authTokenFile?: string }, io: CliIo = stdio()): Promise<number> {
  if (!o.fleet || o.repo === undefined) {
    io.err('lb: status --fleet, --repo and --format markdown go together: lb status --fleet --repo PATH|URL [--format markdown]');
    return 1;
  }
  const { fleet: _fleet, repo, ...rest } = o;
  return runStatusFleet({ ...rest, repo }, io);
}
