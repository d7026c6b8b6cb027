// Drives src/dataplane/agent.ts (the stand-in daemon) inside a topology's LB namespace: start it,
// wait for its ready line, SIGHUP it and wait for the reload, kill it, and run its --down mode.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { listNamespaces, waitUntil, type ManagedProcess, type Topology } from '../../../src/sandbox/index.js';
import type { AgentConfig } from '../../../src/dataplane/agent.js';
import { DataPlane, instanceDir, type DownResult } from '../../../src/dataplane/index.js';
import { packageRoot } from '../../../src/package-root.js';

export const AGENT_SCRIPT = join(packageRoot(), 'dist', 'src', 'dataplane', 'agent.js');

export interface AgentReady {
  ready: true;
  adopted: boolean;
  xdpMode: string;
  installed: boolean;
  activeGen: number;
  pid: number;
  interfaces: Array<{ ifname: string; ifindex: number; path: 'xdp' | 'tc'; pathReason: string; xdpMode: string | null; xdpChanged: boolean;
    tcChanged: boolean; nativeError?: string }>;
  txPorts: string[];
  txRefused: Array<{ ifname: string; reason: string }>;
}

export interface AgentReload { reloaded: boolean; installed?: boolean; activeGen?: number; error?: string }

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function writeAgentConfig(path: string, cfg: AgentConfig): void {
  writeFileSync(path, `${JSON.stringify(cfg, null, 2)}\n`);
}

export class Agent {
  constructor(readonly proc: ManagedProcess, readonly ready: AgentReady) {}

  get pid(): number { return this.proc.pid!; }

  /** SIGHUP, then the reload line it answers with. */
  async reload(timeoutMs = 5000): Promise<AgentReload> {
    const before = jsonLines(this.proc.stdout).filter((l) => 'reloaded' in l).length;
    this.proc.child.kill('SIGHUP');
    return waitUntil(() => jsonLines(this.proc.stdout).filter((l) => 'reloaded' in l)[before] as AgentReload | undefined,
      { timeoutMs, intervalMs: 20, what: 'the agent to reload' });
  }

  /** kill -9: no cleanup of any kind runs in the agent. */
  async kill9(): Promise<void> {
    this.proc.child.kill('SIGKILL');
    const status = await this.proc.exited;
    if (status.signal !== 'SIGKILL') throw new Error(`agent exited with ${status.code ?? status.signal}, expected SIGKILL`);
  }
}

/** Starts the agent in the LB namespace with nsenter (keeps /sys/fs/bpf) and waits for it to be ready. */
export async function startAgent(topo: Topology, instance: string, configPath: string,
  opts: { path?: 'auto' | 'xdp' | 'tc'; xdpMode?: 'auto' | 'native' | 'generic'; timeoutMs?: number } = {}): Promise<Agent> {
  const proc = topo.spawnIn('lb', [process.execPath, AGENT_SCRIPT, '--instance', instance, '--config', configPath,
    '--path', opts.path ?? 'auto', '--xdp-mode', opts.xdpMode ?? 'auto'], { via: 'nsenter', label: `agent ${instance}` });
  const m = await proc.waitForOutput(/^\{"ready":true.*\}$/m, opts.timeoutMs ?? 20_000);
  return new Agent(proc, JSON.parse(m[0]) as AgentReady);
}

/** `agent --down` in the LB namespace: detaches there and unpins the instance. */
export async function agentDown(topo: Topology, instance: string): Promise<DownResult> {
  const r = await topo.exec('lb', [process.execPath, AGENT_SCRIPT, '--instance', instance, '--down'], { via: 'nsenter', timeoutMs: 20_000 });
  return JSON.parse(r.stdout) as DownResult;
}

/**
 * The afterAll of a sandbox with the agent on it: closes the data plane, stops the agent, detaches
 * and unpins the instance, removes the namespaces and the scratch directory, also after a partial
 * set-up, and checks that no namespace and no pin is left.
 */
export async function teardownAgentSandbox(s: { instance: string; topo?: Topology; agent?: Agent; dp?: DataPlane; dir?: string }): Promise<void> {
  const { instance, topo } = s;
  const prefix = topo?.prefix;
  try {
    s.dp?.close();
    await s.agent?.proc.stop(3000).catch(() => undefined);
    if (topo && existsSync(instanceDir(instance))) await agentDown(topo, instance).catch(() => undefined);
    await topo?.destroy();
  } finally {
    topo?.destroySync();
    // The namespaces (and with them every attachment) are gone: only pins could be left.
    if (existsSync(instanceDir(instance))) DataPlane.down(instance);
    if (s.dir) rmSync(s.dir, { recursive: true, force: true });
    if (prefix) expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
    expect(existsSync(instanceDir(instance))).toBe(false);
  }
}
