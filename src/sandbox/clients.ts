// Clients that run inside a namespace: HTTP via curl, UDP via a short Node script, and bounded
// loops that count which backend answered. Each call is bounded in time; every loop is bounded
// in count and in total time.

import { SandboxError } from './process.js';
import { execIn, type ExecVia } from './topology.js';

export interface HttpGetOptions {
  /** Whole-request limit (curl --max-time). Default 5 s. */
  timeoutMs?: number;
  method?: string;
  headers?: Record<string, string>;
  via?: ExecVia;
}

export interface HttpResponse {
  status: number;
  body: string;
  /** The client's source port: with the addresses, the connection's 5-tuple (what the flow hash reads). */
  localPort: number;
}

/** What curl writes after the body (-w): the status and the source port, after a line break of its own. */
const TRAILER = '\n<lb-curl %{http_code} %{local_port}>';
const TRAILER_RE = /\n<lb-curl (\d{3}) (\d+)>$/;

// Proxies would send the request somewhere else than the sandbox host; never use one.
const NO_PROXY_ENV: NodeJS.ProcessEnv = (() => {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no|ftp)_proxy$/i.test(k)) delete env[k];
  return env;
})();

/**
 * One HTTP request with curl from inside `ns`. Resolves with any HTTP status; rejects when curl
 * fails (refused, timeout: the curl exit code is in the error's data).
 */
export async function httpGet(ns: string, url: string, opts: HttpGetOptions = {}): Promise<HttpResponse> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const argv = ['curl', '-sS', '--noproxy', '*', '--max-time', (timeoutMs / 1000).toFixed(3), '-o', '-', '-w', TRAILER];
  if (opts.method) argv.push('-X', opts.method);
  for (const [k, v] of Object.entries(opts.headers ?? {})) argv.push('-H', `${k}: ${v}`);
  argv.push('--', url);
  const r = await execIn(ns, argv, { timeoutMs: timeoutMs + 5000, env: NO_PROXY_ENV, allowFailure: true, ...(opts.via ? { via: opts.via } : {}) });
  if (r.code !== 0) {
    throw new SandboxError(`curl ${url} from ${ns} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim()}`, { ns, url, code: r.code, stderr: r.stderr });
  }
  const trailer = TRAILER_RE.exec(r.stdout);
  if (!trailer) throw new SandboxError(`curl ${url} from ${ns}: no status line after the body: ${JSON.stringify(r.stdout.slice(-200))}`, { ns, url });
  return { status: Number(trailer[1]), body: r.stdout.slice(0, trailer.index), localPort: Number(trailer[2]) };
}

export interface UdpRequestOptions {
  /** How long to wait for the reply. Default 2 s. */
  timeoutMs?: number;
  /** Local port to send from (a fixed 5-tuple); default an ephemeral port. */
  sourcePort?: number;
  via?: ExecVia;
}

export interface UdpReply {
  /** The first datagram received, or null when none came within the timeout. */
  reply: Buffer | null;
  /** Who sent it (as the client saw it: the VIP after reverse NAT). */
  from?: { address: string; port: number };
  /** The local port the request was sent from. */
  localPort: number;
}

const UDP_REQUEST_SCRIPT = `
const dgram = require('node:dgram');
const [host, port, payload, sport, timeoutMs] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const out = (o) => { process.stdout.write(JSON.stringify(o)); s.close(); };
s.on('error', (e) => { process.stderr.write(e.message); process.exit(1); });
s.bind(Number(sport), () => {
  const localPort = s.address().port;
  const t = setTimeout(() => out({ reply: null, localPort }), Number(timeoutMs));
  s.once('message', (m, r) => { clearTimeout(t); out({ reply: m.toString('base64'), address: r.address, port: r.port, localPort }); });
  s.send(Buffer.from(payload, 'base64'), Number(port), host);
});
`;

/** Sends one UDP datagram from inside `ns` and waits for the first reply. */
export async function udpRequest(ns: string, host: string, port: number, payload: string | Uint8Array,
  opts: UdpRequestOptions = {}): Promise<UdpReply> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const data = Buffer.from(typeof payload === 'string' ? Buffer.from(payload) : payload).toString('base64');
  const r = await execIn(ns, [process.execPath, '-e', UDP_REQUEST_SCRIPT, host, String(port), data, String(opts.sourcePort ?? 0), String(timeoutMs)],
    { timeoutMs: timeoutMs + 10_000, ...(opts.via ? { via: opts.via } : {}) });
  const o = JSON.parse(r.stdout) as { reply: string | null; address?: string; port?: number; localPort: number };
  return {
    reply: o.reply === null ? null : Buffer.from(o.reply, 'base64'),
    ...(o.address !== undefined && o.port !== undefined ? { from: { address: o.address, port: o.port } } : {}),
    localPort: o.localPort,
  };
}

