// A stand-in for `lb daemon` until it exists: a long-running process that holds one instance's
// data plane, so end-to-end tests can kill and restart "the loader" and watch flows survive.
// It knows no config format, only a JSON rendering of one GenerationConfig with interface names:
//
//   nsenter --net=/run/netns/NS node dist/src/dataplane/agent.js --instance NAME --config FILE.json
//                                                               [--path auto|xdp|tc] [--xdp-mode auto|native|generic]
//   nsenter --net=/run/netns/NS node dist/src/dataplane/agent.js --instance NAME --down
//
// Start: open the instance (adopting its pins when present), attach the data path (--path, chosen
// per interface like lb apply does when auto) to the interfaces of the JSON, fill lb_tx_ports with every interface of the namespace, install the config unless the
// active generation already holds exactly it (so a restart changes nothing and keeps every flow),
// then print one JSON line {"ready":true,"adopted":...,"interfaces":[{path,...}]} and run until SIGTERM/SIGINT,
// which only close this process's fds: programs, maps and attachments stay, as a daemon's do.
// SIGHUP re-reads the JSON and installs it (one line {"reloaded":...}). --down removes the instance
// (detach in this namespace, unpin) and prints DataPlane.down's result.
//
// Run it with nsenter, not `ip netns exec`: the latter remounts /sys and hides /sys/fs/bpf.

import { readFileSync } from 'node:fs';
import { isLbError } from '../core/errors.js';
import { PATH_REQUESTS, type PathRequest } from '../core/data-path-choice.js';
import { choosePaths } from './data-paths.js';
import { DataPlane, type AttachResult, type XdpModeRequest } from './data-plane.js';
import { installConfig, readCtl, readGenerationRaw } from './generation.js';
import { EMPTY_SETTINGS, encodeGeneration, type EncodedGeneration, type GenerationConfig } from '../core/generation.js';
import { interfaceIndex } from './interfaces.js';
import type { Group, Listener, Settings } from '../core/abi.js';

/** The --config file: a GenerationConfig whose listeners name their interface. */
export interface AgentConfig {
  /** Interfaces that get XDP (ingress) and TC (egress): the client-facing ones. */
  interfaces: string[];
  settings?: Settings;
  listeners: Array<{ ifname: string; vip: string; port: number; proto: number } & Listener>;
  groups: Array<{ id: number } & Group>;
  srcRoutes?: Array<{ listenerId: number; addr: string; prefixLen: number; group: number }>;
}

interface Args { instance: string; config?: string; path: PathRequest; xdpMode: XdpModeRequest; down: boolean }

function usage(msg: string): never {
  process.stderr.write(`agent: ${msg}\nusage: agent --instance NAME (--config FILE.json [--path auto|xdp|tc] [--xdp-mode auto|native|generic] | --down)\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const a: Partial<Args> = { path: 'auto', xdpMode: 'auto', down: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case '--instance': a.instance = argv[++i]; break;
      case '--config': a.config = argv[++i]; break;
      case '--xdp-mode': {
        const m = argv[++i];
        if (m !== 'auto' && m !== 'native' && m !== 'generic') usage(`--xdp-mode takes auto, native or generic, got ${JSON.stringify(m)}`);
        a.xdpMode = m;
        break;
      }
      case '--path': {
        const p = argv[++i] as PathRequest;
        if (!PATH_REQUESTS.includes(p)) usage(`--path takes auto, xdp or tc, got ${JSON.stringify(p)}`);
        a.path = p;
        break;
      }
      case '--down': a.down = true; break;
      default: usage(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (!a.instance) usage('--instance NAME is required');
  if (!a.down && !a.config) usage('--config FILE.json is required');
  return a as Args;
}

/** Reads the JSON and resolves interface names in this network namespace. */
function readConfig(path: string): { interfaces: string[]; cfg: GenerationConfig } {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as AgentConfig;
  return {
    interfaces: raw.interfaces,
    cfg: {
      settings: raw.settings ?? EMPTY_SETTINGS,
      listeners: raw.listeners.map((l) => ({
        key: { ifindex: interfaceIndex(l.ifname), vip: l.vip, port: l.port, proto: l.proto },
        value: { listenerId: l.listenerId, defaultGroup: l.defaultGroup, flags: l.flags },
      })),
      groups: raw.groups.map((g) => ({ id: g.id, group: { targets: g.targets } })),
      srcRoutes: raw.srcRoutes ?? [],
    },
  };
}

/** Order-free text of a generation's entries; groups without targets are absent from the maps. */
function canonical(e: EncodedGeneration): string {
  const list = (entries: Array<[Buffer, Buffer]>): string[] => entries.map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
  const groups = e.groups.filter(([, v]) => v.readUInt32LE(0) > 0);
  return JSON.stringify([e.settings.toString('hex'), list(e.listeners), list(groups), list(e.srcRoutes)]);
}

/** Installs cfg unless the active generation holds exactly it. Returns whether it flipped. */
function ensureConfig(dp: DataPlane, cfg: GenerationConfig): { installed: boolean; activeGen: number } {
  const { activeGen } = readCtl(dp);
  if (canonical(readGenerationRaw(dp, activeGen)) === canonical(encodeGeneration(activeGen, cfg))) return { installed: false, activeGen };
  return { installed: true, activeGen: installConfig(dp, cfg) };
}

function say(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function errorText(err: unknown): string {
  if (isLbError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  if (args.down) {
    say({ down: true, ...DataPlane.down(args.instance) });
    return;
  }
  const { interfaces, cfg } = readConfig(args.config!);
  const dp = DataPlane.open({ instance: args.instance });
  const paths = choosePaths(interfaces, Object.fromEntries(interfaces.map((i) => [i, { path: args.path }])));
  const attached: AttachResult[] = interfaces.map((ifname) => dp.attach(ifname, { path: paths[ifname]!.path, xdpMode: args.xdpMode }));
  const tx = dp.syncTxPorts();
  const { installed, activeGen } = ensureConfig(dp, cfg);
  // Signal handlers first: a SIGHUP sent as soon as the ready line shows must not kill the process.
  process.on('SIGHUP', () => {
    try {
      say({ reloaded: true, ...ensureConfig(dp, readConfig(args.config!).cfg) });
    } catch (err) {
      say({ reloaded: false, error: errorText(err) });
    }
  });
  const keepAlive = setInterval(() => { /* the signal handlers do the work */ }, 1 << 30);
  const stop = (): void => {
    clearInterval(keepAlive);
    dp.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  const modes = [...new Set(attached.map((a) => a.xdpMode ?? 'none'))];
  say({
    ready: true, adopted: dp.adopted, xdpMode: modes.length === 1 ? modes[0] : modes.join(','), installed, activeGen, pid: process.pid,
    interfaces: attached.map((a) => ({ ifname: a.ifname, ifindex: a.ifindex, path: a.path, pathReason: paths[a.ifname]!.reason, xdpMode: a.xdpMode,
      xdpChanged: a.xdpChanged, tcChanged: a.tcChanged, ...(a.nativeError ? { nativeError: a.nativeError } : {}) })),
    txPorts: tx.ports.map((p) => p.ifname), txRefused: tx.refused,
  });
}

try {
  main();
} catch (err) {
  process.stderr.write(`agent: ${errorText(err)}\n`);
  process.exit(1);
}
