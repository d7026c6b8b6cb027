// Network namespaces of the sandboxes: deleting one with the processes inside it, and removing every
// live sandbox when the process is interrupted or exits. Both topology builders (topology.ts for the
// tests' standard sandbox, seed-topology.ts for the example configs) use these.

import { spawnSync } from 'node:child_process';
import { SandboxError, run, type ManagedProcess } from './process.js';

const CMD_TIMEOUT_MS = 15_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function pidsOf(stdout: string): number[] {
  return stdout.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number).filter((p) => p !== process.pid);
}

async function nsPids(ns: string): Promise<number[]> {
  return pidsOf((await run(['ip', 'netns', 'pids', ns], { timeoutMs: CMD_TIMEOUT_MS, allowFailure: true })).stdout);
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal); } catch { /* already gone */ }
}

/**
 * Ends every process inside `ns` (SIGTERM, then SIGKILL after `graceMs`) and deletes it.
 * A namespace lives on while a process holds it, so the processes go first.
 */
export async function deleteNamespace(ns: string, graceMs: number): Promise<void> {
  let pids = await nsPids(ns);
  if (pids.length > 0) {
    for (const p of pids) killPid(p, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && (pids = await nsPids(ns)).length > 0) await sleep(50);
    for (const p of pids) killPid(p, 'SIGKILL');
  }
  const r = await run(['ip', 'netns', 'del', ns], { timeoutMs: CMD_TIMEOUT_MS, allowFailure: true });
  if (r.code !== 0 && !/No such file|not exist/i.test(r.stderr)) {
    throw new SandboxError(`ip netns del ${ns} failed: ${r.stderr.trim()}`, { ns });
  }
}

/** The same, synchronously and without grace (exit and signal handlers). */
export function deleteNamespaceSync(ns: string): void {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: CMD_TIMEOUT_MS });
  for (const p of pidsOf(r.stdout ?? '')) killPid(p, 'SIGKILL');
  spawnSync('ip', ['netns', 'del', ns], { timeout: CMD_TIMEOUT_MS, stdio: 'ignore' });
}

/** Something that can remove itself synchronously: a sandbox. */
export interface SyncDestroyable { destroySync(): void }

const live = new Set<SyncDestroyable>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let handlersInstalled = false;
let exitHandlerInstalled = false;

function onSignal(signal: NodeJS.Signals): void {
  for (const t of [...live]) t.destroySync();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  handlersInstalled = false;
  // Die of the signal as if no handler had been installed, unless the program handles it itself.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

/** Removes `t` (destroySync) if the process gets SIGINT, SIGTERM or SIGHUP, or exits, before `forget(t)`. */
export function removeOnExit(t: SyncDestroyable): void {
  live.add(t);
  if (!handlersInstalled) {
    handlersInstalled = true;
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  if (!exitHandlerInstalled) {
    exitHandlerInstalled = true;
    process.on('exit', () => { for (const x of [...live]) x.destroySync(); });
  }
}

/** `t` was removed (or is removing itself): the handlers leave it alone. */
export function forget(t: SyncDestroyable): void {
  live.delete(t);
}

/**
 * Stops a sandbox's processes, then deletes its namespaces (last created first, at most `parallel`
 * at once) and checks none is left: throws SandboxError naming the ones that are.
 */
export async function deleteSandbox(prefix: string, processes: Iterable<ManagedProcess>, names: readonly string[], parallel = 1): Promise<void> {
  await Promise.all([...processes].map((p) => p.stop(2000)));
  const errors: unknown[] = [];
  const queue = [...names].reverse();
  const worker = async (): Promise<void> => {
    for (let ns = queue.shift(); ns !== undefined; ns = queue.shift()) {
      try { await deleteNamespace(ns, 1000); } catch (err) { errors.push(err); }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, names.length)) }, worker));
  const r = await run(['ip', 'netns', 'list'], { timeoutMs: CMD_TIMEOUT_MS, allowFailure: true });
  const left = new Set(r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n !== ''));
  const remaining = names.filter((n) => left.has(n));
  if (errors.length > 0 || remaining.length > 0) {
    throw new SandboxError(`teardown of ${prefix} incomplete; remaining namespaces: ${remaining.join(', ') || 'none'}`,
      { remaining }, { cause: errors.length === 1 ? errors[0] : new AggregateError(errors) });
  }
}

/** SIGKILL to a sandbox's processes and everything in its namespaces, then `ip netns del`, synchronously. */
export function deleteSandboxSync(processes: Iterable<ManagedProcess>, names: readonly string[]): void {
  for (const p of processes) p.killSync();
  for (const ns of [...names].reverse()) deleteNamespaceSync(ns);
}
