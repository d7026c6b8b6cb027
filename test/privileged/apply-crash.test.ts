// Crash recovery: `lb apply` (the built CLI, in a child process, in a namespace of this test) is
// killed with SIGKILL (LB_FAULT_INJECT) at several points of its transaction: in the middle of
// the raw operations, just before the flip, right after the flip, after the read-back. The next
// `lb plan` or `lb apply` must find the journal, resolve it, and leave exactly the old
// configuration (killed before the flip) or exactly the new one (killed after it), interfaces
// included. "Exactly" is checked by `lb plan --detailed-exitcode` against each config: 0 for the
// live one, 2 for the other. Needs root; fails (never skips) without it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { journalPath } from '../../src/apply/index.js';
import { runDir } from '../../src/state/run-dir.js';
import { makeRunPrefix } from '../../src/sandbox/index.js';
import { createNetns, deleteNetns, ingressProgId, runCli, type CliResult } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('apply-crash.test.ts must run as root: it loads BPF programs and creates a network namespace');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const ns = `${makeRunPrefix()}-lb`;
const dir = mkdtempSync(join(tmpdir(), 'lb-crash-'));

const OLD = `
proxies:
  - name: web
    listen: {interfaces: [va0], port: 80, address: 10.200.0.10}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 50}
      - {ip: 10.0.0.2, port: 8080, weight: 50}
    source-routes:
      - {source: 192.168.1.0/24, target: {ip: 10.0.0.3, port: 8080}}
  - name: dns
    listen: {interfaces: [va0], port: 53, protocol: udp}
    default-target: {ip: 10.0.1.1, port: 53}
settings:
  connection-timeout-sec: 300
`;
const NEW = `
proxies:
  - name: web
    listen: {interfaces: [va0, va1], port: 80, address: 10.200.0.10}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 20}
      - {ip: 10.0.0.4, port: 8080, weight: 80}
    source-routes:
      - {source: 192.168.2.0/24, target: {ip: 10.0.0.5, port: 8080}}
      - {source: 10.9.0.0/16, targets: [{ip: 10.0.0.6, port: 8080}, {ip: 10.0.0.7, port: 8080}]}
  - name: api
    listen: {interfaces: [va0], port: 443, address: 10.200.0.11}
    default-target: {ip: 10.0.2.1, port: 8443}
settings:
  connection-timeout-sec: 120
`;
const NEW2 = NEW.replace('weight: 80', 'weight: 90').replace('10.0.2.1', '10.0.2.2');
const files = { OLD: join(dir, 'old.yaml'), NEW: join(dir, 'new.yaml'), NEW2: join(dir, 'new2.yaml') };
type Name = keyof typeof files;

const lb = (args: string[], env: Record<string, string> = {}): CliResult => runCli([...args, '--instance', instance], { ns, env });
const journal = (): boolean => existsSync(journalPath(runDir(instance)));

/** Which config the live state is exactly (plan exit 0), checking it differs from the others (exit 2). */
function liveIs(name: Name): void {
  for (const other of Object.keys(files) as Name[]) {
    const r = lb(['plan', '-c', files[other], '--detailed-exitcode']);
    expect(r.code, `plan against ${other} (live should be ${name}): ${r.stderr}`).toBe(other === name ? 0 : 2);
  }
  expect(ingressProgId(ns, 'va1') !== undefined, `va1 attached iff ${name} uses it`).toBe(name !== 'OLD');
}

/** Runs `lb apply -c <to>` killed at `point`; returns the raw op count it announced. */
function crash(to: Name, point: string): number {
  const r = lb(['apply', '-c', files[to], '--auto-approve', '--verbose'], { LB_FAULT_INJECT: point });
  expect(r.signal, `apply killed at ${point}: ${r.stderr}`).toBe('SIGKILL');
  expect(journal(), 'the killed apply left its journal').toBe(true);
  const m = /journal written: generation \d, (\d+) raw operation/.exec(r.stderr);
  expect(m, r.stderr).not.toBeNull();
  return Number(m![1]);
}

describe('crash recovery of lb apply', () => {
  beforeAll(() => {
    ensureBuilt();
    for (const [name, path] of Object.entries(files)) writeFileSync(path, { OLD, NEW, NEW2 }[name as Name]);
    createNetns(ns, [['va0', 'vb0'], ['va1', 'vb1']]);
    const r = lb(['apply', '-c', files.OLD, '--auto-approve']);
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(() => {
    runCli(['down', '--instance', instance], { ns });
    deleteNetns(ns);
    rmSync(runDir(instance), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('killed in the middle of the raw operations: lb plan rolls it back to the old config', () => {
    liveIs('OLD');
    for (const at of [0, 3]) {
      const ops = crash('NEW', String(at));
      expect(ops).toBeGreaterThan(at);
      const r = lb(['plan', '-c', files.OLD, '--detailed-exitcode']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/recovered an interrupted apply .* it had not flipped; restored the inactive generation and detached va1/);
      expect(journal()).toBe(false);
      liveIs('OLD');
    }
  });

  it('killed just before the flip: the old config stays', () => {
    crash('NEW', '999');
    expect(lb(['plan', '-c', files.NEW]).stderr).toMatch(/had not flipped/);
    liveIs('OLD');
  });

  it('killed right after the flip: the new config is live and verified', () => {
    crash('NEW', 'after-flip');
    expect(lb(['plan', '-c', files.NEW]).stderr).toMatch(/had flipped to generation \d and the new configuration verifies; finished it/);
    expect(journal()).toBe(false);
    liveIs('NEW');
  });

  it('killed after the read-back: recovery finishes it, detaching the interface the new config dropped', () => {
    crash('OLD', 'commit');
    expect(ingressProgId(ns, 'va1'), 'va1 is still attached until the recovery').toBeDefined();
    expect(lb(['plan', '-c', files.OLD]).stderr).toMatch(/finished it/);
    liveIs('OLD');
  });

  it('lb apply resolves a leftover journal too, then applies', () => {
    crash('NEW', '1');
    const r = lb(['apply', '-c', files.NEW2, '--auto-approve']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/recovered an interrupted apply .* had not flipped/);
    expect(r.stdout).toMatch(/Apply complete! Resources: \d+ added, \d+ changed, \d+ destroyed\./);
    liveIs('NEW2');
  });
});
