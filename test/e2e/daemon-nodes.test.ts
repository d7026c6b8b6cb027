// `lb daemon` beyond one node and one branch: two daemons with different --node report to one
// remote and both status files land (concurrent pushes to the status branch retried), and `lb
// status --fleet` reads them back; signature
// verification applies a signed commit and stalls an unsigned one (nothing applied, /readyz 503);
// `--config PATH` follows a plain file (watched), writes /run/lb/<instance>/status.json only, and
// with --no-self-heal reports drift without correcting it; `lb status` with and without a daemon.
//
// Each daemon runs in a network namespace of this file's own, holding one veth pair (both ends
// inside) for the data plane to attach to; the git server runs on each namespace's loopback. No
// packet leaves these namespaces. Needs root; fails (never skips) without it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { DataPlane, instanceDir, readCtl, readGeneration, writeGeneration } from '../../src/dataplane/index.js';
import type { StatusReport } from '../../src/report/types.js';
import { waitUntil } from '../../src/sandbox/index.js';
import { instanceExists } from '../../src/state/live.js';
import { runDir } from '../../src/state/run-dir.js';
import { createBareRepo, createGpgKey, git, WorkRepo, type GpgKey } from '../lib/git-fixtures.js';
import { createNetns, deleteNetns, runCli } from '../lib/cli.js';
import { DaemonProcess, NsGitServer, httpInNs, lbStatus, metric, metricsText, waitForStatus } from './lib/daemon.js';

if (process.getuid?.() !== 0) throw new Error('daemon-nodes.test.ts must run as root: it loads BPF programs and creates network namespaces');

const tag = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const OPS = 9180;

const config = (weights: number[]): string => `proxies:
  - name: web
    listen: {interfaces: [veth-x], port: 80, address: 10.77.0.10}
    default-target:
${weights.map((w, i) => `      - {ip: 10.77.1.${i + 1}, port: 8080, weight: ${w}}`).join('\n')}
`;

