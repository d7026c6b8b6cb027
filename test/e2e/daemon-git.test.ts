// `lb daemon` end to end: the built CLI runs as a daemon in the LB namespace of a sandbox topology
// (1 client, 3 backends), following branch main of a bare repository served over smart HTTP by
// `git http-backend` on that namespace's loopback. Commits are pushed to the bare repository by
// path; webhooks, /metrics, /readyz are reached with curl / Node from inside the LB namespace; real
// HTTP clients in the client namespace show where traffic goes.
//
// One topology and one history for the whole file, in order: initial apply; a weight change via a
// webhook (a forged one refused); a burst of 200 webhooks; a broken commit Stalled with its position
// on the status branch; the remote down and back; a force push; drift healed; kill -9 during a TCP
// stream and a restart whose first plan is a no-op; a change picked up by polling; SIGTERM.
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { DataPlane, instanceDir, readCtl, readGeneration, writeGeneration } from '../../src/dataplane/index.js';
import type { StatusReport } from '../../src/report/types.js';
import { VIP, createTopology, httpCountBackends, waitUntil, type Topology } from '../../src/sandbox/index.js';
import { instanceExists } from '../../src/state/live.js';
import { runDir } from '../../src/state/run-dir.js';
import { createBareRepo, git, WorkRepo } from '../lib/git-fixtures.js';
import { runCli } from '../lib/cli.js';
import { startStream, streamContinuity, type StreamClient } from './lib/clients.js';
import { webProxyYaml } from './lib/config.js';
import {
  DaemonProcess, NsGitServer, httpInNs, lbStatus, metric, metricSum, metricsText, postWebhooks, pushBody, waitForStatus,
} from './lib/daemon.js';

if (process.getuid?.() !== 0) throw new Error('daemon-git.test.ts must run as root: it loads BPF programs and creates network namespaces');

const instance = `dg-${process.pid}-${randomBytes(3).toString('hex')}`;
const SECRET = 'It\'s a Secret to Everybody';
const OPS = 9180;
const HOOK = 9181;
const REQUESTS = 30;

