// `lb apply PLANFILE` with the built CLI in a network namespace of this test: a saved plan edited
// after `lb plan --out` (generation or summary, with or without a recomputed digest) is refused
// with LB_APPLY_PLAN_MISMATCH and changes nothing; the untouched plan applies and prints the
// summary recomputed from its desired state. Needs root; fails (never skips).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planFileDigest, type PlanFile } from '../../src/apply/plan-file.js';
import { instanceDir } from '../../src/dataplane/index.js';
import { makeRunPrefix } from '../../src/sandbox/index.js';
import { runCli, useCliNamespace, type CliResult } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('plan-file-tamper.test.ts must run as root: it loads BPF programs and creates a network namespace');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const ns = `${makeRunPrefix()}-pf`;
const dir = mkdtempSync(join(tmpdir(), 'lb-plan-tamper-'));
const config = join(dir, 'lb.yaml');
writeFileSync(config, `
proxies:
  - name: web
    listen: {interfaces: [va0], port: 80, address: 10.200.0.10}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 50}
      - {ip: 10.0.0.2, port: 8080, weight: 50}
`);

const lb = (args: string[]): CliResult => runCli([...args, '--instance', instance], { ns });

/** A fresh saved plan, then `edit` applied to its JSON; the digest recomputed when asked (an editor who knows the format). */
function tampered(name: string, edit: (f: PlanFile) => void, opts: { redigest: boolean }): string {
  const path = join(dir, name);
  const saved = lb(['plan', '-c', config, '--out', path]);
  expect(saved.code, saved.stderr).toBe(0);
  const file = JSON.parse(readFileSync(path, 'utf8')) as PlanFile;
  edit(file);
  if (opts.redigest) file.digest = planFileDigest(file);
  writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}

function expectRefusedAndNothingChanged(r: CliResult, message: RegExp): void {
  expect(r.code, r.stdout).toBe(1);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/nothing was applied/);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stdout).not.toMatch(/Apply complete/);
  expect(existsSync(instanceDir(instance)), 'nothing was loaded or pinned').toBe(false);
  expect(lb(['plan', '-c', config, '--detailed-exitcode']).code, 'the changes are still pending').toBe(2);
}

describe('lb apply of an edited saved plan', () => {
  useCliNamespace({ ns, instances: [instance], dir });

  it('an edited generation without a new digest is refused by the digest', () => {
    const path = tampered('gen-nodigest.json', (f) => { f.desired.generation.listeners[0]!.key.port = 8081; }, { redigest: false });
    expectRefusedAndNothingChanged(lb(['apply', path]), /was changed after `lb plan --out` wrote it/);
  });

  it('an edited generation with a recomputed digest is refused: it is not the encoding of desired.state', () => {
    const path = tampered('gen.json', (f) => { f.desired.generation.groups[0]!.group.targets[1]!.addr = '10.66.6.6'; }, { redigest: true });
    expectRefusedAndNothingChanged(lb(['apply', path]), /desired\.generation is not the encoding of desired\.state\. At \/desired\/generation\/groups\/0\/group\/targets\/1\/addr the file has "10\.66\.6\.6"; desired\.state gives "10\.0\.0\.2"/);
  });

  it('an edited summary with a recomputed digest is refused', () => {
    const path = tampered('summary.json', (f) => { f.plan.summary.add = 0; f.plan.summary.change = 3; }, { redigest: true });
    expectRefusedAndNothingChanged(lb(['apply', path]), /At \/plan\/summary\/add the file has 0; desired\.state gives 5/);
  });

  it('the untouched plan applies, and prints the summary recomputed from desired.state', () => {
    const path = tampered('good.json', () => {}, { redigest: false });
    const r = lb(['apply', path]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Apply complete! Resources: 5 added, 0 changed, 0 destroyed\./);
    expect(lb(['plan', '-c', config, '--detailed-exitcode']).code).toBe(0);
  });
});
