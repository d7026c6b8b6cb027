// Rate limits end to end: `lb plan` / `lb apply` (the built CLI, in the LB namespace) put
// settings.rate-limits into the data plane; real HTTP clients in two client namespaces open
// connections through the VIP. Per source: client 1 opens connections far above its rate and gets
// about burst + rate x seconds answered, while client 2 and an HTTP stream client 1 opened before
// are unaffected. Per backend: new connections spill to the backends with tokens, then drop.
// `lb rollback` restores the limits of the configuration before, and removing them is planned too.
//
// Bounds come from counts: a refused SYN is dropped once and never retransmitted within a request's
// 500 ms timeout (Linux retransmits a SYN after 1 s), so every failed request is exactly one
// limited SYN; the admitted count is bounded by burst + rate x (T + 1 ms) (+1 per CPU: the bound
// bpf/lib/ratelimit.h states), T the batch's own measured duration. Traffic stays in the namespaces created here.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { endCliInstance } from './lib/teardown.js';
import { VIP, createTopology, waitUntil, type Topology } from '../../src/sandbox/index.js';
import { runCli, type CliResult } from '../lib/cli.js';
import { httpBatch, startStream, streamContinuity, type StreamClient } from './lib/clients.js';
import { range, webProxyYaml } from './lib/config.js';

if (process.getuid?.() !== 0) throw new Error('ratelimit-e2e.test.ts must run as root: it loads BPF programs and creates network namespaces');

const instance = `e2e-rl-${process.pid}-${randomBytes(3).toString('hex')}`;
const CPUS = availableParallelism();

function yaml(weights: readonly number[], rateLimits: string): string {
  return webProxyYaml(weights, { interfaces: ['veth-c1', 'veth-c2'], settings: rateLimits ? [`rate-limits: ${rateLimits}`] : [] });
}

interface RateLimitsJson { sourceLimited: number; backendSpilled: number; backendLimited: number; topSources: Array<{ addr: string; limited: number }> }

