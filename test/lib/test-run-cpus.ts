// Drives test/lib/test-run-cpus.c: compiled once per test file into a temporary directory, it runs
// a pinned XDP or TC program with BPF_PROG_TEST_RUN from one thread per CPU, every packet a copy
// of one frame with its TCP source port counting up (a flow of its own each).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Offset of the TCP source port in a frame of buildFrame (Ethernet 14 + IPv4 20). */
export const SPORT_OFFSET = 34;

/** What one run reports: its wall time (release to last packet) and the verdicts per CPU. */
export interface Race { ns: number; cpus: Array<{ cpu: number; err: number; other: number; verdicts: number[] }> }

export interface TestRunCpus {
  /** Runs `perCpu` packets on each of `cpus` CPUs; source ports base + cpu * perCpu + k (<= 65535). */
  run(prog: 'xdp' | 'tc', pin: string, frame: Buffer, base: number, perCpu: number, cpus: number, ifindex: number): Race;
  /** Removes the compiled helper. */
  remove(): void;
}

export function compileTestRunCpus(): TestRunCpus {
  const dir = mkdtempSync(join(tmpdir(), 'lb-test-run-cpus-'));
  const helper = join(dir, 'test-run-cpus');
  try {
    execFileSync('gcc', ['-O2', '-Wall', '-Werror', '-o', helper, 'test/lib/test-run-cpus.c', '-lbpf', '-lpthread'], { timeout: 60_000, stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    run(prog, pin, frame, base, perCpu, cpus, ifindex) {
      const out = execFileSync(helper, [prog, pin, frame.toString('hex'), String(SPORT_OFFSET), String(base), String(perCpu), String(cpus), String(ifindex)],
        { encoding: 'utf8', timeout: 120_000 });
      return JSON.parse(out) as Race;
    },
    remove() { rmSync(dir, { recursive: true, force: true }); },
  };
}
