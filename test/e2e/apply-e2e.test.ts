// lb plan / apply end to end: the built CLI, run in the LB namespace of a sandbox topology with
// nsenter, applies a YAML config; real HTTP clients (curl in the client namespace) reach the three
// backends through the VIP 10.200.0.10. Then a weight change shows as `~` in `lb plan`, is applied,
// and is visible in the traffic: the backend at weight 0 gets no new connections.
// Traffic goes only to hosts in the namespaces created here. Needs root; fails (never skips).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { endCliInstance } from './lib/teardown.js';
import { VIP, createTopology, httpCountBackends, type Topology } from '../../src/sandbox/index.js';
import { runCli, type CliResult } from '../lib/cli.js';
import { webProxyYaml } from './lib/config.js';

if (process.getuid?.() !== 0) throw new Error('apply-e2e.test.ts must run as root: it loads BPF programs and creates network namespaces');

const instance = `e2e-${process.pid}-${randomBytes(3).toString('hex')}`;
const REQUESTS = 30;

describe('lb apply end to end: 1 client, LB, 3 backends', () => {
  let topo: Topology | undefined;
  let dir = '';
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const lb = (args: string[]): CliResult => runCli([...args, '--instance', instance], { ns: t().lbNs, timeoutMs: 60_000 });
  const count = async (): Promise<Record<string, number>> => {
    const r = await httpCountBackends(t().clients[0]!.ns, `http://${VIP}/`, REQUESTS, { totalTimeoutMs: 30_000, timeoutMs: 3000 });
    expect(r.failures, r.errors.join('; ')).toBe(0);
    expect(r.attempted).toBe(REQUESTS);
    return r.counts;
  };

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-apply-e2e-'));
    writeFileSync(join(dir, 'even.yaml'), webProxyYaml([1, 1, 1]));
    writeFileSync(join(dir, 'drain-b1.yaml'), webProxyYaml([0, 1, 1]));
    topo = await createTopology({ backends: 3, clients: 1 });
    await topo.startBackendServers();
  });

  afterAll(async () => {
    await endCliInstance({ instance, topo, dir, lb });
  });

  it('applies a YAML config: every backend answers through the VIP', async () => {
    const r = lb(['apply', '--config', join(dir, 'even.yaml'), '--auto-approve']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\+ interface veth-c1/);
    expect(r.stdout).toMatch(/Apply complete! Resources: 6 added, 0 changed, 0 destroyed\./);
    const counts = await count();
    console.log(`even weights: ${JSON.stringify(counts)}`);
    expect(Object.keys(counts).sort()).toEqual(['b1', 'b2', 'b3']);
    const targets = JSON.parse(lb(['show', 'targets', '--format', 'json']).stdout) as { targets: Array<{ target: string; new_flows: number }> };
    expect(targets.targets.reduce((n, x) => n + x.new_flows, 0)).toBeGreaterThanOrEqual(REQUESTS);
    // The closed connections stay in conntrack until they age out: show flows lists them.
    const flows = JSON.parse(lb(['show', 'flows', '--format', 'json', '--limit', '5']).stdout) as
      { total: number; shown: number; flows: Array<{ client: string; vip: string; backend: string; proto: string; state: string; idle_sec: number }> };
    expect(flows.total).toBeGreaterThanOrEqual(REQUESTS);
    expect(flows.shown).toBe(5);
    expect(flows.flows[0]).toMatchObject({ vip: `${VIP}:80`, proto: 'tcp' });
    expect(flows.flows[0]!.client).toMatch(/^10\.201\.1\.2:\d+$/);
    expect(flows.flows[0]!.backend).toMatch(/^10\.202\.[123]\.2:8080$/);
    expect(flows.flows[0]!.state).toMatch(/^fin-/);
    const text = lb(['show', 'flows', '--limit', '3']).stdout;
    expect(text).toMatch(/^CLIENT +VIP +BACKEND +PROTO +STATE +IDLE S\n/);
    expect(text).toMatch(/\.\.\. and \d+ more/);
  });

  it('a weight change shows as ~ in lb plan and, applied, is visible in the traffic', async () => {
    const plan = lb(['plan', '--config', join(dir, 'drain-b1.yaml'), '--detailed-exitcode']);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(/~ +default-target 10\.202\.1\.2:8080 +weight: 1 -> 0/);
    expect(plan.stdout).toContain('Plan: 0 to add, 1 to change, 0 to destroy.');

    const apply = lb(['apply', '--config', join(dir, 'drain-b1.yaml'), '--auto-approve']);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toContain('Apply complete! Resources: 0 added, 1 changed, 0 destroyed.');
    expect(lb(['plan', '--config', join(dir, 'drain-b1.yaml'), '--detailed-exitcode']).code).toBe(0);

    const counts = await count();
    console.log(`b1 at weight 0: ${JSON.stringify(counts)}`);
    expect(counts.b1 ?? 0).toBe(0);
    expect(counts.b2 ?? 0).toBeGreaterThan(0);
    expect(counts.b3 ?? 0).toBeGreaterThan(0);
  });
});