describe('lb daemon: two nodes, signed commits, a plain config path', () => {
  let root = '';
  const namespaces: string[] = [];
  const servers: NsGitServer[] = [];
  const daemons: DaemonProcess[] = [];
  const instances: Array<{ instance: string; ns: string }> = [];
  let key: GpgKey | undefined;

  const netns = (name: string): string => {
    const ns = `lbd${tag}${name}`;
    createNetns(ns, [['veth-x', 'veth-y']]);
    namespaces.push(ns);
    return ns;
  };
  const startDaemon = async (ns: string, instance: string, args: string[]): Promise<DaemonProcess> => {
    instances.push({ instance, ns });
    const d = new DaemonProcess(ns, instance, [...args, '--ops-listen', `127.0.0.1:${OPS}`, '--work-dir', join(root, `work-${instance}`)]);
    daemons.push(d);
    await d.started();
    return d;
  };
  const gitServer = async (ns: string): Promise<NsGitServer> => {
    const s = new NsGitServer(ns, join(root, 'repos'));
    servers.push(s);
    await s.start();
    return s;
  };
  const branchReport = async (bare: string, node: string): Promise<StatusReport | undefined> => {
    try {
      return JSON.parse(await git(['--git-dir', bare, 'show', `lb-status:${node}/status.json`], { home: root })) as StatusReport;
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'lb-daemon-nodes-'));
  });

  afterAll(async () => {
    try {
      for (const d of daemons) if (d.proc.running) await d.stop(5000);
      for (const s of servers) await s.stop();
      for (const { instance, ns } of instances) {
        if (existsSync(instanceDir(instance))) runCli(['--instance', instance, 'down'], { ns, timeoutMs: 30_000 });
      }
      await key?.dispose();
    } finally {
      for (const d of daemons) d.proc.killSync();
      for (const s of servers) s.proc?.killSync();
      for (const ns of namespaces) deleteNetns(ns);
      for (const { instance } of instances) {
        rmSync(runDir(instance), { recursive: true, force: true });
        if (existsSync(instanceDir(instance))) DataPlane.down(instance);
      }
      if (root) rmSync(root, { recursive: true, force: true });
    }
  });

  it('two daemons with different --node report to one remote: both status files land, again after a new commit', async () => {
    const bare = await createBareRepo(join(root, 'repos'), 'fleet.git', root);
    const work = await WorkRepo.clone(bare, join(root, 'fleet-work'), root);
    const first = await work.commit('fleet config', { files: { 'lb.yaml': config([1, 1]) } });
    await work.push();
    const [nsA, nsB] = [netns('a'), netns('b')];
    const [sa, sb] = [await gitServer(nsA), await gitServer(nsB)];
    const common = ['--ref', 'main', '--poll', '200ms', '--status-branch', 'lb-status', '--drift-interval', '1s'];
    await Promise.all([
      startDaemon(nsA, `dn-a-${tag}`, ['--repo', sa.url('fleet.git'), '--node', 'node-a', ...common]),
      startDaemon(nsB, `dn-b-${tag}`, ['--repo', sb.url('fleet.git'), '--node', 'node-b', ...common]),
    ]);
    const both = (sha: string) => waitUntil(async () => {
      const [a, b] = [await branchReport(bare, 'node-a'), await branchReport(bare, 'node-b')];
      return a?.lastAppliedRevision === sha && b?.lastAppliedRevision === sha ? [a, b] as const : undefined;
    }, { timeoutMs: 20_000, intervalMs: 200, what: `both nodes reporting ${sha.slice(0, 12)}` });
    const [a1, b1] = await both(first);
    expect(a1).toMatchObject({ node: 'node-a', instance: `dn-a-${tag}`, result: 'applied' });
    expect(b1).toMatchObject({ node: 'node-b', instance: `dn-b-${tag}`, result: 'applied' });

    // Both apply the next commit at about the same time and push to the branch concurrently.
    const second = await work.commit('shift weight', { files: { 'lb.yaml': config([3, 1]) } });
    await work.push();
    await both(second);
    const subjects = (await git(['--git-dir', bare, 'log', '--format=%s', 'lb-status'], { home: root })).trim().split('\n');
    expect(subjects.filter((s) => s.startsWith('status(node-a): applied'))).toHaveLength(2);
    expect(subjects.filter((s) => s.startsWith('status(node-b): applied'))).toHaveLength(2);
    const tree = (await git(['--git-dir', bare, 'ls-tree', '-r', '--name-only', 'lb-status'], { home: root })).trim().split('\n').sort();
    expect(tree).toEqual(['README.md', 'node-a/status.json', 'node-a/status.md', 'node-b/status.json', 'node-b/status.md']);

    // The reviewer's view of the same branch, written by these two daemons: `lb status --fleet`.
    const fleet = runCli(['status', '--fleet', '--repo', bare, '--format', 'json']);
    expect(fleet.code, fleet.stderr).toBe(0);
    const rows = (JSON.parse(fleet.stdout) as { nodes: Array<Record<string, unknown>> }).nodes;
    expect(rows.map((n) => [n['node'], n['applied'], n['desired'], n['ready'], n['stale'], n['behind']])).toEqual([
      ['node-a', second, second, 'True', false, false],
      ['node-b', second, second, 'True', false, false],
    ]);

    for (const d of daemons.splice(0)) expect(await d.stop(10_000)).toEqual({ code: 0, signal: null });
  });

  it('--verify-signatures: an unsigned commit is Stalled and nothing is applied; a signed one applies; an unsigned one after it stalls and the signed one keeps serving', async () => {
    key = await createGpgKey(root);
    writeFileSync(join(root, 'keyring.asc'), key.armoredPublicKey);
    const bare = await createBareRepo(join(root, 'repos'), 'signed.git', root);
    const work = await WorkRepo.clone(bare, join(root, 'signed-work'), root);
    const unsigned = await work.commit('unsigned', { files: { 'lb.yaml': config([1, 1]) } });
    await work.push();
    const ns = netns('s');
    const server = await gitServer(ns);
    const instance = `dn-s-${tag}`;
    const d = await startDaemon(ns, instance, ['--repo', server.url('signed.git'), '--ref', 'main', '--poll', '200ms', '--verify-signatures', join(root, 'keyring.asc')]);

    const stalled = await waitForStatus(instance, (s) => s.status?.result === 'stalled', 'the unsigned commit stalled');
    expect(stalled.status).toMatchObject({ lastAttemptedRevision: unsigned, lastAppliedRevision: null, errors: [{ code: 'LB_SOURCE_SIGNATURE' }] });
    expect(stalled.status!.conditions.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'CommitUnsigned' });
    expect(instanceExists(instance)).toBe(false);
    const notReady = await httpInNs(ns, OPS, '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatch(/^not ready: stalled \(CommitUnsigned\): .*is not signed/);
    // Polls see the same refused revision: not retried, "unchanged".
    await waitUntil(async () => ((metric(await metricsText(ns, OPS), 'lb_reconcile_total', { result: 'unchanged' }) ?? 0) >= 2 ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 100, what: 'unchanged polls' });
    expect(metric(await metricsText(ns, OPS), 'lb_reconcile_total', { result: 'stalled' })).toBe(1);

    const signed = await work.commit('signed', { sign: key, files: { 'lb.yaml': config([2, 1]) } });
    await work.push();
    await waitForStatus(instance, (s) => s.status?.lastAppliedRevision === signed, 'the signed commit applied');
    expect(instanceExists(instance)).toBe(true);
    expect((await httpInNs(ns, OPS, '/readyz')).status).toBe(200);

    const unsignedAgain = await work.commit('unsigned again', { files: { 'lb.yaml': config([0, 1]) } });
    await work.push();
    const s = await waitForStatus(instance, (x) => x.status?.result === 'stalled' && x.status.lastAttemptedRevision === unsignedAgain, 'the second unsigned commit stalled');
    expect(s.status!.lastAppliedRevision).toBe(signed);
    expect((await httpInNs(ns, OPS, '/readyz')).body).toMatch(/^ready: revision main@[0-9a-f]{12} is live; revision main@[0-9a-f]{12} is stalled \(CommitUnsigned\)/);
    expect(await d.stop(10_000)).toEqual({ code: 0, signal: null });
  });

  it('--config PATH: a watched file, status.json only, drift reported but not healed with --no-self-heal; lb status with and without the daemon', async () => {
    const ns = netns('f');
    const instance = `dn-f-${tag}`;
    const file = join(root, 'plain', 'lb.yaml');
    mkdirSync(join(root, 'plain'), { recursive: true });
    writeFileSync(file, config([1, 1]));
    const d = await startDaemon(ns, instance, ['--config', file, '--no-self-heal', '--drift-interval', '200ms']);
    const first = await waitForStatus(instance, (s) => s.status?.result === 'applied', 'the file applied');
    expect(first.status!.source).toMatchObject({ kind: 'file', url: file });
    expect(first.status!.lastAppliedRevision).toMatch(/^sha256:[0-9a-f]{64}$/);
    const onDisk = JSON.parse(readFileSync(join(runDir(instance), 'status.json'), 'utf8')) as StatusReport;
    expect(onDisk.lastAppliedRevision).toBe(first.status!.lastAppliedRevision);

    writeFileSync(file, config([5, 1]));
    const changed = await waitForStatus(instance, (s) => s.status?.result === 'applied' && s.status.lastAppliedRevision !== first.status!.lastAppliedRevision, 'the edited file applied');
    expect(changed.status!.plan).toEqual({ add: 0, change: 1, destroy: 0 });
    expect(await d.waitForLog((l) => l.result === 'applied' && l.revision === changed.status!.lastAppliedRevision, 'the apply log line')).toMatchObject({ triggers: ['file'] });

    const text = runCli(['--instance', instance, 'status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^lb daemon: running \(pid \d+/);
    expect(text.stdout).toMatch(/Ready: +yes/);

    // Drift with self-heal off: reported (metric, status), the maps stay as they were tampered.
    const dp = DataPlane.open({ instance });
    let tampered: ReturnType<typeof readGeneration>;
    try {
      const gen = readCtl(dp).activeGen;
      tampered = structuredClone(readGeneration(dp, gen));
      tampered.groups[0]!.group.targets[0]!.weight = 9;
      writeGeneration(dp, gen, tampered);
    } finally {
      dp.close();
    }
    const drifted = await waitForStatus(instance, (s) => s.status?.drift?.healed === false, 'the drift reported');
    expect(drifted.status!.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'DriftDetected' });
    await new Promise((r) => setTimeout(r, 600)); // a few more drift checks
    expect(metric(await metricsText(ns, OPS), 'lb_drift_detected_total')).toBe(1);
    const dp2 = DataPlane.open({ instance });
    try {
      expect(readGeneration(dp2, readCtl(dp2).activeGen)).toEqual(tampered);
    } finally {
      dp2.close();
    }

    expect(await d.stop(10_000)).toEqual({ code: 0, signal: null });
    const after = await lbStatus(instance);
    expect(after.daemon.running).toBe(false);
    expect(after.status?.drift).toMatchObject({ healed: false });
    const offline = runCli(['--instance', instance, 'status']);
    expect(offline.stdout).toMatch(/^lb daemon: not running for instance /);
    expect(offline.stdout).toContain(`Last report:      ${join(runDir(instance), 'status.json')}`);
  });
});
