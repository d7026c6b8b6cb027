// The topology of the e2e tests that put `lb` in one namespace and its clients in another:
//
//   <client> (eth0 clientAddr/24) ──veth── (eth0 lbAddr/24) <lb>
//
// and its teardown, which runs also when a test failed: `lb down` in the LB namespace (it ends the
// SNI acceptor's socket holder, detaches and unpins), the namespaces, then whatever pins and run
// directory a failed `lb down` left.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { DataPlane, instanceDir } from '../../src/dataplane/index.js';
import { runDir } from '../../src/state/run-dir.js';
import { deleteNetns, runCli } from './cli.js';

const sh = (argv: string[]): string => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });

export interface LbClientPair { lb: string; client: string; lbAddr: string; clientAddr: string }

/** Creates both namespaces and the veth between them; `ipv6: false` turns IPv6 off in both (no DAD, no RS noise). */
export function createLbClientPair(p: LbClientPair, opts: { ipv6?: boolean } = {}): void {
  sh(['ip', 'netns', 'add', p.lb]);
  sh(['ip', 'netns', 'add', p.client]);
  sh(['ip', '-n', p.lb, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p.client]);
  for (const [ns, addr] of [[p.lb, p.lbAddr], [p.client, p.clientAddr]] as const) {
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    if (opts.ipv6 === false) sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
  }
}

/** `lb down` for the instance in the LB namespace, then the namespaces, pins and run directory, whatever failed before. */
export function destroyLbClientPair(p: LbClientPair, instance: string): void {
  try {
    if (existsSync(instanceDir(instance)) || existsSync(runDir(instance))) runCli(['--instance', instance, 'down'], { ns: p.lb, timeoutMs: 60_000 });
  } finally {
    deleteNetns(p.client);
    deleteNetns(p.lb);
    if (existsSync(instanceDir(instance))) DataPlane.down(instance);
    rmSync(runDir(instance), { recursive: true, force: true });
  }
}
