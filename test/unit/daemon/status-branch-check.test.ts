// --status-branch equal to the followed branch is refused at start (every report would be a new
// revision: a loop), whether either side is written X or refs/heads/X; other pairs are allowed.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import { statusBranchLoop } from '../../../src/daemon/status-branch-check.js';

const dir = mkdtempSync(join(tmpdir(), 'lb-status-loop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('status branch vs followed ref', () => {
  it('refuses the followed branch, written either way', () => {
    for (const [ref, status] of [['main', 'main'], ['refs/heads/main', 'main'], ['main', 'refs/heads/main'], ['refs/heads/cfg/prod', 'cfg/prod'], [' main', 'main']] as const) {
      expect(statusBranchLoop(ref, status), `${ref} / ${status}`).toMatch(/is the branch that --ref .* follows: .* \(a loop\)/);
    }
  });

  it('allows another branch, tags, commit ids and HEAD (not known before the first fetch)', () => {
    for (const [ref, status] of [['main', 'lb-status'], ['refs/tags/main', 'main'], ['HEAD', 'main'], [undefined, 'main'],
      ['0123456789abcdef0123456789abcdef01234567', '0123456789abcdef0123456789abcdef01234567'], ['refs/heads/main', 'refs/heads/mainline']] as const) {
      expect(statusBranchLoop(ref, status), `${String(ref)} / ${status}`).toBeUndefined();
    }
  });

  it('Daemon.start refuses it with a usage error before taking a lock or creating anything', async () => {
    const workDir = join(dir, 'work');
    const instance = `loop-${process.pid}`;
    await expect(Daemon.start({ instance, repo: 'https://git.example.invalid/cfg.git', ref: 'refs/heads/main', statusBranch: 'main', workDir }))
      .rejects.toMatchObject({ code: 'LB_DAEMON_USAGE', message: expect.stringMatching(/--status-branch main is the branch that --ref refs\/heads\/main follows/) as unknown });
    expect(readdirSync(dir)).toEqual([]);
  });
});
