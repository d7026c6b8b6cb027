// `lb version` and `lb --version`: the built CLI in a namespace of this test with one veth pair,
// as root (every probe answered) and as nobody (probes unknown, still exit 0). Needs root (fails,
// never skips).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRunPrefix } from '../../src/sandbox/index.js';
import type { VersionReport } from '../../src/cli/commands/version.js';
import { ROOT, runCli, useCliNamespace } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('cli-version.test.ts must run as root: it creates a network namespace');

const ns = `${makeRunPrefix()}-lbv`;
const dir = mkdtempSync(join(tmpdir(), 'lb-version-'));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

function versionJson(uid?: number): VersionReport {
  const r = runCli(['version', '--format', 'json'], { ns, ...(uid === undefined ? {} : { uid }) });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as VersionReport;
}

describe('lb version', () => {
  useCliNamespace({ ns, instances: [], dir });

  it('reports lb, the commit, Node, libbpf, the kernel, and every BPF feature this kernel has', () => {
    const v = versionJson();
    expect(v.lb).toBe(pkg.version);
    expect(v.commit).toBe(execFileSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim());
    expect(v.node).toBe(process.version);
    expect(v.libbpf).toMatch(/^1\.\d+/);
    expect(v.kernel).toBe(release());
    // Every kernel lb supports (5.15 or later) has these; BTF depends on how the kernel was built.
    expect(v.features).toEqual({ btf: existsSync('/sys/kernel/btf/vmlinux'), xdp: true, tc: true, ringbuf: true, skLookup: true, sockmap: true, unknownReason: null });
  });

  it('lists the namespace\'s interfaces with their XDP support (a veth runs XDP natively)', () => {
    const ifs = versionJson().interfaces;
    expect(Array.isArray(ifs)).toBe(true);
    const names = (ifs as Array<{ name: string; kind: string | null; nativeXdp: boolean | null }>).map((i) => [i.name, i.kind]);
    expect(names.sort()).toEqual([['va0', 'veth'], ['vb0', 'veth']]);
    for (const i of ifs as Array<{ nativeXdp: boolean | null; xdpFeatures: string[] | null }>) {
      expect(i.nativeXdp).toBe(true);
      expect(i.xdpFeatures).toContain('basic');
    }
  });

  it('--version prints the same report as text', () => {
    const flag = runCli(['--version'], { ns });
    const cmd = runCli(['version'], { ns });
    expect(flag.code, flag.stderr).toBe(0);
    expect(flag.stdout).toBe(cmd.stdout);
    expect(flag.stdout).toMatch(new RegExp(`^lb ${pkg.version.replaceAll('.', '\\.')} \\(commit [0-9a-f]{12}\\)\\n`));
    expect(flag.stdout).toMatch(/^ {2}ring buffer +yes$/m);
    expect(flag.stdout).toMatch(/^ {2}va0 +veth: yes \(xdp_features: basic /m);
  });

  it('as a user without CAP_BPF, says the probes are unknown instead of absent, and exits 0', () => {
    const v = versionJson(65534);
    expect([v.features.xdp, v.features.tc, v.features.ringbuf, v.features.skLookup, v.features.sockmap]).toEqual([null, null, null, null, null]);
    expect(v.features.unknownReason).toMatch(/needs root, or CAP_BPF/);
    expect(v.lb).toBe(pkg.version);
  });
});
