// Running the built CLI (node dist/src/cli/main.js) from tests, in a network namespace of the
// test's own (nsenter keeps /sys/fs/bpf visible), and the small namespaces those tests need.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { packageRoot } from '../../src/package-root.js';
import { runDir } from '../../src/state/run-dir.js';
import { ensureBuilt } from './build.js';

export const ROOT = packageRoot();
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Network namespace to run in (via nsenter --net). */
  ns?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  input?: string;
  /** Run as nobody (uid and gid 65534, no groups): shows a command needs no root. */
  asNobody?: boolean;
}

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

function argvOf(args: readonly string[], ns?: string, asNobody?: boolean): [string, string[]] {
  const node = [...(asNobody ? NOBODY : []), process.execPath, CLI, ...args];
  return ns ? ['nsenter', [`--net=/run/netns/${ns}`, ...node]] : [node[0]!, node.slice(1)];
}

/** Runs `lb ARGS` to completion (bounded by timeoutMs, default 30 s). */
export function runCli(args: readonly string[], opts: CliOptions = {}): CliResult {
  const [cmd, argv] = argvOf(args, opts.ns, opts.asNobody);
  const r = spawnSync(cmd, argv, {
    cwd: ROOT, encoding: 'utf8', timeout: opts.timeoutMs ?? 30_000, input: opts.input ?? '',
    env: { ...process.env, NO_COLOR: '1', LB_REVISION: '', LB_FAULT_INJECT: '', ...opts.env },
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The same, asynchronously (for a child that runs while the test does something else). */
export function runCliAsync(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  const [cmd, argv] = argvOf(args, opts.ns, opts.asNobody);
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', LB_FAULT_INJECT: '', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const sh = (argv: string[]): string => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * A namespace with loopback up and veth pairs whose both ends live inside it (names given as
 * [a, b] pairs). No link leaves the namespace.
 */
export function createNetns(name: string, pairs: Array<[string, string]>): void {
  sh(['ip', 'netns', 'add', name]);
  try {
    sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    for (const [a, b] of pairs) {
      sh(['ip', '-n', name, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
      sh(['ip', '-n', name, 'link', 'set', a, 'up']);
      sh(['ip', '-n', name, 'link', 'set', b, 'up']);
    }
  } catch (err) {
    deleteNetns(name);
    throw err;
  }
}

export function deleteNetns(name: string): void {
  spawnSync('ip', ['netns', 'del', name], { timeout: 15_000, stdio: 'ignore' });
}

/** XDP program id on an interface of a namespace, or undefined. */
export function xdpProgId(ns: string, ifname: string): number | undefined {
  const [link] = JSON.parse(sh(['ip', '-n', ns, '-j', '-d', 'link', 'show', 'dev', ifname])) as Array<{ xdp?: { prog?: { id: number } } }>;
  return link?.xdp?.prog?.id;
}

/** The BPF program on an interface's clsact ingress hook (lb's TC path), or undefined. */
export function tcIngressProgId(ns: string, ifname: string): number | undefined {
  const filters = JSON.parse(sh(['tc', '-n', ns, '-j', 'filter', 'show', 'dev', ifname, 'ingress']) || '[]') as Array<{ options?: { prog?: { id: number } } }>;
  return filters.find((f) => f.options?.prog)?.options?.prog?.id;
}

/** lb's ingress program on an interface, whichever path runs there: XDP or TC ingress. */
export function ingressProgId(ns: string, ifname: string): number | undefined {
  return xdpProgId(ns, ifname) ?? tcIngressProgId(ns, ifname);
}

/**
 * For a describe block whose CLI runs in namespace `ns` with one pair va0/vb0: builds the objects
 * and the namespace before, and after takes down every instance (pins and run directory), the
 * namespace and the scratch directory, also when a test failed.
 */
export function useCliNamespace(opts: { ns: string; instances: readonly string[]; dir: string }): void {
  beforeAll(() => {
    ensureBuilt();
    createNetns(opts.ns, [['va0', 'vb0']]);
  });
  afterAll(() => {
    for (const i of opts.instances) {
      runCli(['down', '--instance', i], { ns: opts.ns });
      rmSync(runDir(i), { recursive: true, force: true });
    }
    deleteNetns(opts.ns);
    rmSync(opts.dir, { recursive: true, force: true });
  });
}
