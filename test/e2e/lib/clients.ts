// Clients for the e2e tests, run inside a client namespace: curl with the address it talked to,
// a batch of HTTP requests from chosen source ports (one new connection each), and a long-lived
// HTTP stream whose every line is timestamped on arrival. Every call is bounded in time.
import { execIn, type ManagedProcess, type Topology } from '../../../src/sandbox/index.js';

const NO_PROXY_ENV: NodeJS.ProcessEnv = (() => {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no|ftp)_proxy$/i.test(k)) delete env[k];
  return env;
})();

export interface CurlResult { status: number; body: string; remoteIp: string; remotePort: number }

/** One curl request from `ns`; reports the peer address curl saw (%{remote_ip}). */
export async function curl(ns: string, url: string, timeoutMs = 5000): Promise<CurlResult> {
  const r = await execIn(ns, ['curl', '-sS', '--noproxy', '*', '--max-time', (timeoutMs / 1000).toFixed(3), '-o', '-',
    '-w', '\n%{http_code} %{remote_ip} %{remote_port}', '--', url], { timeoutMs: timeoutMs + 5000, env: NO_PROXY_ENV });
  const cut = r.stdout.lastIndexOf('\n');
  const [status, remoteIp, remotePort] = r.stdout.slice(cut + 1).split(' ');
  return { status: Number(status), body: r.stdout.slice(0, cut), remoteIp: remoteIp!, remotePort: Number(remotePort) };
}

export interface BatchAnswer { localPort: number; name?: string; remoteAddress?: string; error?: string }

const BATCH_SCRIPT = `
const http = require('node:http');
const [host, port, path, ports, concurrency, timeoutMs, totalMs] = process.argv.slice(1);
const list = ports.split(',').map(Number);
const deadline = Date.now() + Number(totalMs);
const out = [];
const one = (localPort) => new Promise((resolve) => {
  const done = (o) => { out.push({ localPort, ...o }); resolve(); };
  const req = http.get({ host, port: Number(port), path, localPort, agent: false, timeout: Number(timeoutMs),
    headers: { connection: 'close' } }, (res) => {
    let body = '';
    const remoteAddress = res.socket.remoteAddress;
    res.setEncoding('utf8');
    res.on('data', (c) => { body += c; });
    res.on('end', () => done(res.statusCode === 200 ? { name: body.trim(), remoteAddress } : { error: 'HTTP ' + res.statusCode }));
    res.on('error', (e) => done({ error: e.message }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => done({ error: e.message }));
});
let next = 0;
const worker = async () => { while (next < list.length && Date.now() < deadline) await one(list[next++]); };
Promise.all(Array.from({ length: Number(concurrency) }, worker)).then(() => process.stdout.write(JSON.stringify(out)));
`;

/**
 * GETs `path` once from each source port (a new connection each, so a new flow with a known
 * 5-tuple) and returns the backend name each answer carried. Bounded by `totalTimeoutMs`.
 */
export async function httpBatch(ns: string, host: string, port: number, path: string, localPorts: readonly number[],
  opts: { concurrency?: number; timeoutMs?: number; totalTimeoutMs?: number } = {}): Promise<BatchAnswer[]> {
  const total = opts.totalTimeoutMs ?? 30_000;
  const r = await execIn(ns, [process.execPath, '-e', BATCH_SCRIPT, host, String(port), path, localPorts.join(','),
    String(opts.concurrency ?? 8), String(opts.timeoutMs ?? 3000), String(total)], { timeoutMs: total + 10_000 });
  return (JSON.parse(r.stdout) as BatchAnswer[]).sort((a, b) => a.localPort - b.localPort);
}

const STREAM_SCRIPT = `
const http = require('node:http');
const [host, port, path, localPort] = process.argv.slice(1);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const req = http.get({ host, port: Number(port), path, localPort: Number(localPort), agent: false }, (res) => {
  say({ connected: true, status: res.statusCode, local: res.socket.localAddress + ':' + res.socket.localPort,
    remote: res.socket.remoteAddress + ':' + res.socket.remotePort });
  let buf = '';
  res.setEncoding('utf8');
  res.on('data', (c) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) { say({ t: Date.now(), line: buf.slice(0, i) }); buf = buf.slice(i + 1); }
  });
  res.on('end', () => { say({ end: true }); process.exit(0); });
  res.on('error', (e) => { say({ error: e.message }); process.exit(1); });
});
req.on('error', (e) => { say({ error: e.message }); process.exit(1); });
`;

export interface StreamLine { t: number; name: string; i: number }

/** A long-lived HTTP stream (backend-server /stream) read by a process in a client namespace. */
export class StreamClient {
  constructor(readonly proc: ManagedProcess) {}

