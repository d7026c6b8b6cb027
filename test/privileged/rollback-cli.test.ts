// `lb rollback`: one step back to the configuration the inactive generation still holds, through
// the apply transaction. The built CLI in a network namespace of this test; needs root (fails,
// never skips).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRunPrefix } from '../../src/sandbox/index.js';
import { runCli, useCliNamespace, type CliResult } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('rollback-cli.test.ts must run as root: it loads BPF programs and creates a network namespace');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const ns = `${makeRunPrefix()}-lb`;
const dir = mkdtempSync(join(tmpdir(), 'lb-rollback-'));
const config = (weight2: number): string => `
proxies:
  - name: web
    listen: {interfaces: [va0], port: 80, address: 10.200.0.10}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 50}
      - {ip: 10.0.0.2, port: 8080, weight: ${weight2}}
`;
const A = join(dir, 'a.yaml');
const B = join(dir, 'b.yaml');
writeFileSync(A, config(50));
writeFileSync(B, config(0));
const lb = (args: string[]): CliResult => runCli([...args, '--instance', instance], { ns });

describe('lb rollback', () => {
  useCliNamespace({ ns, instances: [instance], dir });

  it('refuses without pinned state, and when there is no previous configuration', () => {
    const none = lb(['rollback', '--auto-approve']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no pinned state: nothing to roll back/);
    expect(lb(['apply', '-c', A, '--auto-approve']).code).toBe(0);
    const first = lb(['rollback', '--auto-approve']);
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/no previous configuration/);
    expect(lb(['plan', '-c', A, '--detailed-exitcode']).code, 'nothing changed').toBe(0);
  });

  it('shows the plan without --auto-approve and changes nothing', () => {
    expect(lb(['apply', '-c', B, '--auto-approve', '--revision', 'rev-b']).code).toBe(0);
    const dry = lb(['rollback']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/~ +default-target 10\.0\.0\.2:8080 +weight: 0 -> 50/);
    expect(dry.stdout).toContain('Nothing changed.');
    expect(lb(['plan', '-c', B, '--detailed-exitcode']).code, 'B is still live').toBe(0);
  });

  it('returns to the previous configuration, and a second rollback comes back', () => {
    const back = lb(['rollback', '--auto-approve']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/Rollback complete! .*Resources: 0 added, 1 changed, 0 destroyed\./);
    expect(lb(['plan', '-c', A, '--detailed-exitcode']).code, 'A is live again').toBe(0);
    expect(lb(['plan', '-c', B, '--detailed-exitcode']).code, 'B is not').toBe(2);

    const forth = lb(['rollback', '--auto-approve']);
    expect(forth.code, forth.stderr).toBe(0);
    expect(forth.stdout).toMatch(/Revision rev-b is live again/);
    expect(lb(['plan', '-c', B, '--detailed-exitcode']).code, 'B is live again').toBe(0);
  });
});
