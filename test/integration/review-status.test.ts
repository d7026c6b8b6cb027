// The status branch read back for review: two nodes' StatusBranchReporters (the daemon's own
// reporter code) commit their reports over smart HTTP, then the built CLI, as nobody, reads them:
// `lb status --fleet` prints one row per node with its flags, and `lb plan --against-status NODE`
// plans a pull request against the revision that node really applied, saying when the node is
// stalled, behind, drifted or has stopped reporting.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusBranchReporter, type StatusReport } from '../../src/report/index.js';
import { ensureBuilt } from '../lib/build.js';
import { runCliAsync, type CliResult } from '../lib/cli.js';
import { createReviewRepo, type ReviewRepo } from '../lib/review-repo.js';
import { sampleReport } from '../lib/status-fixtures.js';

let repo: ReviewRepo;
const lb = (args: string[]): Promise<CliResult> => runCliAsync(args, { uid: 65534 });

async function publish(node: string, report: StatusReport): Promise<void> {
  const reporter = new StatusBranchReporter({ url: repo.url, node, workDir: join(repo.root, `reporter-${node}`), maxRetries: 0 });
  try {
    reporter.report(report);
    const outcome = await reporter.flush();
    expect(outcome?.result, outcome?.error?.message).toBe('committed');
  } finally {
    await reporter.close();
  }
}

beforeAll(async () => {
  ensureBuilt();
  repo = await createReviewRepo('lb-review-status-');
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000).toISOString();
  // edge-1: the pull request was merged once, failed to apply and stalled; it still runs main, and went quiet.
  await publish('edge-1', sampleReport('edge-1', {
    desiredRevision: repo.sha.pr, lastAppliedRevision: repo.sha.main, lastAttemptedRevision: repo.sha.pr, result: 'stalled',
    conditions: [
      { type: 'Ready', status: 'False', reason: 'ConfigInvalid', message: 'config invalid', lastTransitionTime: twoHoursAgo },
      { type: 'Stalled', status: 'True', reason: 'ConfigInvalid', message: 'config invalid', lastTransitionTime: twoHoursAgo },
    ],
    timestamps: { lastAttemptedAt: twoHoursAgo, lastAppliedAt: twoHoursAgo, generatedAt: twoHoursAgo },
  }));
  // edge-2: runs main, Ready, but its maps were changed by hand and self-heal is off.
  await publish('edge-2', sampleReport('edge-2', {
    desiredRevision: repo.sha.main, lastAppliedRevision: repo.sha.main, lastAttemptedRevision: repo.sha.main,
    drift: { entries: 3, healed: false, detectedAt: new Date().toISOString() },
  }));
  // edge-3 follows a plain config path: its revisions are content digests, not commits.
  const digest = `sha256:${'d'.repeat(64)}`;
  await publish('edge-3', sampleReport('edge-3', { desiredRevision: digest, lastAppliedRevision: digest, lastAttemptedRevision: digest }));
});

afterAll(async () => {
  await repo?.dispose();
});

describe('lb status --fleet', () => {
  it('json: one row per node with applied, desired, Ready, drift, age and stale', async () => {
    const r = await lb(['status', '--fleet', '--repo', repo.url, '--format', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { branch: string; nodes: Array<Record<string, unknown>> };
    expect(doc.branch).toBe('lb-status');
    expect(doc.nodes.map((n) => [n['node'], n['applied'], n['desired'], n['ready'], n['stalled'], n['drift'], n['stale'], n['behind']])).toEqual([
      ['edge-1', repo.sha.main, repo.sha.pr, 'False', true, 0, true, true],
      ['edge-2', repo.sha.main, repo.sha.main, 'True', false, 3, false, false],
      ['edge-3', `sha256:${'d'.repeat(64)}`, `sha256:${'d'.repeat(64)}`, 'True', false, 0, false, false],
    ]);
    expect(doc.nodes[0]!['ageSec']).toBeGreaterThanOrEqual(7200);
  });

  it('text and markdown: the same table, stale and stalled nodes flagged', async () => {
    const text = await lb(['status', '--fleet', '--repo', repo.bare, '--format', 'text']);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NODE\s+APPLIED\s+DESIRED\s+READY\s+DRIFT\s+LAST REPORT\s+FLAGS$/);
    expect(lines[1]).toMatch(new RegExp(`^edge-1\\s+${repo.sha.main.slice(0, 12)}\\s+${repo.sha.pr.slice(0, 12)}\\s+False \\(ConfigInvalid\\)\\s+none\\s+2h ago\\s+STALE,STALLED,BEHIND$`));
    expect(lines[2]).toMatch(/^edge-2\s+\w{12}\s+\w{12}\s+True \(ReconciliationSucceeded\)\s+3\s+\d+s ago\s+DRIFT$/);
    const md = await lb(['status', '--fleet', '--repo', repo.url, '--format', 'markdown']);
    expect(md.code).toBe(0);
    expect(md.stdout).toContain('| NODE | APPLIED | DESIRED | READY | DRIFT | LAST REPORT | FLAGS |');
    expect(md.stdout).toContain(`| edge-1 | \`${repo.sha.main.slice(0, 12)}\` | \`${repo.sha.pr.slice(0, 12)}\` | False (ConfigInvalid) | none | 2h ago | **STALE,STALLED,BEHIND** |`);
  });

  it('a repository without the status branch, or --fleet without --repo, is an error', async () => {
    const none = await lb(['status', '--fleet', '--repo', repo.url, '--status-branch', 'no-such-status']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('the status branch no-such-status does not exist');
    const usage = await lb(['status', '--fleet']);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('status --fleet, --repo and --format markdown go together');
  });
});

describe('lb plan --against-status NODE', () => {
  it('plans against the revision the node applied, and says it is stalled, behind and quiet', async () => {
    const r = await lb(['plan', '--repo', repo.url, '--against-status', 'edge-1', '--head', 'pr', '--path', 'prod', '--format', 'json', '--detailed-exitcode']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { base: unknown; notes: string[]; summary: unknown };
    expect(doc.base).toEqual({ ref: 'edge-1 applied', revision: repo.sha.main });
    expect(doc.summary).toEqual({ add: 0, change: 1, destroy: 0 });
    expect(doc.notes).toEqual([
      `node edge-1 is stalled (ConfigInvalid): it stopped retrying and runs ${repo.sha.main.slice(0, 12)}, not ${repo.sha.pr.slice(0, 12)}`,
      "node edge-1's last report is 2h old: it may be down or unable to report",
    ]);
  });

  it('says when the node drifted from its applied revision', async () => {
    const r = await lb(['plan', '--repo', repo.url, '--against-status', 'edge-2', '--head', 'pr', '--path', 'prod', '--format', 'markdown']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('> **Note:** node edge-2 found 3 drifted entries in its data plane (not healed): the live state differs from its applied revision');
  });

  it('a node without a report, or one following a plain config path, is an error', async () => {
    const r = await lb(['plan', '--repo', repo.url, '--against-status', 'edge-9', '--head', 'pr', '--path', 'prod']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('node "edge-9" has no report on the status branch (nodes: edge-1, edge-2, edge-3)');
    const file = await lb(['plan', '--repo', repo.url, '--against-status', 'edge-3', '--head', 'pr', '--path', 'prod']);
    expect(file.code).toBe(1);
    expect(file.stderr).toContain('(it follows a plain config path): there is no revision to plan against');
  });
});
