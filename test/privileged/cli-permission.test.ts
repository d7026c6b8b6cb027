// A non-root user running lb gets one sentence naming what is missing, exit 1, never "internal
// error"; LB_DEBUG=1 keeps the refused call. The built CLI runs as nobody (setpriv) against an
// instance of this test; needs root to set it up (fails, never skips).
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRunPrefix } from '../../src/sandbox/index.js';
import { runCli, useCliNamespace, type CliResult } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('cli-permission.test.ts must run as root: it sets up an instance and runs lb as another user');

const NOBODY = 65534;
const instance = `perm-${process.pid}-${randomBytes(3).toString('hex')}`;
const ns = `${makeRunPrefix()}-lbp`;
const dir = mkdtempSync(join(tmpdir(), 'lb-perm-'));
const config = join(dir, 'lb.yaml');
writeFileSync(config, `
proxies:
  - name: web
    listen: {interfaces: [va0], port: 80, address: 10.200.0.10}
    default-target:
      - {ip: 10.0.0.1, port: 8080}
`);
chmodSync(dir, 0o755);
chmodSync(config, 0o644);
const asNobody = (args: string[], env: Record<string, string> = {}): CliResult =>
  runCli([...args, '--instance', instance], { ns, uid: NOBODY, env: { LB_DEBUG: '', ...env } });

function expectRefused(r: CliResult): void {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toMatch(/^lb: permission denied: .+\. lb needs root, or CAP_BPF and CAP_NET_ADMIN/);
  expect(r.stderr).not.toMatch(/internal/i);
}

describe('lb as a non-root user', () => {
  useCliNamespace({ ns, instances: [instance], dir });

  it('plan and apply name the missing privilege before anything exists', () => {
    expectRefused(asNobody(['plan', '-c', config]));
    expectRefused(asNobody(['apply', '-c', config, '--auto-approve']));
  });

  it('show, plan and down name it for an instance root applied', () => {
    const applied = runCli(['apply', '-c', config, '--auto-approve', '--instance', instance], { ns });
    expect(applied.code, applied.stderr).toBe(0);
    const show = asNobody(['show']);
    expectRefused(show);
    expect(show.stderr).toContain('/sys/fs/bpf/lb');
    expectRefused(asNobody(['plan', '-c', config]));
    expectRefused(asNobody(['down']));
    expect(runCli(['plan', '-c', config, '--detailed-exitcode', '--instance', instance], { ns }).code, 'the refused down changed nothing').toBe(0);
  });

  it('LB_DEBUG=1 keeps the refused call and its errno', () => {
    const r = asNobody(['plan', '-c', config], { LB_DEBUG: '1' });
    expectRefused(r);
    expect(r.stderr).toContain('details (LB_DEBUG)');
    expect(r.stderr).toMatch(/EACCES/);
  });

  it('validate, which needs no privilege, works as nobody', () => {
    const r = asNobody(['validate', '-c', config]);
    expect(r.code, r.stderr).toBe(0);
  });
});
