// The plan/apply/show/down CLI as an operator uses it: the built `lb` in a network namespace of
// this test. Exit codes (plan --detailed-exitcode 0/2/1, errors 1 without stack traces), config
// diagnostics, the JSON and Markdown formats, saved plans applied exactly or refused as stale
// (naming what changed), show in text and JSON, down idempotent. Needs root; fails (never skips).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runApply } from '../../src/cli/commands/apply.js';
import type { CliIo } from '../../src/cli/output.js';
import { MAP_NAMES, instanceDir } from '../../src/dataplane/index.js';
import { PROGRAM_PINS } from '../../src/dataplane/loader.js';
import { isLbError } from '../../src/core/errors.js';
import { makeRunPrefix } from '../../src/sandbox/index.js';
import { runDir } from '../../src/state/run-dir.js';
import { ingressProgId, runCli, useCliNamespace, type CliResult } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('apply-cli.test.ts must run as root: it loads BPF programs and creates a network namespace');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const other = `${instance}-o`;
const ns = `${makeRunPrefix()}-lb`;
const dir = mkdtempSync(join(tmpdir(), 'lb-cli-'));

const config = (weight2: number, port = 8080): string => `
proxies:
  - name: web
    listen: {interfaces: [va0], port: 80, address: 10.200.0.10}
    default-target:
      - {ip: 10.0.0.1, port: ${port}, weight: 50}
      - {ip: 10.0.0.2, port: ${port}, weight: ${weight2}}
    source-routes:
      - {source: 192.168.1.0/24, target: {ip: 10.0.0.3, port: 8080}}
settings:
  connection-timeout-sec: 300
`;
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const A = file('a.yaml', config(50));
const B = file('b.yaml', config(0));
const C = file('c.yaml', config(50, 9090));
const BAD = file('bad.yaml', config(50).replace('port: 80,', 'port: eighty,'));
const NOIF = file('noif.yaml', config(50).replace('[va0]', '[nosuchif0]'));
const SNI = file('sni.yaml', config(50).replace('settings:', `  - name: tls
    listen: {interfaces: [va0], port: 443, address: 10.200.0.10}
    default-target: {ip: 10.0.0.1, port: 8443}
    sni-routes:
      - {sni-hostname: api.example.com, target: {ip: 10.0.0.2, port: 8443}}
settings:`));

const lb = (args: string[], opts: { env?: Record<string, string>; inst?: string } = {}): CliResult =>
  runCli([...args, '--instance', opts.inst ?? instance], { ns, ...(opts.env ? { env: opts.env } : {}) });
const noStack = (r: CliResult): void => expect(r.stderr).not.toMatch(/\n\s+at /);

