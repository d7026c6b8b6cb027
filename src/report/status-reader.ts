// Reads the status branch back: every `<node>/status.json` the reporters (status-branch.ts)
// committed. The branch is fetched like any revision (GitSource: bounded, pack-guarded export),
// so a reviewer's machine or a CI job reads it with no clone of its own to manage.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LbError } from '../core/errors.js';
import type { GitAuthOptions } from '../source/credentials.js';
import { GitSource } from '../source/git-source.js';
import { STATUS_REPORT_SCHEMA, type StatusReport } from './types.js';

export interface StatusBranchRead {
  /** The status branch's commit. */
  commit: string;
  /** One per node directory holding a status.json of this schema, sorted by node. */
  reports: StatusReport[];
  /** Directories skipped, with why (unreadable, another schema, node name not the directory's). */
  skipped: string[];
}

export async function readStatusBranch(opts: { repo: string; branch?: string; workDir: string; auth?: GitAuthOptions }): Promise<StatusBranchRead> {
  const branch = opts.branch ?? 'lb-status';
  const source = new GitSource({ url: opts.repo, ref: `refs/heads/${branch}`, workDir: opts.workDir, keepCheckouts: 1, ...(opts.auth ? { auth: opts.auth } : {}) });
  let rev;
  try {
    rev = await source.fetch();
  } catch (err) {
    if ((err as { code?: string }).code === 'LB_SOURCE_REF_NOT_FOUND') {
      throw new LbError('LB_REPORT_READ', `the status branch ${branch} does not exist in ${source.description.split('#')[0]}: no node has reported yet (lb daemon --status-branch)`, { branch });
    }
    throw err;
  }
  const reports: StatusReport[] = [];
  const skipped: string[] = [];
  const entries = await readdir(rev.rootDir, { withFileTypes: true });
  for (const e of entries.filter((x) => x.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(join(rev.rootDir, e.name, 'status.json'), 'utf8'));
    } catch (err) {
      skipped.push(`${e.name}: no readable status.json (${(err as Error).message.split('\n')[0]})`);
      continue;
    }
    const r = parsed as Partial<StatusReport>;
    if (r.schema !== STATUS_REPORT_SCHEMA) skipped.push(`${e.name}: schema ${JSON.stringify(r.schema)}, not ${STATUS_REPORT_SCHEMA}`);
    else if (r.node !== e.name) skipped.push(`${e.name}: the report names node ${JSON.stringify(r.node)}`);
    else reports.push(r as StatusReport);
  }
  return { commit: rev.revision, reports, skipped };
}
