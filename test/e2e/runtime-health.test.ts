// Runtime services end to end, part 1: health checks, drain, circuit breaker. The built CLI runs as
// `lb daemon --config FILE` in the LB namespace of a sandbox topology (1 client, 3 backends running
// backend-server); real HTTP clients in the client namespace show where new connections go, the
// pinned maps show the weights the daemon applied, `lb status` (the control socket) shows the
// runtime's view. One topology and one daemon for the whole file, in order:
//   1. a backend killed: unhealthy within three check intervals, weight 0, no failed connection
//      after that; restarted: 25/50/75/100 % of its weight, step by step;
//   2. `lb drain` of the backend of a live /stream: no new flows, the stream completes, status
//      draining -> drained; `lb undrain` brings it back;
//   3. a backend whose port is closed answers SYN with RST: the data plane counts the failures, the
//      circuit opens (weight 0), HALF-OPEN lets test traffic through (weight ~10 %), recovery
//      closes it; `lb breaker open|reset` by hand; a backend that never answers (replies
//      blackholed) opens its circuit from the attempts left unanswered;
//   4. the daemon stopped: `lb drain` says no daemon runs (exit 1); a drain survives a restart.
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { DataPlane } from '../../src/dataplane/index.js';
import { VIP, createTopology, waitUntil, type Topology } from '../../src/sandbox/index.js';
import { runCli } from '../lib/cli.js';
import { startStream, streamContinuity } from './lib/clients.js';
import { DaemonProcess, metric, metricsText, type LogLine } from './lib/daemon.js';
import { applyConfig, liveTargetId, liveWeights, requests, runtimeOf, tally, targetOf, tearDownRuntimeSandbox } from './lib/runtime.js';

if (process.getuid?.() !== 0) throw new Error('runtime-health.test.ts must run as root: it loads BPF programs and creates network namespaces');

const instance = `rh-${process.pid}-${randomBytes(3).toString('hex')}`;
const OPS = 9180;
const CHECK_MS = 1000; // the schema's smallest health-check interval
const B = ['10.202.1.2:8080', '10.202.2.2:8080', '10.202.3.2:8080'];

const base = (extra: { healthCheck?: boolean; breaker?: boolean }): string => `proxies:
  - name: web
    listen: {interfaces: [veth-c1], port: 80, address: ${VIP}}
    default-target:
${B.map((b) => `      - {ip: ${b.split(':')[0]}, port: 8080, weight: 100}`).join('\n')}
${extra.healthCheck ? `    health-check: {type: http, path: /health, interval-ms: ${CHECK_MS}, timeout-ms: 500, healthy-threshold: 1, unhealthy-threshold: 1}\n` : ''}settings:
  connection-timeout-sec: 60
  drain-check-interval-ms: 200
  load-balancing: {update-interval-ms: 200}
  circuit-breaker: {enabled: ${extra.breaker ? 'true, error-threshold-pct: 50, min-requests: 3, window-size-ms: 10000, open-duration-ms: 4000, half-open-requests: 2' : 'false'}}
`;

