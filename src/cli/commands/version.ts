// `lb version` (and `lb --version`): what is running and what the host offers it. The lb version
// from package.json, the git commit (of the repository the code runs from, else the one recorded
// at build time in dist/commit), Node, libbpf, the kernel, and the BPF features lb relies on or may
// use. Reads only: no privilege needed (probes it may not run are shown as unknown).

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { detectBpfFeatures, type BpfFeatures, type Probe } from '../../dataplane/bpf-features.js';
import { linkFacts } from '../../dataplane/link-facts.js';
import { xdpFeatureNames } from '../../dataplane/netlink/messages.js';
import { packageRoot } from '../../package-root.js';
import { lbVersion } from '../../version.js';
import { printBlock, stdio, type CliIo } from '../output.js';

export type VersionFormat = 'text' | 'json';

export interface InterfaceXdp {
  name: string;
  kind: string | null;
  /** true: the driver runs XDP natively (xdp_features basic + redirect); null: the kernel does not say (before 6.3). */
  nativeXdp: boolean | null;
  xdpFeatures: string[] | null;
}

export interface VersionReport {
  lb: string;
  commit: string | null;
  node: string;
  libbpf: string | null;
  kernel: string;
  features: Omit<BpfFeatures, 'libbpf'>;
  interfaces: InterfaceXdp[] | { error: string };
}

/** The commit of the checkout lb runs from, else the one `make build` recorded, else null. */
export function gitCommit(root: string = packageRoot()): string | null {
  if (existsSync(join(root, '.git'))) {
    const r = spawnSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] });
    if (r.status === 0 && /^[0-9a-f]{40}$/.test(r.stdout.trim())) return r.stdout.trim();
  }
  try {
    const recorded = readFileSync(join(root, 'dist', 'commit'), 'utf8').trim();
    return /^[0-9a-f]{40}$/.test(recorded) ? recorded : null;
  } catch {
    return null;
  }
}

function interfaces(): InterfaceXdp[] | { error: string } {
  try {
    return linkFacts().filter((l) => l.name !== 'lo').map((l) => ({
      name: l.name, kind: l.kind,
      nativeXdp: l.xdp === null ? null : l.xdp.basic && l.xdp.redirect,
      xdpFeatures: l.xdp === null ? null : xdpFeatureNames(l.xdp.raw),
    }));
  } catch (err) {
    return { error: (err as Error).message };
  }
}

export function collectVersion(): VersionReport {
  const { libbpf, ...features } = detectBpfFeatures();
  return { lb: lbVersion(), commit: gitCommit(), node: process.version, libbpf, kernel: release(), features, interfaces: interfaces() };
}

const yesNo = (p: Probe): string => (p === null ? 'unknown' : p ? 'yes' : 'no');

export function renderVersion(r: VersionReport): string {
  const f = r.features;
  const lines = [
    `lb ${r.lb}${r.commit ? ` (commit ${r.commit.slice(0, 12)})` : ''}`,
    `node      ${r.node}`,
    `libbpf    ${r.libbpf ?? 'not found'}`,
    `kernel    ${r.kernel}`,
    'BPF features:',
    `  BTF (/sys/kernel/btf/vmlinux)  ${f.btf ? 'yes' : 'no'}`,
    `  XDP programs                   ${yesNo(f.xdp)}`,
    `  TC (clsact, sched_cls)         ${yesNo(f.tc)}`,
    `  ring buffer                    ${yesNo(f.ringbuf)}`,
    `  sk_lookup                      ${yesNo(f.skLookup)}`,
    `  sockmap                        ${yesNo(f.sockmap)}`,
  ];
  if (f.unknownReason) lines.push(`  (unknown: ${f.unknownReason})`);
  lines.push('Native XDP per interface:');
  if ('error' in r.interfaces) lines.push(`  cannot list the interfaces: ${r.interfaces.error}`);
  else if (r.interfaces.length === 0) lines.push('  (no interfaces besides lo)');
  else {
    const width = Math.max(...r.interfaces.map((i) => i.name.length));
    for (const i of r.interfaces) {
      const what = i.nativeXdp === null ? 'unknown (the kernel reports xdp_features from 6.3)'
        : `${i.nativeXdp ? 'yes' : 'no'}${i.xdpFeatures!.length > 0 ? ` (xdp_features: ${i.xdpFeatures!.join(' ')})` : ''}`;
      lines.push(`  ${i.name.padEnd(width)}  ${i.kind ?? 'physical'}: ${what}`);
    }
  }
  return lines.join('\n');
}

export function runVersion(options: { format: VersionFormat }, io: CliIo = stdio()): number {
  const report = collectVersion();
  printBlock(io, options.format === 'json' ? JSON.stringify(report, null, 2) : renderVersion(report));
  return 0;
}
