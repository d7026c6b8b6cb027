// Clients and a backend sink for the packets e2e test (ICMP errors, path MTU, fragments): each runs
// as its own Node process inside a namespace of the test's topology, bounded in time, and prints
// one JSON line. Real sockets only: the kernel of the client namespace decides what the
// application sees (ECONNREFUSED, a reassembled datagram, a lowered path MTU).
import { execIn, type ManagedProcess, type Topology } from '../../../src/sandbox/index.js';

/**
 * HTTP that answers a POST with the number of body bytes it received; UDP that echoes datagrams,
 * except `to:<port>`, which makes it send one datagram to that port of the sender's address instead
 * (a reply arriving after the client closed its socket).
 */
const SINK_SCRIPT = `
const http = require('node:http');
const dgram = require('node:dgram');
const [httpPort, udpPort] = process.argv.slice(1).map(Number);
const srv = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (c) => { n += c.length; });
  req.on('end', () => res.end(String(n)));
});
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => {
  const to = /^to:(\\d+)$/.exec(m.toString());
  if (to) u.send('late reply', Number(to[1]), r.address);
  else u.send(m, r.port, r.address);
});
srv.listen(httpPort, '0.0.0.0', () => u.bind(udpPort, '0.0.0.0', () => process.stdout.write('{"ready":true}\\n')));
`;

export async function startSink(topo: Topology, backend: string, httpPort: number, udpPort: number): Promise<ManagedProcess> {
  const p = topo.spawnIn(backend, [process.execPath, '-e', SINK_SCRIPT, String(httpPort), String(udpPort)], { label: `sink in ${backend}` });
  await p.waitForOutput(/"ready":true/, 10_000);
  return p;
}

const UPLOAD_SCRIPT = `
const http = require('node:http');
const [host, port, count, size, timeoutMs] = process.argv.slice(1);
const body = Buffer.alloc(Number(size), 0x61);
const one = () => new Promise((resolve) => {
  const req = http.request({ host, port: Number(port), method: 'POST', path: '/upload', agent: false,
    headers: { 'content-length': body.length, connection: 'close' } }, (res) => {
    let got = '';
    res.setEncoding('utf8');
    res.on('data', (c) => { got += c; });
    res.on('end', () => resolve(got === String(body.length) ? 'ok' : 'short: ' + got));
    res.on('error', (e) => resolve(e.message));
  });
  req.setTimeout(Number(timeoutMs), () => req.destroy(new Error('timed out')));
  req.on('error', (e) => resolve(e.message));
  req.end(body);
});
(async () => {
  const results = [];
  for (let i = 0; i < Number(count); i++) results.push(await one());
  process.stdout.write(JSON.stringify(results));
})();
`;

/** `count` POSTs of `size` bytes, one connection each, one after the other: 'ok' or why not, per upload. */
export async function uploads(ns: string, host: string, port: number, count: number, size: number, timeoutMs: number): Promise<string[]> {
  const r = await execIn(ns, [process.execPath, '-e', UPLOAD_SCRIPT, host, String(port), String(count), String(size), String(timeoutMs)],
    { timeoutMs: count * timeoutMs + 10_000 });
  return JSON.parse(r.stdout) as string[];
}

const UDP_ECHO_SCRIPT = `
const dgram = require('node:dgram');
const [host, port, count, size, timeoutMs] = process.argv.slice(1);
const one = (i) => new Promise((resolve) => {
  const s = dgram.createSocket('udp4');
  const payload = Buffer.alloc(Number(size), i + 1);
  const done = (o) => { clearTimeout(t); s.close(); resolve(o); };
  const t = setTimeout(() => done({ error: 'no reply' }), Number(timeoutMs));
  s.on('error', (e) => done({ error: e.code || e.message }));
  s.on('message', (m, r) => done({ bytes: m.length, same: m.equals(payload), address: r.address, port: r.port }));
  s.send(payload, Number(port), host);
});
(async () => {
  const out = [];
  for (let i = 0; i < Number(count); i++) out.push(await one(i));
  process.stdout.write(JSON.stringify(out));
})();
`;

export interface EchoResult { bytes?: number; same?: boolean; address?: string; port?: number; error?: string }