describe('rate limits end to end: 2 clients, LB, 3 backends', () => {
  let topo: Topology | undefined;
  let dir = '';
  let stream: StreamClient | undefined;
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const lb = (args: string[]): CliResult => runCli([...args, '--instance', instance], { ns: t().lbNs, timeoutMs: 60_000 });
  const rateLimits = (): RateLimitsJson => (JSON.parse(lb(['show', 'maps', '--format', 'json']).stdout) as { rate_limits: RateLimitsJson }).rate_limits;
  /** One connection per source port from a client; answered count, failures and the batch's duration. */
  const batch = async (client: number, ports: number[], concurrency: number): Promise<{ answered: string[]; failed: number; seconds: number }> => {
    const t0 = process.hrtime.bigint();
    const answers = await httpBatch(t().clients[client - 1]!.ns, VIP, 80, '/', ports, { concurrency, timeoutMs: 500, totalTimeoutMs: 60_000 });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    expect(answers).toHaveLength(ports.length);
    return { answered: answers.flatMap((a) => (a.name ? [a.name] : [])), failed: answers.filter((a) => a.error).length, seconds };
  };

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-rl-e2e-'));
    writeFileSync(join(dir, 'none.yaml'), yaml([1, 1, 1], ''));
    writeFileSync(join(dir, 'per-source.yaml'), yaml([1, 1, 1], '{per-source: {requests-per-sec: 2, burst: 10}}'));
    writeFileSync(join(dir, 'per-backend.yaml'), yaml([8, 1, 1], '{per-backend: {requests-per-sec: 1, burst: 4}}'));
    // Veths with kernel defaults (not the sandbox's tuned ones): what users' hosts have.
    topo = await createTopology({ variant: 'default-veth', backends: 3, clients: 2 });
    await topo.startBackendServers();
  });

  afterAll(async () => {
    await endCliInstance({
      instance, topo, dir, lb,
      stop: async () => {
        stream?.proc.child.kill('SIGKILL');
      },
    });
  });

  it('no limits at first; the per-source limit shows in lb plan and is applied without a warning', async () => {
    expect(lb(['apply', '--config', join(dir, 'none.yaml'), '--auto-approve']).code).toBe(0);
    // The stream from client 1 is established before any limit exists and must outlive the flood of its own source.
    stream = startStream(t(), t().clients[0]!.ns, VIP, 80, '/stream?ms=60000', 30999);
    await waitUntil(() => stream!.lines().length >= 3, { timeoutMs: 10_000, what: 'the stream to flow' });

    const plan = lb(['plan', '--config', join(dir, 'per-source.yaml'), '--detailed-exitcode']);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(/~ settings {2}rate-limits\.per-source: none -> 2\/s burst 10/);
    expect(plan.stdout + plan.stderr).not.toContain('rate-limits-not-enforced');
    const apply = lb(['apply', '--config', join(dir, 'per-source.yaml'), '--auto-approve']);
    expect(apply.code, apply.stderr).toBe(0);
  });

  it('per source: client 1 far above its rate gets about burst + rate x T; client 2 and the stream are unaffected', async () => {
    const before = rateLimits();
    const c1 = await batch(1, range(31000, 80), 10);
    const after = rateLimits();
    console.log(`client 1: ${c1.answered.length} of 80 answered in ${c1.seconds.toFixed(2)} s (burst 10, 2/s)`);
    // Every failed request is one dropped SYN, counted once.
    expect(after.sourceLimited - before.sourceLimited).toBe(c1.failed);
    expect(c1.answered.length + c1.failed).toBe(80);
    expect(c1.answered.length).toBeGreaterThanOrEqual(10);
    expect(c1.answered.length).toBeLessThanOrEqual(10 + Math.ceil(2 * c1.seconds) + CPUS);
    expect(after.topSources[0]).toEqual({ addr: t().clients[0]!.address, limited: after.sourceLimited });

    const c2 = await batch(2, range(32000, 8), 4);
    expect(c2.failed).toBe(0);
    expect(rateLimits().sourceLimited).toBe(after.sourceLimited);

    // The stream kept its one connection, its backend and every line.
    const lines = stream!.lines();
    const n = lines.length;
    await waitUntil(() => stream!.lines().length >= n + 5, { timeoutMs: 10_000, what: 'the stream to keep flowing' });
    expect(stream!.connections()).toBe(1);
    expect(stream!.errors()).toEqual([]);
    const c = streamContinuity(stream!.lines());
    expect(c.contiguous).toBe(true);
    expect(c.names).toHaveLength(1);

    const status = runCli(['status', '--instance', instance], { ns: t().lbNs, timeoutMs: 30_000 });
    expect(status.stdout).toMatch(/Rate limits: per-source 2\/s burst 10, per-backend none/);
    expect(status.stdout).toContain(`top limited sources: ${t().clients[0]!.address} (${after.sourceLimited})`);
  });

  it('per backend: new connections spill to the backends with tokens, then drop', async () => {
    const plan = lb(['plan', '--config', join(dir, 'per-backend.yaml')]);
    expect(plan.stdout).toMatch(/rate-limits\.per-backend: none -> 1\/s burst 4/);
    expect(lb(['apply', '--config', join(dir, 'per-backend.yaml'), '--auto-approve']).code).toBe(0);
    const before = rateLimits();
    const r = await batch(2, range(33000, 40), 4);
    const after = rateLimits();
    const counts: Record<string, number> = {};
    for (const name of r.answered) counts[name] = (counts[name] ?? 0) + 1;
    console.log(`per backend: ${JSON.stringify(counts)} answered, ${r.failed} dropped in ${r.seconds.toFixed(2)} s (burst 4, 1/s each)`);
    // b1 has 80% of the weight: most flows choose it, and once its 4 tokens are gone they spill.
    expect(after.backendSpilled - before.backendSpilled).toBeGreaterThan(0);
    expect(after.backendLimited - before.backendLimited).toBe(r.failed);
    expect(r.failed).toBeGreaterThan(0);
    const bound = 4 + Math.ceil(r.seconds) + CPUS;
    for (const b of ['b1', 'b2', 'b3']) {
      expect(counts[b] ?? 0).toBeGreaterThanOrEqual(4);
      expect(counts[b] ?? 0).toBeLessThanOrEqual(bound);
    }
    expect(after.sourceLimited).toBe(before.sourceLimited);
  });

  it('lb rollback brings the per-source limit back with the rest of the configuration', () => {
    const r = lb(['rollback', '--auto-approve']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rate-limits\.per-backend: 1\/s burst 4 -> none/);
    const show = JSON.parse(lb(['show', 'maps', '--format', 'json']).stdout) as { rate_limits: { perSource: unknown; perBackend: unknown } };
    expect(show.rate_limits.perSource).toEqual({ rate: 2, burst: 10 });
    expect(show.rate_limits.perBackend).toBeNull();
  });

  it('removing the limits is a planned change too, and then nothing is limited', async () => {
    const plan = lb(['plan', '--config', join(dir, 'none.yaml')]);
    expect(plan.stdout).toMatch(/rate-limits\.per-source: 2\/s burst 10 -> none/);
    expect(lb(['apply', '--config', join(dir, 'none.yaml'), '--auto-approve']).code).toBe(0);
    const r = await batch(1, range(34000, 30), 6);
    expect(r.failed).toBe(0);
  });
});