  private events(): Array<Record<string, unknown>> {
    return this.proc.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Lines received so far: backend name, its counter, arrival time. */
  lines(): StreamLine[] {
    return this.events().filter((e) => typeof e.line === 'string').map((e) => {
      const [name, i] = (e.line as string).split(' ');
      return { t: e.t as number, name: name!, i: Number(i) };
    });
  }

  /** How many times the client connected (it never reconnects by itself), and any error. */
  connections(): number { return this.events().filter((e) => e.connected === true).length; }
  errors(): string[] { return this.events().filter((e) => typeof e.error === 'string').map((e) => e.error as string); }
  ended(): boolean { return this.events().some((e) => e.end === true); }
}

export function startStream(topo: Topology, client: string, host: string, port: number, path: string, localPort: number): StreamClient {
  return new StreamClient(topo.spawnIn(client, [process.execPath, '-e', STREAM_SCRIPT, host, String(port), path, String(localPort)],
    { label: `stream ${path} from ${client}` }));
}

/** Largest time between consecutive lines, and whether the counter ran without a hole. */
export function streamContinuity(lines: readonly StreamLine[]): { maxGapMs: number; contiguous: boolean; names: string[] } {
  let maxGapMs = 0;
  let contiguous = lines.length > 0 && lines[0]!.i === 0;
  for (let k = 1; k < lines.length; k++) {
    maxGapMs = Math.max(maxGapMs, lines[k]!.t - lines[k - 1]!.t);
    if (lines[k]!.i !== lines[k - 1]!.i + 1) contiguous = false;
  }
  return { maxGapMs, contiguous, names: [...new Set(lines.map((l) => l.name))] };
}

const KEEPALIVE_SCRIPT = `
const http = require('node:http');
const [host, port, path, localPort, gapMs, maxMs] = process.argv.slice(1);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const deadline = Date.now() + Number(maxMs);
let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
const one = () => new Promise((resolve) => {
  const req = http.get({ host, port: Number(port), path, agent, localPort: Number(localPort), timeout: 2000 }, (res) => {
    let body = '';
    const local = res.socket.localPort;
    res.setEncoding('utf8');
    res.on('data', (c) => { body += c; });
    res.on('end', () => { say(res.statusCode === 200 ? { t: Date.now(), name: body.trim(), local } : { t: Date.now(), error: 'HTTP ' + res.statusCode }); resolve(); });
    res.on('error', (e) => { say({ t: Date.now(), error: e.message }); resolve(); });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { say({ t: Date.now(), error: e.message }); resolve(); });
});
(async () => {
  while (!stopping && Date.now() < deadline) {
    await one();
    await new Promise((r) => setTimeout(r, Number(gapMs)));
  }
  say({ end: true });
  agent.destroy();
})();
`;

export interface KeepAliveAnswer { t: number; name?: string; local?: number; error?: string }

/**
 * HTTP requests one after another on one keep-alive connection from `localPort` (a request, a gap
 * of `gapMs`, the next), until stop() or `maxMs`. Every answer is a line: the backend's name and
 * the local port of the connection that carried it, or the error.
 */
export class KeepAliveClient {
  constructor(readonly proc: ManagedProcess) {}

  answers(): KeepAliveAnswer[] {
    return this.proc.stdout.split('\n').filter((l) => l.startsWith('{"t"')).map((l) => JSON.parse(l) as KeepAliveAnswer);
  }

  /** SIGTERM: the current request finishes, then the client exits (bounded by `timeoutMs`). */
  async stop(timeoutMs = 5000): Promise<void> {
    await this.proc.stop(timeoutMs);
  }
}

export function startKeepAlive(topo: Topology, client: string, host: string, port: number, path: string, localPort: number,
  opts: { gapMs?: number; maxMs?: number } = {}): KeepAliveClient {
  return new KeepAliveClient(topo.spawnIn(client, [process.execPath, '-e', KEEPALIVE_SCRIPT, host, String(port), path, String(localPort),
    String(opts.gapMs ?? 50), String(opts.maxMs ?? 60_000)], { label: `keep-alive ${path} from ${client}` }));
}

const IDLE_REQUEST_SCRIPT = `
const net = require('node:net');
const [host, port, localPort, maxMs] = process.argv.slice(1);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const s = net.connect({ host, port: Number(port), localPort: Number(localPort) });
let buf = '';
const timer = setTimeout(() => { say({ error: 'never finished' }); process.exit(1); }, Number(maxMs));
s.on('connect', () => { s.write('GET / HTTP/1.0\\r\\nHost: lb\\r\\n'); say({ connected: true }); });
process.on('SIGUSR2', () => s.write('\\r\\n'));
s.setEncoding('utf8');
s.on('data', (c) => { buf += c; });
s.on('end', () => {
  clearTimeout(timer);
  const m = /^HTTP\\/1\\.[01] (\\d+)[^]*?\\r\\n\\r\\n([^]*)$/.exec(buf);
  say(m && m[1] === '200' ? { name: m[2].trim() } : { error: 'answer: ' + JSON.stringify(buf.slice(0, 80)) });
  process.exit(0);
});
s.on('error', (e) => { clearTimeout(timer); say({ error: e.message }); process.exit(1); });
`;

/**
 * An established connection left idle: the request's first headers are sent at once, the rest
 * (and so the answer) only on finish(). Until then no packet of the connection crosses the
 * balancer, as with any idle keep-alive connection.
 */
export class IdleRequest {
  constructor(readonly proc: ManagedProcess) {}

  private events(): Array<Record<string, unknown>> {
    return this.proc.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  connected(): boolean { return this.events().some((e) => e.connected === true); }
  finish(): void { this.proc.child.kill('SIGUSR2'); }
  /** The backend's name, or the error; undefined until the answer came. */
  result(): { name?: string; error?: string } | undefined {
    return this.events().find((e) => typeof e.name === 'string' || typeof e.error === 'string') as { name?: string; error?: string } | undefined;
  }
}

export function startIdleRequest(topo: Topology, client: string, host: string, port: number, localPort: number, maxMs = 60_000): IdleRequest {
  return new IdleRequest(topo.spawnIn(client, [process.execPath, '-e', IDLE_REQUEST_SCRIPT, host, String(port), String(localPort), String(maxMs)],
    { label: `idle request from ${client}` }));
}