describe('lb daemon following a git branch over smart HTTP', () => {
  let root = '';
  let bare = '';
  let work: WorkRepo;
  let topo: Topology | undefined;
  let server: NsGitServer | undefined;
  let daemon: DaemonProcess | undefined;
  const shas: Record<string, string> = {};
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const d = (): DaemonProcess => {
    if (!daemon) throw new Error('daemon not started');
    return daemon;
  };
  const daemonArgs = (poll: string): string[] => [
    '--repo', server!.url('config.git'), '--ref', 'main', '--path', 'lb', '--poll', poll,
    '--webhook-listen', `127.0.0.1:${HOOK}`, '--webhook-secret-file', join(root, 'hook.secret'),
    '--status-branch', 'lb-status', '--node', 'node-a', '--drift-interval', '300ms', '--retry-interval', '200ms',
    '--ops-listen', `127.0.0.1:${OPS}`, '--work-dir', join(root, 'daemon'),
  ];
  const commit = async (message: string, text: string): Promise<string> => {
    const sha = await work.commit(message, { files: { 'lb/lb.yaml': text } });
    await work.push();
    return sha;
  };
  const hook = async (sha: string): Promise<number> => (await postWebhooks(t().lbNs, HOOK, [{ body: pushBody(sha), secret: SECRET }]))[0]!;
  const counts = async (): Promise<Record<string, number>> => {
    const r = await httpCountBackends(t().clients[0]!.ns, `http://${VIP}/`, REQUESTS, { totalTimeoutMs: 30_000, timeoutMs: 3000 });
    expect(r.failures, r.errors.join('; ')).toBe(0);
    return r.counts;
  };
  const metrics = (): Promise<string> => metricsText(t().lbNs, OPS);
  const branchReport = async (node: string): Promise<StatusReport | undefined> => {
    try {
      return JSON.parse(await git(['--git-dir', bare, 'show', `lb-status:${node}/status.json`], { home: root })) as StatusReport;
    } catch {
      return undefined;
    }
  };
  const waitForBranch = (pred: (r: StatusReport) => boolean, what: string): Promise<StatusReport> =>
    waitUntil(async () => { const r = await branchReport('node-a'); return r && pred(r) ? r : undefined; }, { timeoutMs: 20_000, intervalMs: 200, what });
  const applied = (sha: string, what: string) => waitForStatus(instance, (s) => s.status?.lastAppliedRevision === sha, what);

  beforeAll(async () => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'lb-daemon-git-'));
    writeFileSync(join(root, 'hook.secret'), `${SECRET}\n`);
    bare = await createBareRepo(join(root, 'repos'), 'config.git', root);
    work = await WorkRepo.clone(bare, join(root, 'work'), root);
    await work.write({ 'README.md': 'lb config\n' });
    shas.initial = await commit('initial: even weights', webProxyYaml([1, 1, 1]));
    topo = await createTopology({ backends: 3, clients: 1 });
    await topo.startBackendServers();
    server = new NsGitServer(topo.lbNs, join(root, 'repos'));
    await server.start();
  });

  afterAll(async () => {
    try {
      if (daemon?.proc.running) await daemon.stop(5000);
      await server?.stop();
      if (topo && existsSync(instanceDir(instance))) runCli(['--instance', instance, 'down'], { ns: topo.lbNs, timeoutMs: 30_000 });
      await topo?.destroy();
    } finally {
      daemon?.proc.killSync();
      server?.proc?.killSync();
      topo?.destroySync();
      rmSync(runDir(instance), { recursive: true, force: true });
      if (root) rmSync(root, { recursive: true, force: true });
    }
  });

  it('applies the initial revision: every backend answers through the VIP; /healthz, /readyz and /metrics tell', async () => {
    daemon = new DaemonProcess(t().lbNs, instance, daemonArgs('1h'));
    await d().started();
    await applied(shas.initial!, 'the initial revision applied');
    expect(await httpInNs(t().lbNs, OPS, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await httpInNs(t().lbNs, OPS, '/readyz')).toEqual({ status: 200, body: `ready: revision main@${shas.initial!.slice(0, 12)} is live\n` });

    const c = await counts();
    console.log(`daemon: initial weights 1/1/1: ${JSON.stringify(c)}`);
    expect(Object.keys(c).sort()).toEqual(['b1', 'b2', 'b3']);

    const m = await metrics();
    expect(metric(m, 'lb_reconcile_total', { result: 'applied' })).toBe(1);
    expect(metric(m, 'lb_last_applied_revision_info', { revision: shas.initial! })).toBe(1);
    expect(metric(m, 'lb_drift_detected_total')).toBe(0);
    expect(metric(m, 'lb_reconcile_duration_seconds_count', { result: 'applied' })).toBe(1);
    expect(metric(m, 'lb_packets_total', { reason: 'ct_new' })).toBeGreaterThanOrEqual(REQUESTS);
    expect(metric(m, 'lb_dataplane_up')).toBe(1);
    // auto chose the TC path on the sandbox's veth, and says why.
    expect(m).toMatch(/^lb_interface_path_info\{interface="veth-c1",path="tc",reason="veth-c1 is a virtual interface \(veth\)[^"]*"\} 1$/m);
    expect(metric(m, 'lb_interface_up', { interface: 'veth-c1' })).toBe(1);
    const flows = ['1', '2', '3'].map((i) => metric(m, 'lb_backend_new_flows_total', { backend: `10.202.${i}.2:8080` }) ?? 0);
    expect(flows.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(REQUESTS);
    expect(metric(m, 'lb_backend_bytes_total', { backend: '10.202.1.2:8080' })).toBeGreaterThan(0);

    const report = await waitForBranch((r) => r.lastAppliedRevision === shas.initial, 'node-a/status.json on lb-status');
    expect(report).toMatchObject({ node: 'node-a', instance, result: 'applied', source: { kind: 'git', ref: 'main', path: 'lb' }, plan: { add: 6, change: 0, destroy: 0 } });
    expect(report.dataPlane).toMatchObject({ mode: 'tc', interfaces: ['veth-c1'], paths: { 'veth-c1': 'tc' }, listeners: 1, targets: 3 });
    expect(await git(['--git-dir', bare, 'show', 'lb-status:node-a/status.md'], { home: root })).toContain('# lb status: node-a');
  });

  it('applies a pushed weight change when a signed webhook arrives; a forged webhook is refused and triggers nothing', async () => {
    shas.drainB1 = await commit('drain b1', webProxyYaml([0, 1, 1]));
    const webhookTriggers = (text: string): number => (metric(text, 'lb_reconcile_triggers_total', { kind: 'webhook', outcome: 'run' }) ?? 0)
      + (metric(text, 'lb_reconcile_triggers_total', { kind: 'webhook', outcome: 'skipped' }) ?? 0);
    const m0 = await metrics();
    const forged = await postWebhooks(t().lbNs, HOOK, [{ body: pushBody(shas.drainB1), secret: 'not the secret' }]);
    expect(forged).toEqual([401]);
    expect((await lbStatus(instance)).status?.lastAppliedRevision).toBe(shas.initial);

    expect(await hook(shas.drainB1)).toBe(202);
    await applied(shas.drainB1, 'the webhook-triggered apply');
    // Every trigger sent so far has been decided once the loop is idle: the forged delivery reached
    // the reconciler never, the genuine one once, and it made the one run.
    await waitUntil(async () => (await lbStatus(instance)).daemon?.idle === true, { timeoutMs: 10_000, intervalMs: 50, what: 'the loop idle' });
    const m1 = await metrics();
    expect(webhookTriggers(m1) - webhookTriggers(m0)).toBe(1);
    expect(metricSum(m1, 'lb_reconcile_total') - metricSum(m0, 'lb_reconcile_total')).toBe(1);
    const line = await d().waitForLog((l) => l.result === 'applied' && l.revision === shas.drainB1, 'the apply log line');
    expect(line).toMatchObject({ triggers: ['webhook'], plan: { add: 0, change: 1, destroy: 0 } });
    expect((line!.changes as string[]).join('\n')).toMatch(/10\.202\.1\.2:8080 +weight: 1 -> 0/);
    const m = await metrics();
    expect(metric(m, 'lb_webhook_requests_total', { provider: 'github', result: 'accepted' })).toBe(1);
    expect(metric(m, 'lb_webhook_requests_total', { provider: 'github', result: 'unauthorized' })).toBe(1);
    const c = await counts();
    console.log(`daemon: after the webhook (b1 at weight 0): ${JSON.stringify(c)}`);
    expect(c.b1 ?? 0).toBe(0);
    expect(c.b2 ?? 0).toBeGreaterThan(0);
    expect(c.b3 ?? 0).toBeGreaterThan(0);
  });

  it('200 deliveries of one push make one reconcile; deliveries naming the applied revision make none', async () => {
    // A commit beside the config: a new revision whose plan changes nothing.
    shas.notes = await work.commit('notes for operators', { files: { 'NOTES.md': 'b1 is drained for maintenance\n' } });
    await work.push();
    const m0 = await metrics();
    const before = metricSum(m0, 'lb_reconcile_total');
    const runBefore = metric(m0, 'lb_reconcile_triggers_total', { kind: 'webhook', outcome: 'run' }) ?? 0;
    const decidedBefore = runBefore + (metric(m0, 'lb_reconcile_triggers_total', { kind: 'webhook', outcome: 'skipped' }) ?? 0);
    const statuses = await postWebhooks(t().lbNs, HOOK, Array.from({ length: 200 }, (_, i) => ({ body: pushBody(shas.notes!, 'refs/heads/main', String(i)), secret: SECRET })));
    expect(statuses.filter((s) => s === 202)).toHaveLength(200);
    // Settled: every delivery has been decided (run or skipped) and the loop is idle.
    const decided = (m: string): number => (metric(m, 'lb_reconcile_triggers_total', { kind: 'webhook', outcome: 'run' }) ?? 0)
      + (metric(m, 'lb_reconcile_triggers_total', { kind: 'webhook', outcome: 'skipped' }) ?? 0);
    await waitUntil(async () => decided(await metrics()) >= decidedBefore + 200 && (await lbStatus(instance)).daemon?.idle === true,
      { timeoutMs: 20_000, intervalMs: 100, what: 'all 200 deliveries decided' });
    const m = await metrics();
    const runs = metricSum(m, 'lb_reconcile_total') - before;
    console.log(`daemon: 200 webhooks -> ${runs} reconcile run(s)`);
    expect(runs).toBe(1);
    expect(await d().waitForLog((l) => l.revision === shas.notes && typeof l.result === 'string', 'the run for the pushed revision')).toMatchObject({ result: 'noop', triggers: ['webhook'] });
    expect(decided(m)).toBe(decidedBefore + 200);
    expect((metric(m, 'lb_reconcile_triggers_total', { kind: 'webhook', outcome: 'run' }) ?? 0) - runBefore).toBeGreaterThanOrEqual(1);
    expect(metric(m, 'lb_webhook_requests_total', { provider: 'github', result: 'accepted' })).toBe(201);
    // A redelivery later starts nothing.
    expect(await hook(shas.notes!)).toBe(202);
    await waitUntil(async () => decided(await metrics()) === decidedBefore + 201 && (await lbStatus(instance)).daemon?.idle === true,
      { timeoutMs: 20_000, intervalMs: 100, what: 'the redelivery decided' });
    expect(metricSum(await metrics(), 'lb_reconcile_total') - before).toBe(1);
  });

  it('a broken commit is Stalled, reported on the status branch with its file, line and column; the previous revision keeps serving; the next good commit applies', async () => {
    const broken = webProxyYaml(['heavy', 1, 1]);
    const lineNo = broken.split('\n').findIndex((l) => l.includes('heavy')) + 1;
    const column = broken.split('\n')[lineNo - 1]!.indexOf('heavy') + 1;
    shas.broken = await commit('typo in a weight', broken);
    expect(await hook(shas.broken)).toBe(202);
    const s = await waitForStatus(instance, (x) => x.status?.result === 'stalled' && x.status.lastAttemptedRevision === shas.broken, 'the broken revision stalled');
    expect(s.status!.lastAppliedRevision).toBe(shas.notes);
    expect(s.status!.errors[0]).toMatchObject({ code: 'LB_CONFIG_SCHEMA', file: 'lb/lb.yaml', line: lineNo, column, pointer: '/proxies/0/default-target/0/weight' });
    expect(s.status!.conditions.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'ConfigInvalid' });
    expect(s.status!.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'ConfigInvalid' });

    const onBranch = await waitForBranch((r) => r.result === 'stalled' && r.lastAttemptedRevision === shas.broken, 'the stalled report on lb-status');
    expect(onBranch.errors[0]).toMatchObject({ file: 'lb/lb.yaml', line: lineNo, column, code: 'LB_CONFIG_SCHEMA' });
    expect(onBranch.lastAppliedRevision).toBe(shas.notes);
    expect(await git(['--git-dir', bare, 'show', 'lb-status:node-a/status.md'], { home: root })).toContain(`lb/lb.yaml:${lineNo}:${column}`);
    expect(await httpInNs(t().lbNs, OPS, '/readyz')).toMatchObject({ status: 200 });

    // Nothing was applied: b1 still gets no new flows.
    expect((await counts()).b1 ?? 0).toBe(0);
    // Not retried: another trigger with the same revision is an explicit no-op.
    const m0 = await metrics();
    expect(await hook(shas.broken)).toBe(202);
    await waitUntil(async () => (metric(await metrics(), 'lb_reconcile_total', { result: 'unchanged' }) ?? 0) > (metric(m0, 'lb_reconcile_total', { result: 'unchanged' }) ?? 0),
      { timeoutMs: 10_000, intervalMs: 100, what: 'an unchanged run' });
    expect(metric(await metrics(), 'lb_reconcile_total', { result: 'stalled' })).toBe(metric(m0, 'lb_reconcile_total', { result: 'stalled' }));

    shas.drainB3 = await commit('fix the weight, drain b3', webProxyYaml([1, 1, 0]));
    expect(await hook(shas.drainB3)).toBe(202);
    const ok = await applied(shas.drainB3, 'the fixed revision applied');
    expect(ok.status!.conditions.find((c) => c.type === 'Stalled')).toBeUndefined();
    expect(ok.status!.errors).toEqual([]);
    const c = await counts();
    expect(c.b3 ?? 0).toBe(0);
    expect(c.b1 ?? 0).toBeGreaterThan(0);
  });

  it('remote down, then back: the last applied state keeps serving, retries back off, then the new revision applies', async () => {
    await server!.stop();
    shas.even = await commit('even again', webProxyYaml([1, 1, 1]));
    const mark = d().logs().length;
    expect(await hook(shas.even)).toBe(202);
    const failures = async () => d().logs().slice(mark).filter((l) => l.result === 'failed' && l.reason === 'RemoteUnreachable');
    await waitUntil(async () => ((await failures()).length >= 3 ? true : undefined), { timeoutMs: 15_000, intervalMs: 100, what: '3 failed fetches' });
    const delays = (await failures()).map((l) => l.retryInMs as number);
    console.log(`daemon: remote down: retry delays ${delays.join(', ')} ms`);
    for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThan(delays[i - 1]!);
    const s = (await lbStatus(instance)).status!;
    expect(s).toMatchObject({ result: 'failed', lastAppliedRevision: shas.drainB3 });
    expect(s.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'RemoteUnreachable' });
    expect(s.conditions.find((c) => c.type === 'Reconciling')).toMatchObject({ status: 'True', reason: 'ProgressingWithRetry' });
    expect((await counts()).b3 ?? 0).toBe(0); // still the last applied revision

    await server!.start(); // same port
    await applied(shas.even, 'the revision pushed while the remote was down');
    expect(Object.keys(await counts()).sort()).toEqual(['b1', 'b2', 'b3']);
  });

  it('follows a force push that rewrote the branch', async () => {
    await work.git(['reset', '-q', '--hard', shas.drainB3!]);
    shas.forced = await work.commit('rewritten history', { files: { 'lb/lb.yaml': webProxyYaml([2, 1, 1]) } });
    await work.git(['push', '-q', '--force', 'origin', 'main']);
    expect((await git(['--git-dir', bare, 'rev-parse', 'main'], { home: root })).trim()).toBe(shas.forced);
    expect(await hook(shas.forced)).toBe(202);
    const s = await applied(shas.forced, 'the force-pushed revision');
    expect(s.status!.result).toBe('applied');
  });

  it('drift: a map entry changed behind the daemon\'s back is detected (log, metric, status) and healed', async () => {
    const dp = DataPlane.open({ instance });
    let before: ReturnType<typeof readGeneration>;
    try {
      const { activeGen } = readCtl(dp);
      before = readGeneration(dp, activeGen);
      const tampered = structuredClone(before);
      const target = tampered.groups.flatMap((g) => g.group.targets).find((x) => x.addr === '10.202.1.2')!;
      expect(target.weight).toBe(2);
      target.weight = 50;
      writeGeneration(dp, activeGen, tampered); // the active generation, as no apply would
    } finally {
      dp.close();
    }
    const s = await waitForStatus(instance, (x) => x.status?.drift?.healed === true, 'the drift healed');
    expect(s.status!.drift!.entries).toBe(1);
    expect(s.status!.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'DriftCorrected' });
    expect(metric(await metrics(), 'lb_drift_detected_total')).toBe(1);
    const line = await d().waitForLog((l) => l.component === 'drift' && typeof l.msg === 'string' && l.msg.startsWith('drift detected'), 'the drift log line');
    expect((line!.differences as string[]).join('\n')).toMatch(/10\.202\.1\.2:8080 +weight: 50 -> 2/);
    const dp2 = DataPlane.open({ instance });
    try {
      expect(readGeneration(dp2, readCtl(dp2).activeGen)).toEqual(before);
    } finally {
      dp2.close();
    }
  });

  let stream: StreamClient | undefined;
  it('zero-drop restart: kill -9 during a TCP stream; the restarted daemon adopts and its first plan is a no-op; the stream never reconnects', async () => {
    stream = startStream(t(), t().clients[0]!.ns, VIP, 80, '/stream?ms=20000', 33_333);
    await waitUntil(() => stream!.lines().length >= 5, { timeoutMs: 5000, intervalMs: 50, what: 'the first stream lines' });
    await d().kill9();
    const atKill = stream.lines().length;
    await waitUntil(() => stream!.lines().length >= atKill + 5, { timeoutMs: 3000, intervalMs: 50, what: 'stream lines with no daemon' });

    daemon = new DaemonProcess(t().lbNs, instance, daemonArgs('200ms'));
    await d().started();
    const first = await d().waitForLog((l) => l.component === 'reconcile' && typeof l.result === 'string', 'the first reconcile');
    expect(first).toMatchObject({ result: 'noop', revision: shas.forced, plan: { add: 0, change: 0, destroy: 0 }, triggers: ['startup'] });
    const starting = d().logs().find((l) => typeof l.msg === 'string' && l.msg.startsWith('lb daemon starting'));
    expect(starting).toMatchObject({ adopted: true, lastAppliedRevision: shas.forced });
    const m = await metrics();
    expect(metric(m, 'lb_reconcile_total', { result: 'noop' })).toBe(1);
    expect(metric(m, 'lb_reconcile_total', { result: 'applied' })).toBe(0);
    const s = await lbStatus(instance);
    expect(s.daemon.running).toBe(true);
    expect(s.status).toMatchObject({ result: 'unchanged', lastAppliedRevision: shas.forced });
    expect(await httpInNs(t().lbNs, OPS, '/readyz')).toMatchObject({ status: 200 });

    const atRestart = stream.lines().length;
    await waitUntil(() => stream!.lines().length >= atRestart + 10, { timeoutMs: 5000, intervalMs: 50, what: 'stream lines after the restart' });
    const c = streamContinuity(stream.lines());
    console.log(`daemon: stream over kill -9 + restart: ${stream.lines().length} lines on ${c.names.join(',')}, contiguous=${c.contiguous}, max gap ${c.maxGapMs} ms`);
    expect(c).toMatchObject({ contiguous: true });
    expect(c.names).toHaveLength(1);
    expect(c.maxGapMs).toBeLessThan(500);
    expect(stream.connections()).toBe(1);
    expect(stream.errors()).toEqual([]);
    await stream.proc.stop(1000);
  });

  it('picks up a pushed change by polling, without a webhook', async () => {
    shas.polled = await commit('drain b2', webProxyYaml([1, 0, 1]));
    await applied(shas.polled, 'the polled revision');
    expect(await d().waitForLog((l) => l.result === 'applied' && l.revision === shas.polled, 'the apply log line')).toMatchObject({ triggers: ['poll'] });
    const c = await counts();
    console.log(`daemon: after polling (b2 at weight 0): ${JSON.stringify(c)}`);
    expect(c.b2 ?? 0).toBe(0);
  });

  it('SIGTERM stops the daemon gracefully and leaves the data plane running', async () => {
    const status = await d().stop(10_000);
    expect(status).toEqual({ code: 0, signal: null });
    await waitUntil(() => d().logs().some((l) => l.msg === 'lb daemon stopped; programs, maps and flows stay pinned'), { timeoutMs: 3000, what: 'the last log line' });
    expect(instanceExists(instance)).toBe(true);
    const c = await counts();
    expect(c.b2 ?? 0).toBe(0);
    // `lb status` without a daemon: the last report and the live data plane.
    const r = runCli(['--instance', instance, 'status', '--format', 'json'], { ns: t().lbNs });
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as { format_version: string; daemon: { running: boolean }; status: StatusReport; live: { exists: boolean; lastApply: { revision: string } } };
    expect(s).toMatchObject({ format_version: '1.0', daemon: { running: false }, status: { lastAppliedRevision: shas.polled }, live: { exists: true, lastApply: { revision: shas.polled } } });
  });
});
