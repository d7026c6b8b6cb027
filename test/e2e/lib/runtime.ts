// Helpers for the runtime e2e tests (test/e2e/runtime-*.test.ts): the daemon follows a config file
// in a temp dir (`--config PATH`); these write that file and reconcile, read the runtime part of
// the status the way `lb status --format json` does, read the live weights from the pinned maps,
// send batches of HTTP requests through the VIP from a client namespace (each a new connection
// from a port never used before in the run), and run a tiny DNS responder on 127.0.0.1 of a
// namespace of the test's own (its answers set through a JSON file). Every wait is bounded.
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { controlRequest, controlSocketPath } from '../../../src/daemon/control-socket.js';
import { execIn, waitUntil, type ManagedProcess, type Topology } from '../../../src/sandbox/index.js';
import { readLive } from '../../../src/state/live.js';
import type { RuntimeStatus, TargetStatus } from '../../../src/runtime/status.js';
import { httpBatch, type BatchAnswer } from './clients.js';
import { lbStatus, type DaemonProcess } from './daemon.js';
import { instanceComplete, instanceDir } from '../../../src/dataplane/index.js';
import { liveWeights } from '../../../src/runtime/live-weights.js';

export { liveWeights };
import { runDir } from '../../../src/state/run-dir.js';
import { runCli } from '../../lib/cli.js';

/** Writes the config file atomically (the daemon watches it) and reconciles now, waiting for the outcome. */
export async function applyConfig(instance: string, file: string, text: string): Promise<Record<string, unknown>> {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
  const r = (await controlRequest(controlSocketPath(instance), 'reconcile', { wait: true }, { timeoutMs: 30_000 })) as { outcome: Record<string, unknown> };
  return r.outcome;
}

/** The runtime section of the status (as `lb status --format json` shows it under .status.runtime). */
export async function runtimeOf(instance: string): Promise<RuntimeStatus> {
  const s = await lbStatus(instance);
  const rt = s.status?.runtime;
  if (!rt) throw new Error(`no runtime section in the status of ${instance}`);
  return rt;
}

export function targetOf(rt: RuntimeStatus, targetId: string, group = 'default'): TargetStatus {
  const t = rt.targets.find((x) => x.targetId === targetId && x.group === group);
  if (!t) throw new Error(`no target ${targetId} in group ${group}: ${rt.targets.map((x) => x.targetId).join(', ')}`);
  return t;
}

/** The lb_tstats id of a backend in the live state. */
export function liveTargetId(instance: string, backend: string): number {
  if (!instanceComplete(instance)) throw new Error(`instance ${instance} is not (completely) loaded`);
  const id = readLive(instance).targetIds.get(backend);
  if (id === undefined) throw new Error(`no target id for ${backend}`);
  return id;
}

/**
 * The proxy `web` of the connection-events tests: the sandbox VIP on veth-c1:80 over the three
 * backends b1..b3 (10.202.N.2:8080), equal weights; `extra` adds lines to the proxy (indented).
 */
export function webProxy(vip: string, extra = ''): string {
  return `  - name: web
    listen: {interfaces: [veth-c1], port: 80, address: ${vip}}
    default-target:
      - {ip: 10.202.1.2, port: 8080, weight: 100}
      - {ip: 10.202.2.2, port: 8080, weight: 100}
      - {ip: 10.202.3.2, port: 8080, weight: 100}
${extra}`;
}

let nextPort = 20_000;

/** `count` GETs of http://VIP/ from the client namespace, each from a fresh source port. */
export async function requests(topo: Topology, count: number, opts: { path?: string; concurrency?: number } = {}): Promise<BatchAnswer[]> {
  const ports = Array.from({ length: count }, () => {
    nextPort = nextPort >= 60_000 ? 20_000 : nextPort + 1;
    return nextPort;
  });
  return httpBatch(topo.clients[0]!.ns, topo.vip, 80, opts.path ?? '/', ports, { concurrency: opts.concurrency ?? 8, timeoutMs: 2000, totalTimeoutMs: 30_000 });
}

/** Answers per backend name, and the failures. */
export function tally(answers: readonly BatchAnswer[]): { counts: Record<string, number>; failures: number; errors: string[] } {
  const counts: Record<string, number> = {};
  const errors: string[] = [];
  for (const a of answers) {
    if (a.name) counts[a.name] = (counts[a.name] ?? 0) + 1;
    else errors.push(a.error ?? 'no answer');
  }
  return { counts, failures: errors.length, errors };
}