export interface CountResult {
  /** Answers per backend name. */
  counts: Record<string, number>;
  /** Requests attempted (<= the count asked for when the total time ran out). */
  attempted: number;
  failures: number;
  /** The first few failure messages. */
  errors: string[];
}

export interface CountOptions {
  /** Upper bound on the whole loop; requests not started by then are not made. Default 60 s. */
  totalTimeoutMs?: number;
  /** Requests in flight at once. Default 1. */
  concurrency?: number;
}

/**
 * Runs `request(i)` for i < count (bounded by count and total time) and counts the names it
 * resolves with; rejections count as failures.
 */
export async function countAnswers(count: number, request: (i: number) => Promise<string>,
  opts: CountOptions = {}): Promise<CountResult> {
  if (!Number.isInteger(count) || count < 0 || count > 1_000_000) throw new SandboxError(`count must be 0..1000000, got ${count}`);
  const deadline = Date.now() + (opts.totalTimeoutMs ?? 60_000);
  const result: CountResult = { counts: {}, attempted: 0, failures: 0, errors: [] };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && Date.now() < deadline) {
      const i = next++;
      result.attempted++;
      try {
        const name = await request(i);
        result.counts[name] = (result.counts[name] ?? 0) + 1;
      } catch (err) {
        result.failures++;
        if (result.errors.length < 5) result.errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 1, count)) }, worker));
  return result;
}

/** An answered request: the backend that answered and the client's source port of its connection. */
export interface HttpAnswer { backend: string; localPort: number }

/**
 * `count` HTTP GETs (a new connection each) from `ns`, counted by the backend name in the body;
 * `answers` lists each answered one with its source port, in the order they came.
 */
export async function httpCountBackends(ns: string, url: string, count: number,
  opts: CountOptions & { timeoutMs?: number } = {}): Promise<CountResult & { answers: HttpAnswer[] }> {
  const answers: HttpAnswer[] = [];
  const counted = await countAnswers(count, async () => {
    const r = await httpGet(ns, url, { timeoutMs: opts.timeoutMs ?? 5000 });
    if (r.status !== 200) throw new SandboxError(`HTTP ${r.status}`);
    const backend = r.body.trim();
    answers.push({ backend, localPort: r.localPort });
    return backend;
  }, opts);
  return { ...counted, answers };
}

const UDP_COUNT_SCRIPT = `
const dgram = require('node:dgram');
const [host, port, count, timeoutMs, totalMs] = process.argv.slice(1).map((v, i) => i === 0 ? v : Number(v));
const deadline = Date.now() + totalMs;
const res = { counts: {}, attempted: 0, failures: 0, errors: [] };
const one = () => new Promise((resolve) => {
  const s = dgram.createSocket('udp4');
  let done = false;
  const finish = (name, err) => {
    if (done) return;
    done = true;
    clearTimeout(t);
    s.close();
    if (name !== null) res.counts[name] = (res.counts[name] || 0) + 1;
    else { res.failures++; if (res.errors.length < 5) res.errors.push(err); }
    resolve();
  };
  const t = setTimeout(() => finish(null, 'no reply within ' + timeoutMs + ' ms'), timeoutMs);
  s.on('error', (e) => finish(null, e.message));
  s.on('message', (m) => finish(m.toString().trim(), ''));
  s.send('hello', port, host);
});
(async () => {
  for (let i = 0; i < count && Date.now() < deadline; i++) { res.attempted++; await one(); }
  process.stdout.write(JSON.stringify(res));
})();
`;

/**
 * `count` UDP requests from `ns`, each from a fresh socket (a new source port, so a new flow),
 * counted by the backend name in the reply. Runs in one Node process inside the namespace.
 */
export async function udpCountBackends(ns: string, host: string, port: number, count: number,
  opts: { timeoutMs?: number; totalTimeoutMs?: number; via?: ExecVia } = {}): Promise<CountResult> {
  if (!Number.isInteger(count) || count < 0 || count > 100_000) throw new SandboxError(`count must be 0..100000, got ${count}`);
  const timeoutMs = opts.timeoutMs ?? 1000;
  const totalMs = opts.totalTimeoutMs ?? 60_000;
  const r = await execIn(ns, [process.execPath, '-e', UDP_COUNT_SCRIPT, host, String(port), String(count), String(timeoutMs), String(totalMs)],
    { timeoutMs: totalMs + timeoutMs + 10_000, ...(opts.via ? { via: opts.via } : {}) });
  return JSON.parse(r.stdout) as CountResult;
}
