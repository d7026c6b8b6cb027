// The programs the examples test runs inside its namespaces, as Node scripts (`node -e`, so they
// need no build step), and the TypeScript that starts them and reads their answers:
//   - a backend server: one per backend address, listening on every port the config gives that
//     address, TCP (plain HTTP and TLS on the same port, told apart by the first byte, so health
//     checks of type http and https and TLS "passthrough" clients all work) and UDP;
//   - a DNS responder (A records from a JSON file re-read per query; SERVFAIL on request) on
//     127.0.0.1 of the LB namespace, the only server `lb daemon --dns-server` asks;
//   - a client that makes a batch of new connections (one per given source port, from a given
//     source address) and reports who answered.
// Every backend answers any HTTP path and any UDP datagram with "ADDR:PORT CLIENT_ADDR:CLIENT_PORT":
// the backend it is, and the client address it saw (the data plane rewrites only destinations).
// Every script exits when its stdin closes (the test process died) and every wait is bounded.
import { execFileSync } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManagedProcess, SeedTopology } from '../../../src/sandbox/index.js';
import { DNS_SCRIPT } from '../lib/runtime.js';

const SERVER_SCRIPT = `
const net = require('node:net');
const http = require('node:http');
const https = require('node:https');
const dgram = require('node:dgram');
const fs = require('node:fs');
const spec = JSON.parse(process.argv[1]);
const tls = { cert: fs.readFileSync(spec.cert), key: fs.readFileSync(spec.key) };
let pending = spec.listen.length * 2;
const fail = (what) => (e) => { process.stderr.write(what + ': ' + e.message + '\\n'); process.exit(1); };
const ready = () => { if (--pending === 0) process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + '\\n'); };
for (const { addr, port } of spec.listen) {
  const backend = addr + ':' + port;
  const handler = (req, res) => {
    req.resume();
    const s = req.socket;
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end(backend + ' ' + s.remoteAddress + ':' + s.remotePort + '\\n');
  };
  const plain = http.createServer(handler);
  const secure = https.createServer(tls, handler);
  for (const srv of [plain, secure]) srv.on('clientError', (e, s) => s.destroy());
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    // A TLS ClientHello starts with record type 22: hand the connection to the HTTPS server (which
    // reads what is buffered itself), else to the HTTP server (which needs the stream flowing).
    sock.once('data', (buf) => {
      sock.pause();
      sock.unshift(buf);
      if (buf[0] === 22) secure.emit('connection', sock);
      else { plain.emit('connection', sock); sock.resume(); }
    });
  });
  server.on('error', fail('tcp ' + backend));
  server.listen(port, addr, ready);
  const udp = dgram.createSocket('udp4');
  udp.on('error', fail('udp ' + backend));
  udp.on('message', (m, r) => udp.send(backend + ' ' + r.address + ':' + r.port + '\\n', r.port, r.address));
  udp.bind(port, addr, ready);
}
const bye = () => process.exit(0);
process.on('SIGTERM', bye);
process.stdin.on('end', bye);
process.stdin.on('error', bye);
process.stdin.resume();
`;

/** Self-signed certificate and key for the backends' TLS side (openssl; an EC key is quick to make). */
export function makeCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=lb-examples', '-keyout', key, '-out', cert], { stdio: 'ignore', timeout: 30_000 });
  return { cert, key };
}

/** Starts the backend server for `listen` in namespace `ns` and waits until every socket listens. */
export async function startServer(topo: SeedTopology, ns: string, listen: ReadonlyArray<{ addr: string; port: number }>,
  tls: { cert: string; key: string }): Promise<ManagedProcess> {
  const spec = JSON.stringify({ listen, ...tls });
  const proc = topo.spawnIn(ns, [process.execPath, '-e', SERVER_SCRIPT, spec], { label: `server ${listen.map((l) => `${l.addr}:${l.port}`).join(',')}` });
  await proc.waitForOutput(/"ready":true/, 15_000);
  return proc;
}

export type DnsMode = 'answer' | 'servfail';

/** The DNS responder on 127.0.0.1 of the LB namespace; its answers come from a JSON file. */
export class DnsServer {
  port = 0;
  constructor(readonly stateFile: string) {}

  async start(topo: SeedTopology, records: Record<string, string[]>): Promise<ManagedProcess> {
    this.set(records);
    const proc = topo.spawnIn(topo.lbNs, [process.execPath, '-e', DNS_SCRIPT, this.stateFile], { label: 'dns server' });
    this.port = Number((await proc.waitForOutput(/"ready":true,"port":(\d+)/, 10_000))[1]);
    return proc;
  }