/** A Node DNS responder answering A queries from a JSON state file (records, mode answer | servfail | drop). */
export const DNS_SCRIPT = `
const dgram = require('node:dgram');
const fs = require('node:fs');
const [stateFile] = process.argv.slice(1);
const sock = dgram.createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  let st = { records: {}, mode: 'answer' };
  try { st = JSON.parse(fs.readFileSync(stateFile, 'utf8')); } catch {}
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return;
  const labels = [];
  let off = 12;
  while (off < msg.length && msg[off] !== 0) { const n = msg[off]; labels.push(msg.toString('ascii', off + 1, off + 1 + n)); off += 1 + n; }
  if (off + 5 > msg.length) return;
  const qtype = msg.readUInt16BE(off + 1);
  const name = labels.join('.').toLowerCase();
  if (st.mode === 'drop') return;
  const addrs = st.records[name];
  const rcode = st.mode === 'servfail' ? 2 : addrs === undefined ? 3 : 0;
  const answers = rcode === 0 && qtype === 1 ? addrs : [];
  const h = Buffer.alloc(12);
  h.writeUInt16BE(msg.readUInt16BE(0), 0);
  h.writeUInt16BE(0x8000 | 0x0400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(answers.length, 6);
  const rrs = answers.map((a) => { const rr = Buffer.alloc(16); rr.writeUInt16BE(0xc00c, 0); rr.writeUInt16BE(1, 2); rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(1, 6); rr.writeUInt16BE(4, 10); a.split('.').forEach((p, i) => rr.writeUInt8(Number(p), 12 + i)); return rr; });
  sock.send(Buffer.concat([h, msg.subarray(12, off + 5), ...rrs]), rinfo.port, rinfo.address);
});
sock.bind(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ ready: true, port: sock.address().port }) + '\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

export type DnsMode = 'answer' | 'servfail' | 'drop';

/**
 * A DNS responder on 127.0.0.1 of the topology's namespace `where` (A records only; NXDOMAIN for
 * unknown names; servfail / drop on request). Its answers come from a JSON file re-read per query.
 */
export class NsDnsServer {
  proc: ManagedProcess | undefined;
  port = 0;
  constructor(readonly topo: Topology, readonly where: string, readonly stateFile: string) {}

  async start(records: Record<string, string[]>): Promise<void> {
    this.set(records, 'answer');
    this.proc = this.topo.spawnIn(this.where, [process.execPath, '-e', DNS_SCRIPT, this.stateFile], { via: 'nsenter', label: `dns server in ${this.where}` });
    const m = await this.proc.waitForOutput(/"ready":true,"port":(\d+)/, 10_000);
    this.port = Number(m[1]);
  }

  set(records: Record<string, string[]>, mode: DnsMode = 'answer'): void {
    writeFileSync(`${this.stateFile}.tmp`, JSON.stringify({ records, mode }));
    renameSync(`${this.stateFile}.tmp`, this.stateFile);
  }
}

const HOLD_SCRIPT = `
const http = require('node:http');
const [host, port, path, n] = process.argv.slice(1);
for (let k = 0; k < Number(n); k++) {
  const req = http.get({ host, port: Number(port), path, agent: false }, (res) => {
    let first = true;
    res.setEncoding('utf8');
    res.on('data', (c) => { if (first) { first = false; process.stdout.write(JSON.stringify({ k, name: c.split(' ')[0] }) + '\\n'); } });
    res.on('end', () => process.stdout.write(JSON.stringify({ k, end: true }) + '\\n'));
  });
  req.on('error', (e) => process.stdout.write(JSON.stringify({ k, error: e.message }) + '\\n'));
}
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/** `n` long-lived GETs of `path` (e.g. /stream?ms=30000) through the VIP, held by one process; resolves once each got its first line. */
export async function holdStreams(topo: Topology, n: number, path: string): Promise<{ proc: ManagedProcess; names: string[] }> {
  const proc = topo.spawnIn(topo.clients[0]!.ns, [process.execPath, '-e', HOLD_SCRIPT, topo.vip, '80', path, String(n)], { label: `${n} streams` });
  const events = (): Array<{ k: number; name?: string; error?: string }> =>
    proc.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { k: number; name?: string; error?: string });
  await waitUntil(() => {
    const errs = events().filter((e) => e.error);
    if (errs.length > 0) throw new Error(`streams failed: ${errs.map((e) => e.error).join('; ')}`);
    return events().filter((e) => e.name).length >= n;
  }, { timeoutMs: 15_000, intervalMs: 50, what: `${n} streams connected` });
  return { proc, names: events().filter((e) => e.name).map((e) => e.name!) };
}

const FROM_SCRIPT = `
const http = require('node:http');
const [host, port, list] = process.argv.slice(1);
const out = {};
Promise.all(list.split(',').map((addr) => new Promise((resolve) => {
  const req = http.get({ host, port: Number(port), path: '/', localAddress: addr, agent: false, timeout: 3000, headers: { connection: 'close' } }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c) => { body += c; });
    res.on('end', () => { out[addr] = body.trim(); resolve(); });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { out[addr] = 'error: ' + e.message; resolve(); });
}))).then(() => process.stdout.write(JSON.stringify(out)));
`;

/** One GET of http://VIP/ from each client address (bound with localAddress); address -> backend name or "error: ...". */
export async function requestsFrom(topo: Topology, addresses: readonly string[]): Promise<Record<string, string>> {
  const r = await execIn(topo.clients[0]!.ns, [process.execPath, '-e', FROM_SCRIPT, topo.vip, '80', addresses.join(',')], { timeoutMs: 30_000 });
  return JSON.parse(r.stdout) as Record<string, string>;
}

/**
 * The runtime e2e files' teardown, also after a failure: stop the daemon, `lb down` in the LB
 * namespace, remove the namespaces, the run directory and the temp dir; the sync fallbacks run
 * whatever the async steps did.
 */
export async function tearDownRuntimeSandbox(s: { daemon: DaemonProcess | undefined; topo: Topology | undefined; instance: string; root: string }): Promise<void> {
  try {
    if (s.daemon?.proc.running) await s.daemon.stop(5000);
    if (s.topo && existsSync(instanceDir(s.instance))) runCli(['--instance', s.instance, 'down'], { ns: s.topo.lbNs, timeoutMs: 30_000 });
    await s.topo?.destroy();
  } finally {
    s.daemon?.proc.killSync();
    s.topo?.destroySync();
    rmSync(runDir(s.instance), { recursive: true, force: true });
    if (s.root) rmSync(s.root, { recursive: true, force: true });
  }
}