describe('lb plan / apply / show / down', () => {
  useCliNamespace({ ns, instances: [instance, other], dir });

  it('help texts carry examples', () => {
    for (const cmd of ['plan', 'apply', 'show', 'down']) {
      const r = runCli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain(`lb ${cmd === 'down' ? '--instance edge down' : cmd}`);
    }
    expect(runCli(['--help']).stdout).toContain('--instance <name>');
  });

  it('validate and plan report config errors as file:line:column: pointer: message, exit 1, no stack trace', () => {
    for (const args of [['validate', '-c', BAD], ['plan', '-c', BAD, '--detailed-exitcode']]) {
      const r = args[0] === 'validate' ? runCli(args) : lb(args);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`${BAD.replace(/[.]/g, '\\.')}:4:\\d+: /proxies/0/listen/port: `));
      expect(r.stderr).toMatch(/config invalid: 1 error/);
      noStack(r);
    }
    expect(existsSync(instanceDir(instance)), 'a failed plan loads nothing').toBe(false);
  });

  it('plan names an interface that does not exist, exit 1', () => {
    const r = lb(['plan', '-c', NOIF, '--detailed-exitcode']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^lb: no such network interface: nosuchif0; used by va0|^lb: no such network interface: nosuchif0/);
    noStack(r);
  });

  it('plan --detailed-exitcode: 2 with changes, 0 without; plain plan exits 0 either way', () => {
    const changes = lb(['plan', '-c', A, '--detailed-exitcode']);
    expect(changes.code, changes.stderr).toBe(2);
    expect(changes.stdout).toMatch(/\+ listener va0 10\.200\.0\.10:80\/tcp/);
    expect(changes.stdout).toMatch(/Plan: \d+ to add, 0 to change, 0 to destroy\./);
    expect(lb(['plan', '-c', A]).code).toBe(0);
    expect(existsSync(instanceDir(instance)), 'plan loads nothing').toBe(false);

    const apply = lb(['apply', '-c', A, '--auto-approve']);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/Apply complete! Resources: \d+ added, 0 changed, 0 destroyed\./);
    expect(ingressProgId(ns, 'va0')).toBeDefined();

    const none = lb(['plan', '-c', A, '--detailed-exitcode']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toContain('No changes.');
  });

  it('plan and apply by hand warn, at the proxy, that only lb daemon serves a proxy with SNI routes', () => {
    for (const format of ['text', 'json'] as const) {
      const r = lb(['plan', '-c', SNI, '--format', format]);
      expect(r.code, r.stderr).toBe(0);
      if (format === 'text') {
        expect(r.stdout).toMatch(/sni\.yaml:\d+:\d+: warning: \/proxies\/1: proxy "tls" has SNI routes: only lb daemon serves it/);
        expect(r.stdout, 'no fast-path listener for it').not.toMatch(/listener va0 10\.200\.0\.10:443/);
      } else {
        const doc = JSON.parse(r.stdout) as { diagnostics: Array<{ code: string; pointer: string }> };
        expect(doc.diagnostics).toContainEqual(expect.objectContaining({ code: 'served-by-daemon-only', pointer: '/proxies/1' }));
      }
    }
    const plain = lb(['plan', '-c', A]);
    expect(plain.stdout + plain.stderr).not.toContain('served-by-daemon-only');
    expect(plain.stdout + plain.stderr).not.toContain('only lb daemon');
  });

  it('a weight change is an in-place update (~ old -> new); --verbose adds the raw entries', () => {
    const r = lb(['plan', '-c', B, '--detailed-exitcode', '--verbose']);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/~ +default-target 10\.0\.0\.2:8080 +weight: 50 -> 0/);
    expect(r.stdout).toContain('Plan: 0 to add, 1 to change, 0 to destroy.');
    expect(r.stdout).toMatch(/lb_groups:\n +- [0-9a-f]+ => .*\n +\+ [0-9a-f]+ => /);
  });

  it('--format json is a versioned document; markdown is a PR comment', () => {
    const r = lb(['plan', '-c', B, '--format', 'json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      format_version: string; has_changes: boolean; summary: Record<string, number>;
      changes: Array<{ kind: string; type: string; address: Record<string, string>; before: Record<string, unknown>; after: Record<string, unknown>; changed: string[] }>;
    };
    expect(doc.format_version).toMatch(/^1\./);
    expect(doc.has_changes).toBe(true);
    expect(doc.summary).toEqual({ add: 0, change: 1, destroy: 0 });
    expect(doc.changes).toHaveLength(1);
    expect(doc.changes[0]).toMatchObject({ kind: 'update', type: 'target', address: { proxy: 'web', target: '10.0.0.2:8080' }, changed: ['weight'] });
    expect(doc.changes[0]!.before.weight).toBe(50);
    expect(doc.changes[0]!.after.weight).toBe(0);
    const md = lb(['plan', '-c', B, '--format', 'markdown']);
    expect(md.stdout).toMatch(/^### lb plan/);
    expect(md.stdout).toContain('| Action | Resource | Values |');
  });

  it('apply without a terminal and without --auto-approve refuses, changing nothing', () => {
    const r = lb(['apply', '-c', B]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no terminal to ask for approval: pass --auto-approve/);
    expect(lb(['plan', '-c', A, '--detailed-exitcode']).code).toBe(0);
  });

  it('a saved plan is refused as stale when the live state moved, naming the change; a fresh one applies exactly', () => {
    const planFile = join(dir, 'b.plan');
    const saved = lb(['plan', '-c', B, '--out', planFile]);
    expect(saved.code).toBe(0);
    expect(saved.stdout).toContain(`Saved the plan to: ${planFile}`);
    const pf = JSON.parse(readFileSync(planFile, 'utf8')) as Record<string, { digest?: string; generation?: unknown; state?: unknown }>;
    expect(pf.format_version).toBe('1.1');
    expect(pf.live!.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(pf.config!.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(pf.desired!.generation).toBeDefined();

    expect(lb(['apply', '-c', C, '--auto-approve']).code).toBe(0); // someone else changes the live state
    const stale = lb(['apply', planFile]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/the saved plan .* is stale/);
    expect(stale.stderr).toMatch(/\+ +default-target 10\.0\.0\.1:9090/);
    expect(stale.stderr).toMatch(/- +default-target 10\.0\.0\.1:8080/);
    expect(stale.stderr).toContain('Nothing was applied.');
    noStack(stale);
    expect(lb(['plan', '-c', C, '--detailed-exitcode']).code, 'the refused plan changed nothing').toBe(0);

    expect(lb(['plan', '-c', B, '--out', planFile, '--revision', 'rev-42']).code).toBe(0);
    const ok = lb(['apply', planFile]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/Apply complete! Resources: 2 added, 0 changed, 2 destroyed\./);
    expect(lb(['plan', '-c', B, '--detailed-exitcode']).code).toBe(0);
    const inventory = JSON.parse(readFileSync(join(runDir(instance), 'inventory.json'), 'utf8')) as { revision: string; configDigest: string };
    expect(inventory.revision).toBe('rev-42');
    expect(inventory.configDigest).toBe(pf.config!.digest); // same config file, same digest

    const again = lb(['apply', planFile]);
    expect(again.code, 'a plan once applied is stale').toBe(1);
    const elsewhere = lb(['apply', planFile], { inst: other });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toMatch(/was planned for instance .*, not /);
  });

  it('show maps, targets and flows, in text and JSON', () => {
    const maps = lb(['show']);
    expect(maps.code, maps.stderr).toBe(0);
    expect(maps.stdout).toMatch(/generation \d active \(serial \d+\)/);
    expect(maps.stdout).toMatch(/Last apply: .*revision rev-42/);
    expect(maps.stdout).toMatch(/va0 +tc data path \(TC ingress \+ TC egress\)\n +why: va0 is a virtual interface \(veth\)/);
    expect(maps.stdout).toMatch(/Listener va0 10\.200\.0\.10:80\/tcp +proxy web/);
    expect(maps.stdout).toMatch(/10\.0\.0\.2:8080 +weight 0 /);
    expect(maps.stdout).toContain('xdp_rx');
    const json = JSON.parse(lb(['show', 'maps', '--format', 'json']).stdout) as { exists: boolean; state: { listeners: Array<{ proxy: string }> }; stats: Record<string, number> };
    expect(json.exists).toBe(true);
    expect(json.state.listeners[0]!.proxy).toBe('web');
    expect(typeof json.stats.xdp_rx).toBe('number');
    const targets = JSON.parse(lb(['show', 'targets', '--format', 'json']).stdout) as { targets: Array<{ target: string; active_flows: number; used_by: unknown[] }> };
    expect(targets.targets.map((t) => t.target).sort()).toEqual(['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
    expect(lb(['show', 'targets']).stdout).toMatch(/^TARGET +ID +ACTIVE FLOWS/);
    expect(lb(['show', 'flows']).stdout).toBe('No flows.\n');
    expect(JSON.parse(lb(['show', 'flows', '--format', 'json', '--limit', '5']).stdout)).toMatchObject({ total: 0, shown: 0, flows: [] });
    expect(lb(['show', 'flows', '--limit', '0']).code).toBe(1);
  });

  it('down removes everything it made and is idempotent', () => {
    const r = lb(['down']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Detached lb from va0 \(TC\)\./);
    // Every map and every program and link pin.
    expect(r.stdout).toMatch(new RegExp(`Unpinned ${MAP_NAMES.length + PROGRAM_PINS.length} objects from`));
    expect(r.stdout).toContain(`Removed ${runDir(instance)}.`);
    expect(ingressProgId(ns, 'va0')).toBeUndefined();
    expect(existsSync(instanceDir(instance))).toBe(false);
    expect(existsSync(runDir(instance))).toBe(false);
    const again = lb(['down']);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`Instance ${instance}: nothing to remove.\n`);
    expect(lb(['show']).stdout).toMatch(/has no data plane/);
  });
});

describe('lb apply asking for approval (in process, on lo of this namespace, never applied)', () => {
  const inst = `${instance}-ask`;
  const own = mkdtempSync(join(tmpdir(), 'lb-cli-ask-'));
  afterAll(() => {
    rmSync(runDir(inst), { recursive: true, force: true });
    rmSync(own, { recursive: true, force: true });
  });

  it('shows the plan in colour on a terminal, asks Terraform\'s question, and cancels on anything but "yes"', async () => {
    const cfg = join(own, 'lo.yaml');
    writeFileSync(cfg, config(50).replace('[va0]', '[lo]'));
    const out: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: (t) => out.push(t), color: true };
    const questions: string[] = [];
    let error: unknown;
    try {
      await runApply({ instance: inst, config: cfg, autoApprove: false, verbose: false }, io,
        { interactive: true, ask: async (q) => { questions.push(q); return 'yes please'; } });
    } catch (err) {
      error = err;
    }
    expect(isLbError(error, 'LB_APPLY_APPROVAL')).toBe(true);
    expect((error as Error).message).toMatch(/Apply cancelled/);
    expect(questions).toHaveLength(1);
    expect(questions[0]).toMatch(/^Do you want to perform these actions\?\n.*\n {2}Only 'yes' will be accepted to approve\.\n\n {2}Enter a value: $/);
    expect(out.join('\n')).toContain('\u001b[32m+ listener lo 10.200.0.10:80/tcp');
    expect(existsSync(instanceDir(inst)), 'nothing was loaded').toBe(false);
  });
});