/** `count` datagrams of `size` bytes to an echo service, each from a fresh socket, one after the other. */
export async function udpEchoes(ns: string, host: string, port: number, count: number, size: number, timeoutMs: number): Promise<EchoResult[]> {
  const r = await execIn(ns, [process.execPath, '-e', UDP_ECHO_SCRIPT, host, String(port), String(count), String(size), String(timeoutMs)],
    { timeoutMs: count * timeoutMs + 10_000 });
  return JSON.parse(r.stdout) as EchoResult[];
}

const UDP_REFUSED_SCRIPT = `
const dgram = require('node:dgram');
const [host, port, tries, gapMs] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
let sent = 0;
let timer;
const out = (o) => { clearTimeout(timer); process.stdout.write(JSON.stringify(o)); s.close(); };
s.on('error', (e) => out({ code: e.code, syscall: e.syscall, sent }));
s.on('message', () => out({ code: 'reply', sent }));
const next = () => {
  if (sent >= Number(tries)) return out({ code: 'nothing', sent });
  sent++;
  s.send('anyone?');
  timer = setTimeout(next, Number(gapMs));
};
s.connect(Number(port), host, next);
`;

/**
 * A connected UDP socket sends up to `tries` datagrams (one per `gapMs`) and reports the first
 * thing it gets: an error code (ECONNREFUSED when an ICMP port unreachable matched it), 'reply', or
 * 'nothing'.
 */
export async function udpConnectedProbe(ns: string, host: string, port: number, tries: number, gapMs: number): Promise<{ code: string; sent: number }> {
  const r = await execIn(ns, [process.execPath, '-e', UDP_REFUSED_SCRIPT, host, String(port), String(tries), String(gapMs)],
    { timeoutMs: tries * gapMs + 10_000 });
  return JSON.parse(r.stdout) as { code: string; sent: number };
}

/** Hops of `traceroute -n`: hop number -> the address that answered (null for '*'). */
export async function traceroute(ns: string, host: string, udpPort: number, maxHops: number): Promise<Map<number, string | null>> {
  const r = await execIn(ns, ['traceroute', '-n', '-U', '-p', String(udpPort), '-q', '1', '-N', '1', '-w', '2', '-m', String(maxHops), host],
    { timeoutMs: maxHops * 3000 + 10_000 });
  const hops = new Map<number, string | null>();
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)/.exec(line);
    if (m) hops.set(Number(m[1]), m[2] === '*' ? null : m[2]!);
  }
  return hops;
}

const LATE_REPLY_SCRIPT = `
const dgram = require('node:dgram');
const [host, port, timeoutMs] = process.argv.slice(1);
const fail = (what) => { process.stderr.write(what); process.exit(1); };
const a = dgram.createSocket('udp4');
const t = setTimeout(() => fail('no echo'), Number(timeoutMs));
a.on('error', (e) => fail(e.message));
a.on('message', () => {
  clearTimeout(t);
  const closedPort = a.address().port;
  a.close(() => {
    const b = dgram.createSocket('udp4');
    b.send('to:' + closedPort, Number(port), host, (err) => {
      if (err) fail(err.message);
      process.stdout.write(JSON.stringify({ closedPort }));
      b.close();
    });
  });
});
a.send('hello', Number(port), host);
`;

/**
 * Opens a UDP flow to the echo service (one datagram and its echo), closes the socket, and asks
 * the service (from another socket) to send one more datagram to the closed port: the client's
 * kernel answers it with an ICMP port unreachable addressed to the VIP.
 */
export async function lateReplyToClosedPort(ns: string, host: string, port: number, timeoutMs: number): Promise<{ closedPort: number }> {
  const r = await execIn(ns, [process.execPath, '-e', LATE_REPLY_SCRIPT, host, String(port), String(timeoutMs)], { timeoutMs: timeoutMs + 10_000 });
  return JSON.parse(r.stdout) as { closedPort: number };
}

/** The Icmp counters of /proc/net/snmp in a namespace (InDestUnreachs, OutDestUnreachs, InCsumErrors, ...). */
export async function icmpCounters(ns: string): Promise<Record<string, number>> {
  const r = await execIn(ns, ['cat', '/proc/net/snmp'], { timeoutMs: 10_000 });
  const [names, values] = r.stdout.split('\n').filter((l) => l.startsWith('Icmp: '));
  if (!names || !values) throw new Error('no Icmp lines in /proc/net/snmp');
  const keys = names.split(/\s+/).slice(1);
  const nums = values.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, nums[i] ?? NaN]));
}