  set(records: Record<string, string[]>, mode: DnsMode = 'answer'): void {
    writeFileSync(`${this.stateFile}.tmp`, JSON.stringify({ records, mode }));
    renameSync(`${this.stateFile}.tmp`, this.stateFile);
  }
}

const CLIENT_SCRIPT = `
const http = require('node:http');
const https = require('node:https');
const dgram = require('node:dgram');
const b = JSON.parse(process.argv[1]);
const deadline = Date.now() + b.totalMs;
const out = [];
const tcp = (localPort) => new Promise((resolve) => {
  let settled = false;
  const done = (o) => { if (!settled) { settled = true; out.push({ localPort, ...o }); resolve(); } };
  const mod = b.tls ? https : http;
  const req = mod.get({ host: b.host, port: b.port, path: b.path, localAddress: b.localAddress, localPort, agent: false, timeout: b.timeoutMs,
    rejectUnauthorized: false, ...(b.servername ? { servername: b.servername } : {}), headers: { connection: 'close' } }, (res) => {
    let body = '';
    const peer = res.socket.remoteAddress + ':' + res.socket.remotePort;
    res.setEncoding('utf8');
    res.on('data', (c) => { body += c; });
    res.on('end', () => done(res.statusCode === 200 ? { body: body.trim(), peer } : { error: 'HTTP ' + res.statusCode }));
    res.on('error', (e) => done({ error: e.message }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => done({ error: e.code || e.message }));
});
const udp = (localPort) => new Promise((resolve) => {
  const s = dgram.createSocket('udp4');
  let settled = false;
  const done = (o) => { if (!settled) { settled = true; clearTimeout(t); try { s.close(); } catch {} out.push({ localPort, ...o }); resolve(); } };
  const t = setTimeout(() => done({ error: 'no reply within ' + b.timeoutMs + ' ms' }), b.timeoutMs);
  s.on('error', (e) => done({ error: e.code || e.message }));
  s.on('message', (m, r) => done({ body: m.toString().trim(), peer: r.address + ':' + r.port }));
  s.bind(localPort, b.localAddress, () => s.send('hello', b.port, b.host));
});
let next = 0;
const worker = async () => { while (next < b.ports.length && Date.now() < deadline) await (b.proto === 'udp' ? udp : tcp)(b.ports[next++]); };
Promise.all(Array.from({ length: b.concurrency }, worker)).then(() => process.stdout.write(JSON.stringify(out)));
`;

export interface Batch {
  /** Where the client connects: a VIP, or the LB's address on the client's link. */
  host: string;
  port: number;
  proto: 'tcp' | 'udp';
  /** Source address (the client's own, or one of its extra addresses) and one source port per new connection. */
  localAddress: string;
  ports: readonly number[];
  /** TCP: speak TLS (the backends' certificate is not checked) and send this server name (SNI). */
  tls?: boolean;
  servername?: string;
  path?: string;
}

export interface Answer {
  localPort: number;
  /** The backend that answered ("ADDR:PORT"). */
  backend?: string;
  /** The client address:port the backend saw. */
  seenClient?: string;
  /** Where the answer came from, as the client saw it. */
  peer?: string;
  error?: string;
}

/** Runs one batch in a client namespace: a new connection (or UDP flow) per source port, 8 at a time, bounded in time. */
export async function runBatch(topo: SeedTopology, ns: string, batch: Batch, opts: { timeoutMs?: number; totalMs?: number } = {}): Promise<Answer[]> {
  const totalMs = opts.totalMs ?? 60_000;
  const spec = { ...batch, path: batch.path ?? '/', tls: batch.tls ?? false, concurrency: 8, timeoutMs: opts.timeoutMs ?? 3000, totalMs };
  const r = await topo.exec(ns, [process.execPath, '-e', CLIENT_SCRIPT, JSON.stringify(spec)], { timeoutMs: totalMs + 15_000 });
  const raw = JSON.parse(r.stdout) as Array<{ localPort: number; body?: string; peer?: string; error?: string }>;
  const answers = raw.map((a): Answer => {
    if (a.body === undefined) return { localPort: a.localPort, error: a.error ?? 'no answer' };
    const [backend, seenClient] = a.body.split(' ');
    return { localPort: a.localPort, backend: backend!, seenClient: seenClient!, peer: a.peer! };
  });
  for (let k = answers.length; k < batch.ports.length; k++) answers.push({ localPort: batch.ports[k]!, error: 'not attempted: the batch ran out of time' });
  return answers.sort((a, b) => a.localPort - b.localPort);
}
