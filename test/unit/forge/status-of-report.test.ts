// Which commit status a node's report means, and where each forge's API and web pages are for a
// repository URL.
import { describe, expect, it } from 'vitest';
import { commitStatusRequest, fileLink, forgeTargetOf } from '../../../src/forge/forge-api.js';
import { reportStatusesFor } from '../../../src/forge/report-statuses.js';
import { commitStatusOf } from '../../../src/forge/status-of-report.js';
import { silentLogger } from '../../../src/log.js';
import { sampleReport } from '../../lib/status-fixtures.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

describe('commitStatusOf', () => {
  it('applied or unchanged: success on the applied revision', () => {
    expect(commitStatusOf(sampleReport('edge-1'), 'https://x/status.md')).toEqual({
      sha: A, state: 'success', context: 'lb/edge-1', description: 'applied by edge-1 (+2 ~1 -0)', targetUrl: 'https://x/status.md',
    });
    expect(commitStatusOf(sampleReport('edge-1', { result: 'unchanged', plan: null }))?.description).toBe('applied by edge-1');
  });

  it('stalled or failed: failure on the attempted revision, naming the first error and what stays live', () => {
    const r = sampleReport('edge-1', {
      result: 'stalled', lastAttemptedRevision: B,
      conditions: [{ type: 'Ready', status: 'False', reason: 'ConfigInvalid', message: 'config invalid', lastTransitionTime: '2024-05-01T10:00:00.000Z' }],
      errors: [{ code: 'LB_CONFIG_SCHEMA', message: 'expected an integer 1..65535', file: 'prod/lb.yaml', line: 3, column: 40 }],
    });
    expect(commitStatusOf(r)).toMatchObject({ sha: B, state: 'failure', description: `stalled on edge-1: ConfigInvalid: prod/lb.yaml:3: expected an integer 1..65535; ${A.slice(0, 12)} stays live` });
    expect(commitStatusOf({ ...r, result: 'failed', errors: [] })?.description).toBe(`failed, retrying on edge-1: ConfigInvalid: config invalid; ${A.slice(0, 12)} stays live`);
  });

  it('progressing: pending; a file source (no commit) or no revision: no status', () => {
    expect(commitStatusOf(sampleReport('n', { result: 'progressing', lastAttemptedRevision: B }))).toMatchObject({ sha: B, state: 'pending' });
    expect(commitStatusOf(sampleReport('n', { lastAppliedRevision: `sha256:${'c'.repeat(64)}` }))).toBeUndefined();
    expect(commitStatusOf(sampleReport('n', { result: 'stalled', lastAttemptedRevision: null }))).toBeUndefined();
  });
});

describe('forge locations', () => {
  it('API base and project from the repository URL', () => {
    expect(forgeTargetOf('github', 'https://github.com/ops/lb.git')).toEqual({ kind: 'github', api: 'https://api.github.com', project: 'ops/lb' });
    expect(forgeTargetOf('github', 'https://ghe.example/ops/lb')).toEqual({ kind: 'github', api: 'https://ghe.example/api/v3', project: 'ops/lb' });
    expect(forgeTargetOf('gitea', 'http://gitea.local:3000/ops/lb.git')).toEqual({ kind: 'gitea', api: 'http://gitea.local:3000/api/v1', project: 'ops/lb' });
    expect(forgeTargetOf('gitlab', 'https://gitlab.example/a/b/c.git')).toEqual({ kind: 'gitlab', api: 'https://gitlab.example/api/v4', project: 'a/b/c' });
    expect(forgeTargetOf('github', '/srv/git/lb.git')).toBeUndefined();
    expect(forgeTargetOf('github', 'https://github.com/a/b/c')).toBeUndefined();
  });

  it("the node's status.md on the status branch", () => {
    expect(fileLink('github', 'https://github.com/ops/lb.git', 'lb-status', 'edge-1/status.md')).toBe('https://github.com/ops/lb/blob/lb-status/edge-1/status.md');
    expect(fileLink('gitea', 'https://g.example/ops/lb.git', 'lb-status', 'edge-1/status.md')).toBe('https://g.example/ops/lb/src/branch/lb-status/edge-1/status.md');
    expect(fileLink('gitlab', 'https://gl.example/a/b.git', 'lb-status', 'edge-1/status.md')).toBe('https://gl.example/a/b/-/blob/lb-status/edge-1/status.md');
  });

  it('GitHub descriptions are cut to 140 characters on one line', () => {
    const req = commitStatusRequest(forgeTargetOf('github', 'https://github.com/o/r')!, { sha: A, state: 'failure', context: 'lb/n', description: `x\n${'y'.repeat(300)}` });
    expect(req.body['description']).toHaveLength(140);
    expect(req.body['description']!.startsWith('x y')).toBe(true);
  });
});

describe('reportStatusesFor (the daemon options)', () => {
  const ctx = { repo: 'https://github.com/ops/lb.git', node: 'edge-1', log: silentLogger };

  it('refuses an unknown forge, a missing token file, and a repository it cannot place', () => {
    expect(() => reportStatusesFor({ forge: 'bitbucket', tokenFile: '/t' }, ctx)).toThrow(/expected one of github, gitea, gitlab/);
    expect(() => reportStatusesFor({ forge: 'github' }, ctx)).toThrow(/needs --commit-status-token-file/);
    expect(() => reportStatusesFor({ forge: 'gitea', tokenFile: '/t' }, { ...ctx, repo: '/srv/git/lb.git' })).toThrow(/give --commit-status-api URL and --commit-status-project OWNER\/REPO/);
    expect(() => reportStatusesFor({ forge: 'github', tokenFile: '/t', project: 'justone' }, ctx)).toThrow(/expected OWNER\/REPO/);
  });

  it('a local repository with --commit-status-api and -project is fine', () => {
    const s = reportStatusesFor({ forge: 'gitlab', tokenFile: '/t', api: 'https://gl.example/api/v4/', project: '42' }, { ...ctx, repo: '/srv/git/lb.git', statusBranch: 'lb-status' });
    expect(s.notifier.pending).toBe(0);
    s.close();
  });
});
