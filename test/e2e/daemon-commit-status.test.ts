// `lb daemon --commit-status`: a real daemon in a namespace of this file's own follows a branch
// over smart HTTP and sets a commit status `lb/<node>` on each revision through the forge's API,
// here the forge stand-in (src/sandbox/forge-server.ts) on the namespace's loopback: success on
// an applied commit (linking the node's status.md), failure on an invalid one, whose message
// names the file and line; a refused token (401) is logged and changes nothing in the reconcile.
// Needs root (BPF, namespaces); fails, never skips, without it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlane, instanceDir } from '../../src/dataplane/index.js';
import { ManagedProcess, waitUntil } from '../../src/sandbox/index.js';
import type { RecordedStatus } from '../../src/sandbox/forge-server.js';
import { runDir } from '../../src/state/run-dir.js';
import { ensureBuilt } from '../lib/build.js';
import { createNetns, deleteNetns, ROOT, runCli } from '../lib/cli.js';
import { createBareRepo, WorkRepo } from '../lib/git-fixtures.js';
import { DaemonProcess, NsGitServer, waitForStatus } from './lib/daemon.js';

if (process.getuid?.() !== 0) throw new Error('daemon-commit-status.test.ts must run as root: it loads BPF programs and creates network namespaces');

const tag = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const ns = `lbcs${tag}`;
const instance = `dcs-${tag}`;
const config = (weight: number | string): string => `proxies:
  - name: web
    listen: {interfaces: [veth-x], port: 80, address: 10.78.0.10}
    default-target:
      - {ip: 10.78.1.1, port: 8080, weight: ${weight}}
`;

describe('lb daemon --commit-status', () => {
  let root = '';
  let git: NsGitServer | undefined;
  let forge: ManagedProcess | undefined;
  let daemon: DaemonProcess | undefined;

  /** The statuses the stand-in printed so far. */
  const statuses = (): RecordedStatus[] =>
    (forge?.stdout ?? '').split('\n').filter((l) => l.startsWith('{"status"')).map((l) => (JSON.parse(l) as { status: RecordedStatus }).status);
  const statusFor = (sha: string, state: string): Promise<RecordedStatus> =>
    waitUntil(() => statuses().find((s) => s.sha === sha && s.body['state'] === state), { timeoutMs: 20_000, intervalMs: 100, what: `commit status ${state} on ${sha.slice(0, 12)}` });

  beforeAll(async () => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'lb-commit-status-'));
    createNetns(ns, [['veth-x', 'veth-y']]);
    git = new NsGitServer(ns, join(root, 'repos'));
    await git.start();
    writeFileSync(join(root, 'forge-token'), 'forge-token-1\n');
    forge = new ManagedProcess(['nsenter', `--net=/run/netns/${ns}`, process.execPath, join(ROOT, 'dist/src/sandbox/forge-server-main.js'), '--token-file', join(root, 'forge-token')], { label: `forge stand-in in ${ns}` });
    await forge.waitForOutput(/"ready":true/);
  });

  afterAll(async () => {
    try {
      if (daemon?.proc.running) await daemon.stop(5000);
      await git?.stop();
      await forge?.stop(2000);
      if (existsSync(instanceDir(instance))) runCli(['--instance', instance, 'down'], { ns, timeoutMs: 30_000 });
    } finally {
      daemon?.proc.killSync();
      git?.proc?.killSync();
      forge?.killSync();
      deleteNetns(ns);
      rmSync(runDir(instance), { recursive: true, force: true });
      if (existsSync(instanceDir(instance))) DataPlane.down(instance);
      if (root) rmSync(root, { recursive: true, force: true });
    }
  });

  it('success on an applied commit, failure on an invalid one; a refused token does not hold up the reconcile', async () => {
    const port = Number(/"ready":true,"port":(\d+)/.exec(forge!.stdout)![1]);
    const bare = await createBareRepo(join(root, 'repos'), 'config.git', root);
    const work = await WorkRepo.clone(bare, join(root, 'work'), root);
    const good = await work.commit('weight 5', { files: { 'prod/lb.yaml': config(5) } });
    await work.push();
    daemon = new DaemonProcess(ns, instance, [
      '--repo', git!.url('config.git'), '--ref', 'main', '--path', 'prod', '--node', 'edge-1', '--poll', '200ms', '--status-branch', 'lb-status',
      '--commit-status', 'gitea', '--commit-status-token-file', join(root, 'forge-token'),
      '--commit-status-api', `http://127.0.0.1:${port}/api/v1`, '--commit-status-project', 'ops/lb-config',
      '--ops-listen', '127.0.0.1:9180', '--work-dir', join(root, 'daemon-work'),
    ]);
    await daemon.started();

    const ok = await statusFor(good, 'success');
    expect(ok).toMatchObject({ forge: 'gitea', project: 'ops/lb-config' });
    expect(ok.body).toEqual({
      state: 'success', context: 'lb/edge-1', description: 'applied by edge-1 (+4 ~0 -0)',
      target_url: `${git!.url('config')}/src/branch/lb-status/edge-1/status.md`,
    });

    const bad = await work.commit('weight eighty', { files: { 'prod/lb.yaml': config('eighty') } });
    await work.push();
    const failed = await statusFor(bad, 'failure');
    expect(failed.body['context']).toBe('lb/edge-1');
    expect(String(failed.body['description'])).toMatch(new RegExp(`^stalled on edge-1: ConfigInvalid: prod/lb\\.yaml:5: .*; ${good.slice(0, 12)} stays live$`));

    // The forge refuses the token from now on: the next revision applies all the same, and the refusal is logged.
    writeFileSync(join(root, 'forge-token'), 'revoked\n');
    const next = await work.commit('weight 7', { files: { 'prod/lb.yaml': config(7) } });
    await work.push();
    await waitForStatus(instance, (s) => s.status?.lastAppliedRevision === next, `revision ${next.slice(0, 12)} applied`);
    await daemon.proc.waitForOutput(/"code":"LB_FORGE_STATUS".*HTTP 401|HTTP 401.*"code":"LB_FORGE_STATUS"/, 20_000);
    expect(statuses().some((s) => s.sha === next)).toBe(false);
    expect(await daemon.stop(10_000)).toEqual({ code: 0, signal: null });
  });
});