describe('runtime services in the daemon: health checks, drain, circuit breaker', () => {
  let root = '';
  let file = '';
  let topo: Topology | undefined;
  let daemon: DaemonProcess | undefined;
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const d = (): DaemonProcess => {
    if (!daemon) throw new Error('daemon not started');
    return daemon;
  };
  const startDaemon = async (): Promise<void> => {
    daemon = new DaemonProcess(t().lbNs, instance, ['--config', file, '--poll', '1h', '--drift-interval', '1h', '--retry-interval', '200ms', '--ops-listen', `127.0.0.1:${OPS}`]);
    await daemon.started();
  };
  const waitRuntime = <T>(pred: (rt: Awaited<ReturnType<typeof runtimeOf>>) => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> =>
    waitUntil(async () => pred(await runtimeOf(instance)), { timeoutMs, intervalMs: 50, what });
  const waitWeight = (backend: string, weight: number, what: string): Promise<Record<string, number>> =>
    waitUntil(() => { const w = liveWeights(instance); return w[backend] === weight ? w : undefined; }, { timeoutMs: 15_000, intervalMs: 50, what });

  beforeAll(async () => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'lb-runtime-health-'));
    file = join(root, 'lb.yaml');
    topo = await createTopology({ backends: 3, clients: 1 });
    await topo.startBackendServers();
    writeFileSync(file, base({ healthCheck: true }));
    await startDaemon();
    await waitRuntime((rt) => rt.targets.every((x) => x.backends[0]!.health === 'healthy'), 'every backend healthy');
    // The first test's traffic needs the weights in the maps, not only the status's view.
    await waitUntil(() => { const w = liveWeights(instance); return B.every((b) => w[b] === 100) ? w : undefined; },
      { timeoutMs: 15_000, intervalMs: 50, what: 'every backend at weight 100 in the live maps' });
  });

  afterAll(() => tearDownRuntimeSandbox({ daemon, topo, instance, root }));

  it('a killed backend turns unhealthy at its first failed check and gets no new flows; restarted, its weight ramps 25/50/75/100', async () => {
    const before = tally(await requests(t(), 30));
    expect(before.failures, before.errors.join('; ')).toBe(0);
    expect(Object.keys(before.counts).sort()).toEqual(['b1', 'b2', 'b3']);

    const killedAt = Date.now();
    const logsAtKill = d().logs().length;
    await t().backends[0]!.server!.stop();
    await waitRuntime((rt) => targetOf(rt, B[0]!).backends[0]!.health === 'unhealthy', 'b1 unhealthy');
    const detectedMs = Date.now() - killedAt;
    await waitWeight(B[0]!, 0, 'b1 at weight 0 in the live maps');
    console.log(`runtime: b1 killed -> unhealthy after ${detectedMs} ms, weight 0 live after ${Date.now() - killedAt} ms (check interval ${CHECK_MS} ms)`);
    // unhealthy-threshold 1: the first failed check is the transition (no time bound asserted:
    // the daemon's own health events say what happened, whatever the machine's load).
    expect(healthSteps(d().logs().slice(logsAtKill), B[0]!)).toEqual(['healthy -> unhealthy']);

    const after = tally(await requests(t(), 60));
    console.log(`runtime: after detection: ${JSON.stringify(after.counts)}, ${after.failures} failures`);
    expect(after.failures, after.errors.join('; ')).toBe(0);
    expect(after.counts.b1 ?? 0).toBe(0);
    const rt = await runtimeOf(instance);
    expect(targetOf(rt, B[0]!)).toMatchObject({ effectiveWeight: 0, configuredWeight: 100 });
    const m = await metricsText(t().lbNs, OPS);
    expect(metric(m, 'lb_backend_health', { proxy_name: 'web', target_ip: '10.202.1.2', target_port: '8080' })).toBe(0);
    expect(metric(m, 'lb_backend_health', { proxy_name: 'web', target_ip: '10.202.2.2', target_port: '8080' })).toBe(1);
    expect(metric(m, 'lb_algorithm')).toBe(0);
    expect(metric(m, 'lb_health_check_latency_seconds_count', { proxy_name: 'web', target_id: B[1]! })).toBeGreaterThan(0);

    // Back. What happened is read from the daemon's events, which a slow poll cannot miss: every
    // health transition of b1, and every weight of b1 an apply wrote (and read back) to the maps.
    const logsAtRestart = d().logs().length;
    await t().startBackendServers();
    await waitUntil(async () => liveWeights(instance)[B[0]!] === 100 && targetOf(await runtimeOf(instance), B[0]!).backends[0]!.health === 'healthy',
      { timeoutMs: 15_000, intervalMs: 50, what: 'b1 back at full weight' });
    // The daemon logs an apply after it wrote the maps, and its lines reach this process through a
    // pipe: the maps can show 100 before the line of that apply arrived (seen once: last logged 75).
    const events = await waitUntil(() => {
      const ev = d().logs().slice(logsAtRestart);
      return appliedWeights(ev, B[0]!).at(-1) === 100 && healthSteps(ev, B[0]!).includes('recovering -> healthy') ? ev : undefined;
    }, { timeoutMs: 15_000, intervalMs: 50, what: 'the daemon\'s log of b1 back at full weight' });
    const steps = healthSteps(events, B[0]!);
    const weights = appliedWeights(events, B[0]!);
    console.log(`runtime: b1 recovery: status ${steps.join(', ')}; applied weights ${weights.join(' -> ')}`);
    expect(steps).toEqual(['unhealthy -> recovering 1', 'recovering -> recovering 2', 'recovering -> recovering 3', 'recovering -> healthy']);
    // One apply per step as a rule; on a busy host a step may be overtaken by the next before its
    // apply runs, so the applied weights are the ramp's values in order, ending at full weight.
    expect(weights.length).toBeGreaterThanOrEqual(2);
    expect(weights.every((w, i) => [25, 50, 75, 100].includes(w) && (i === 0 || w > weights[i - 1]!))).toBe(true);
    expect(weights.at(-1)).toBe(100);
    const back = tally(await requests(t(), 45));
    expect(back.failures, back.errors.join('; ')).toBe(0);
    expect(back.counts.b1 ?? 0).toBeGreaterThan(0);
  });

  it('lb drain: the backend of a live stream gets no new flows, the stream runs on until its client ends it, status goes draining -> drained; lb undrain restores it', async () => {
    // The stream outlasts every step below (the server's longest, 120 s) and ends when the test says
    // so: a stream that ended by itself after a few seconds raced the CLI calls checking "draining".
    const stream = startStream(t(), t().clients[0]!.ns, VIP, 80, '/stream?ms=120000', 19_001);
    const first = await waitUntil(() => stream.lines()[0], { timeoutMs: 10_000, intervalMs: 20, what: 'the first stream line' });
    const index = Number(first.name.slice(1)) - 1;
    const target = B[index]!;

    const r = runCli(['--instance', instance, 'drain', 'web', target, '--timeout', '30s']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Draining ${target} of proxy web: no new flows; 1 flow active;`));
    expect(liveWeights(instance)[target]).toBe(0); // live when the command returns
    const draining = await runtimeOf(instance);
    expect(draining.drains).toMatchObject([{ proxy: 'web', targetId: target, status: 'draining', activeFlows: 1 }]);
    expect(targetOf(draining, target)).toMatchObject({ effectiveWeight: 0, draining: true });
    const text = runCli(['--instance', instance, 'status']).stdout;
    expect(text).toMatch(new RegExp(`web +default +${target.replace(/\./g, '\\.')} +0/100 +healthy +disabled +draining \\(1 active, \\d+s left\\)`));

    const during = tally(await requests(t(), 60));
    console.log(`runtime: while ${first.name} drains: ${JSON.stringify(during.counts)}`);
    expect(during.failures, during.errors.join('; ')).toBe(0);
    expect(during.counts[first.name] ?? 0).toBe(0);

    // Still draining with the stream alive; then its client ends it (the connection closes).
    expect((await runtimeOf(instance)).drains).toMatchObject([{ targetId: target, status: 'draining', activeFlows: 1 }]);
    const lines = stream.lines();
    await stream.proc.stop(1000);
    const c = streamContinuity(lines);
    expect(stream.errors()).toEqual([]);
    expect(stream.connections()).toBe(1);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(c).toMatchObject({ contiguous: true, names: [first.name] });
    const endedAt = Date.now();
    const drained = await waitRuntime((rt) => rt.drains.find((d) => d.status === 'drained'), 'the drain done');
    console.log(`runtime: stream of ${lines.length} lines ended by its client (max gap ${c.maxGapMs} ms); drained ${Date.now() - endedAt} ms after it ended`);
    expect(drained).toMatchObject({ targetId: target, activeFlows: 0 });
    const json = JSON.parse(runCli(['--instance', instance, 'status', '--format', 'json']).stdout) as { status: { runtime: { drains: Array<{ status: string }> } } };
    expect(json.status.runtime.drains.map((d) => d.status)).toEqual(['drained']);
    expect(liveWeights(instance)[target]).toBe(0); // done means safe to remove, not put back

    const u = runCli(['--instance', instance, 'undrain', 'web', target]);
    expect(u.code).toBe(0);
    expect(u.stdout).toContain(`Undrained ${target} of proxy web (it was drained)`);
    expect(liveWeights(instance)[target]).toBe(100);
    const back = tally(await requests(t(), 45));
    expect(back.counts[first.name] ?? 0).toBeGreaterThan(0);

    const unknown = runCli(['--instance', instance, 'drain', 'web', '10.9.9.9:80']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('proxy "web" has no target "10.9.9.9:80"; its targets: 10.202.1.2:8080, 10.202.2.2:8080, 10.202.3.2:8080');
  });

  it('a backend answering SYN with RST opens its circuit from the data plane\'s failure counts; HALF-OPEN lets test traffic through; recovery closes it', async () => {
    const outcome = await applyConfig(instance, file, base({ breaker: true }));
    expect(outcome.result).toMatch(/^(applied|noop|unchanged)$/); // the file watch may have been first
    await waitRuntime((rt) => rt.circuits.length > 0, 'the breaker on');
    const b2 = B[1]!;
    const id = liveTargetId(instance, b2);
    const failedBefore = withDp((dp) => dp.readTargetStats(id).failedConns);

    await t().backends[1]!.server!.stop(); // the kernel answers its SYNs with RST now
    const broken = tally(await requests(t(), 40));
    const open = await waitRuntime((rt) => rt.circuits.find((c) => c.backend === b2 && c.status === 'open'), 'b2 circuit open');
    const failed = withDp((dp) => dp.readTargetStats(id).failedConns) - failedBefore;
    console.log(`runtime: b2 refusing: ${broken.failures} of 40 requests failed; failed_conns +${failed}; circuit open (${open.reason})`);
    expect(broken.failures).toBeGreaterThan(0);
    expect(Number(failed)).toBeGreaterThanOrEqual(broken.failures);
    expect(open.reason).toMatch(/failed|error/);
    // The open period (open-duration-ms, on the daemon's clock) must hold every check of the open
    // state: /metrics is read until it shows the state (an event), and the runtime says afterwards
    // that the circuit was still open when the checks ended.
    const labels = { proxy_name: 'web', target_ip: '10.202.2.2', target_port: '8080' };
    const m = await waitUntil(async () => { const text = await metricsText(t().lbNs, OPS); return metric(text, 'lb_circuit_breaker_state', labels) === 2 ? text : undefined; },
      { timeoutMs: 5000, intervalMs: 50, what: 'lb_circuit_breaker_state 2 (open) for b2' });
    // Opening clears the window: the rate starts again from the probes.
    expect(metric(m, 'lb_circuit_breaker_error_rate', labels)).toBe(0);
    await waitWeight(b2, 0, 'b2 at weight 0 while open');
    const whileOpen = tally(await requests(t(), 40));
    expect(whileOpen.failures, whileOpen.errors.join('; ')).toBe(0);
    expect(whileOpen.counts.b2 ?? 0).toBe(0);
    expect((await runtimeOf(instance)).circuits.find((c) => c.backend === b2)?.status, 'the open period outlasted the checks').toBe('open');

    await t().startBackendServers();
    await waitRuntime((rt) => rt.circuits.find((c) => c.backend === b2 && c.status === 'half-open'), 'b2 half-open', 10_000);
    await waitWeight(b2, 10, 'b2 at 10 % of its weight while half-open');
    let probes = 0;
    for (let i = 0; i < 15; i++) {
      const rt = await runtimeOf(instance);
      if (rt.circuits.find((c) => c.backend === b2)?.status === 'closed') break;
      const r = tally(await requests(t(), 40));
      expect(r.failures, r.errors.join('; ')).toBe(0);
      probes += r.counts.b2 ?? 0;
    }
    const closed = await waitRuntime((rt) => rt.circuits.find((c) => c.backend === b2 && c.status === 'closed'), 'b2 closed again', 5000);
    console.log(`runtime: b2 half-open took ${probes} test connection(s) and closed (${closed.reason})`);
    expect(probes).toBeGreaterThanOrEqual(1);
    await waitWeight(b2, 100, 'b2 back at weight 100');

    // By hand: force open, then reset.
    const o = runCli(['--instance', instance, 'breaker', 'open', B[2]!]);
    expect(o.code).toBe(0);
    expect(o.stdout).toContain(`Circuit ${B[2]}: open (forced open: no new flows until \`lb breaker reset ${B[2]}\`).`);
    expect(liveWeights(instance)[B[2]!]).toBe(0);
    expect(runCli(['--instance', instance, 'status']).stdout).toMatch(/10\.202\.3\.2:8080 +0\/100 +unchecked +open \(forced\)/);
    const reset = runCli(['--instance', instance, 'breaker', 'reset', B[2]!]);
    expect(reset.stdout).toContain(`Circuit ${B[2]}: closed (automatic again).`);
    expect(liveWeights(instance)[B[2]!]).toBe(100);
  });

  it('a backend that never answers (its replies blackholed) opens its circuit once its attempts stay unanswered past the bound', async () => {
    const b3 = B[2]!;
    await t().exec(t().backends[2]!.ns, ['ip', 'route', 'add', 'blackhole', `${t().clients[0]!.address}/32`]);
    try {
      const sentAt = Date.now();
      const r = tally(await requests(t(), 30));
      const open = await waitRuntime((rt) => rt.circuits.find((c) => c.backend === b3 && c.status === 'open'), 'b3 circuit open', 15_000);
      console.log(`runtime: b3 silent: ${r.failures} of 30 requests timed out; circuit open ${Date.now() - sentAt} ms after the first SYN (${open.reason})`);
      expect(r.failures).toBeGreaterThan(0);
      expect(r.errors.every((e) => /timeout/.test(e))).toBe(true);
      await waitWeight(b3, 0, 'b3 at weight 0 while open');
    } finally {
      await t().exec(t().backends[2]!.ns, ['ip', 'route', 'del', 'blackhole', `${t().clients[0]!.address}/32`]);
    }
    expect(runCli(['--instance', instance, 'breaker', 'reset', b3]).code).toBe(0);
    expect(liveWeights(instance)[b3]).toBe(100);
  });

  it('without a daemon lb drain fails clearly; a drain survives a daemon restart', async () => {
    expect(runCli(['--instance', instance, 'drain', 'web', B[2]!, '--timeout', '1m']).code).toBe(0);
    await daemon!.stop();
    const r = runCli(['--instance', instance, 'drain', 'web', B[2]!]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^lb: no lb daemon runs for instance rh-\S+ \(nothing answers on \/run\/lb\/rh-\S+\/control\.sock\): a drain is kept and applied by the daemon; start it with `lb daemon`\n$/);
    expect(runCli(['--instance', instance, 'breaker', 'reset', B[2]!]).code).toBe(1);
    expect(liveWeights(instance)[B[2]!]).toBe(0); // the data plane keeps what was applied

    await startDaemon();
    const rt = await waitRuntime((x) => (x.drains.length > 0 ? x : undefined), 'the restored drain');
    expect(rt.drains).toMatchObject([{ proxy: 'web', targetId: B[2], status: expect.stringMatching(/draining|drained/) }]);
    await new Promise((res) => setTimeout(res, 500));
    expect(liveWeights(instance)[B[2]!]).toBe(0);
    expect(runCli(['--instance', instance, 'undrain', 'web', B[2]!]).code).toBe(0);
    expect(liveWeights(instance)[B[2]!]).toBe(100);
  });
});

/** The health transitions the daemon logged for one backend, as "from -> to[ step]". */
function healthSteps(lines: readonly LogLine[], backend: string): string[] {
  return lines.filter((l) => l.component === 'runtime' && l.backend === backend && typeof l.to === 'string')
    .map((l) => `${String(l.from)} -> ${String(l.to)}${l.to === 'recovering' ? ` ${String(l.recoveryStep)}` : ''}`);
}

/** The weights of one backend that applies wrote, in order, from the apply log lines' changes. */
function appliedWeights(lines: readonly LogLine[], backend: string): number[] {
  const re = new RegExp(`${backend.replace(/\./g, '\\.')}\\s+weight: \\d+ -> (\\d+)`);
  return lines.filter((l) => l.result === 'applied' && Array.isArray(l.changes))
    .flatMap((l) => (l.changes as string[]).map((c) => re.exec(c)).filter((m) => m !== null).map((m) => Number(m![1])));
}

function withDp<T>(fn: (dp: DataPlane) => T): T {
  const dp = DataPlane.open({ instance });
  try {
    return fn(dp);
  } finally {
    dp.close();
  }
}
