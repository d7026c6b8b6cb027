// The SNI benchmark's CPU budget (bench/lib/cpu-cap.ts) on the real cgroup hierarchy: a process
// moved into a capped group is in it (/proc/PID/cgroup), runs out of its quota once it has used
// more CPU than one period allows (the kernel counts the throttling), and is given back to the
// root group when the group is removed. No timing is asserted: the spinner stops after an amount
// of CPU time, however long the machine takes to give it that.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { CpuCap } from '../../bench/lib/cpu-cap.js';

if (process.getuid?.() !== 0) throw new Error('bench-cpu-cap.test.ts must run as root: it writes the cgroup hierarchy');

const caps: CpuCap[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const cap of caps.splice(0)) cap.remove();
});

/** A child that spins until it used `cpuMs` of CPU, then prints "done" and waits to be killed. */
function spinner(cpuMs: number): ChildProcess {
  const c = spawn(process.execPath, ['-e', `
    process.stdin.once('data', () => {
      const t0 = process.cpuUsage();
      for (;;) { const u = process.cpuUsage(t0); if ((u.user + u.system) / 1000 >= ${cpuMs}) break; }
      console.log('done');
    });
    console.log('ready');
    setInterval(() => {}, 1 << 30);
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(c);
  return c;
}

const lineFrom = (c: ChildProcess, line: string): Promise<void> => new Promise((resolve, reject) => {
  let out = '';
  const onData = (d: Buffer): void => {
    out += d.toString();
    if (out.split('\n').includes(line)) {
      c.stdout!.off('data', onData);
      resolve();
    }
  };
  c.stdout!.on('data', onData);
  c.once('exit', (code) => reject(new Error(`spinner exited (${code}) before "${line}"`)));
});

const groupOf = (pid: number): string => readFileSync(`/proc/${pid}/cgroup`, 'utf8');

it('holds a process to its quota and gives it back when removed', async () => {
  const cap = CpuCap.create(`lbtest-cap-${process.pid}`, 2000, 20_000);
  caps.push(cap);
  const c = spinner(200);
  await lineFrom(c, 'ready');
  cap.add(c.pid!);
  expect(cap.pids()).toEqual([c.pid]);
  const name = cap.path.split('/').pop()!;
  expect(groupOf(c.pid!)).toContain(`/${name}`);
  cap.release(c.pid!);
  expect(cap.pids()).toEqual([]);
  expect(groupOf(c.pid!)).not.toContain(`/${name}`);
  cap.add(c.pid!);
  const done = lineFrom(c, 'done');
  c.stdin!.write('go\n');
  await done;
  // 200 ms of CPU at 2 ms per 20 ms period: it ran out of its quota in most of the ~100 periods it
  // ran in (without the quota, in none).
  const s = cap.stats();
  expect(s.throttled).toBeGreaterThanOrEqual(10);
  expect(s.periods).toBeGreaterThanOrEqual(s.throttled);
  cap.remove();
  expect(existsSync(cap.path)).toBe(false);
  expect(groupOf(c.pid!)).not.toContain(`/${name}`);
  expect(c.exitCode).toBeNull();
  cap.remove(); // idempotent
});

it('refuses a group that exists already, and leaves it alone', () => {
  const cap = CpuCap.create(`lbtest-cap2-${process.pid}`, 1000, 10_000);
  caps.push(cap);
  expect(() => CpuCap.create(`lbtest-cap2-${process.pid}`, 1000, 10_000)).toThrow(/EEXIST/);
  expect(existsSync(cap.path)).toBe(true);
});
