// A CPU budget for a set of processes: a cgroup with a CFS bandwidth quota (cgroup v1's cpu
// controller, cpu.cfs_quota_us, or v2's cpu.max). The SNI benchmark holds each proxy to the same
// budget so that the proxy, not the client, bounds the connection rate (docs/benchmarks.md,
// "Held to the same CPU"). Softirq work a process does in its own system calls is charged to it
// (the kernel has no IRQ time accounting here, and either way both proxies are treated alike).

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BenchError } from './errors.js';

const V1_CPU = '/sys/fs/cgroup/cpu';
const V2_ROOT = '/sys/fs/cgroup';

interface Hierarchy {
  version: 1 | 2;
  root: string;
}

/** Where the cpu controller is: v1's own mount, or v2's unified root (enabling it for children). */
function cpuHierarchy(): Hierarchy {
  if (existsSync(join(V1_CPU, 'cpu.cfs_quota_us'))) return { version: 1, root: V1_CPU };
  const controllers = join(V2_ROOT, 'cgroup.controllers');
  if (existsSync(controllers) && readFileSync(controllers, 'utf8').split(/\s+/).includes('cpu')) {
    const subtree = join(V2_ROOT, 'cgroup.subtree_control');
    if (!readFileSync(subtree, 'utf8').split(/\s+/).includes('cpu')) writeFileSync(subtree, '+cpu');
    return { version: 2, root: V2_ROOT };
  }
  throw new BenchError(`no cgroup cpu controller with CFS bandwidth (neither ${V1_CPU}/cpu.cfs_quota_us nor "cpu" in ${controllers}): the SNI benchmark's CPU budget needs one`);
}

/** Groups not removed yet: removed at the process's exit too (a run ended by a signal exits without its finally). */
const live = new Set<CpuCap>();
let exitHook = false;

export interface CpuCapStats {
  /** Periods in which the group ran out of its quota. */
  throttled: number;
  periods: number;
}

export class CpuCap {
  private constructor(private readonly h: Hierarchy, readonly path: string) {}

  /** A new cgroup `name` allowed `quotaUs` of CPU time per `periodUs` (summed over its processes' threads). */
  static create(name: string, quotaUs: number, periodUs: number): CpuCap {
    const h = cpuHierarchy();
    const path = join(h.root, name);
    mkdirSync(path);
    const cap = new CpuCap(h, path);
    live.add(cap);
    if (!exitHook) {
      exitHook = true;
      process.once('exit', () => {
        for (const c of live) {
          try { c.remove(); } catch { /* exiting: nothing left to report to */ }
        }
      });
    }
    try {
      if (h.version === 1) {
        writeFileSync(join(path, 'cpu.cfs_period_us'), String(periodUs));
        writeFileSync(join(path, 'cpu.cfs_quota_us'), String(quotaUs));
      } else {
        writeFileSync(join(path, 'cpu.max'), `${quotaUs} ${periodUs}`);
      }
    } catch (err) {
      cap.remove();
      throw err;
    }
    return cap;
  }

  /** Moves a process (all its threads) into the group. */
  add(pid: number): void {
    writeFileSync(join(this.path, 'cgroup.procs'), String(pid));
  }

  /** Gives one process back to the root group (it runs unbudgeted again). */
  release(pid: number): void {
    writeFileSync(join(this.h.root, 'cgroup.procs'), String(pid));
  }

  /** The pids in the group now. */
  pids(): number[] {
    return readFileSync(join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }

  stats(): CpuCapStats {
    const stat = new Map(readFileSync(join(this.path, 'cpu.stat'), 'utf8').split('\n').filter(Boolean)
      .map((l) => l.split(' ') as [string, string]).map(([k, v]) => [k, Number(v)]));
    return { throttled: stat.get('nr_throttled') ?? 0, periods: stat.get('nr_periods') ?? 0 };
  }

  /** Gives its processes back to the root group and removes it; idempotent, never throws for a group already gone. */
  remove(): void {
    live.delete(this);
    if (!existsSync(this.path)) return;
    for (const pid of this.pids()) {
      try {
        this.release(pid);
      } catch {
        // exited meanwhile
      }
    }
    rmdirSync(this.path);
  }
}
