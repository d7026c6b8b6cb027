// Kernel feature probes for the topology variants that need more than veth and a bridge: the
// 'bond' variant needs the bonding driver, the 'vlan' variant the 802.1Q driver. Both are often
// modules (and then `modprobe` loads them), but a kernel may be built with neither and without
// module support at all (a minimal VM kernel), and then no namespace can hold such a device.
//
// A probe tries to create the device for real, inside a throw-away network namespace made with
// `unshare --net`: that namespace ends with the probing process, so a probe cannot leave anything
// behind, not even when it is killed. The answer is cached per process (a kernel does not grow a
// driver mid-run; a module loaded meanwhile is picked up by the next process).

import { gunzipSync } from 'node:zlib';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import { run } from './process.js';

export interface FeatureSupport {
  ok: boolean;
  /** Why not, when !ok: the command's error, what modprobe said, the kernel config lines. */
  reason?: string;
}

const PROBE_TIMEOUT_MS = 10_000;

interface Feature {
  what: string;
  module: string;
  config: string;
  /** Shell commands that create the device; they run inside a fresh `unshare --net`. */
  script: string;
}

const BOND: Feature = {
  what: 'an active-backup bond',
  module: 'bonding',
  config: 'CONFIG_BONDING',
  script: 'ip link add lbprobe0 type bond mode active-backup miimon 100',
};

const VLAN: Feature = {
  what: 'an 802.1Q VLAN sub-interface',
  module: '8021q',
  config: 'CONFIG_VLAN_8021Q',
  // A VLAN needs a lower device that is not VLAN-challenged (lo is): a veth pair.
  script: 'ip link add lbprobe0 type veth peer name lbprobe1 && ip link add link lbprobe0 name lbprobe0.100 type vlan id 100',
};

function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.filter((d) => d !== '').map((d) => join(d, name)).find((p) => existsSync(p));
}

/** The kernel's build config lines for `keys` (from /proc/config.gz or /boot), or '' if unreadable. */
function kernelConfig(keys: string[]): string {
  let text: string | undefined;
  try {
    text = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
  } catch {
    try { text = readFileSync(`/boot/config-${release()}`, 'utf8'); } catch { return ''; }
  }
  const lines = text.split('\n').filter((l) => keys.some((k) => l.startsWith(`${k}=`) || l === `# ${k} is not set`));
  return lines.join(', ');
}

async function probe(f: Feature): Promise<FeatureSupport> {
  if (process.getuid?.() !== 0) return { ok: false, reason: `creating ${f.what} needs root` };
  const notes: string[] = [];
  // Loads the driver when it is a module; harmless when it is built in or already loaded.
  const modprobe = findExecutable('modprobe');
  if (modprobe) {
    const m = await run([modprobe, f.module], { timeoutMs: PROBE_TIMEOUT_MS, allowFailure: true });
    if (m.code !== 0) notes.push(`modprobe ${f.module}: ${m.stderr.trim() || `exit ${m.code ?? m.signal}`}`);
  } else {
    notes.push('modprobe is not installed');
  }
  const r = await run(['unshare', '--net', '--', 'sh', '-c', f.script], { timeoutMs: PROBE_TIMEOUT_MS, allowFailure: true });
  if (r.code === 0) return { ok: true };
  const config = kernelConfig([f.config, 'CONFIG_MODULES']);
  return {
    ok: false,
    reason: [`this kernel (${release()}) cannot create ${f.what} in a network namespace: `
      + `\`${f.script.split(' && ').pop()}\` failed (${r.stderr.trim() || (r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`)})`,
    ...notes, ...(config ? [`kernel config: ${config}`] : [])].join('; '),
  };
}

let bond: Promise<FeatureSupport> | undefined;
let vlan: Promise<FeatureSupport> | undefined;

/** Whether this kernel can create an active-backup bond inside a network namespace (the 'bond' variant). */
export function bondSupported(): Promise<FeatureSupport> {
  bond ??= probe(BOND);
  return bond;
}

/** Whether this kernel can create an 802.1Q VLAN sub-interface inside a network namespace (the 'vlan' variant). */
export function vlanSupported(): Promise<FeatureSupport> {
  vlan ??= probe(VLAN);
  return vlan;
}
