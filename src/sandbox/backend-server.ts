// A backend for the sandbox: an HTTP server and a UDP echo that answer with the backend's name,
// so a client can tell which backend the load balancer picked. Run inside a namespace:
//
//   node dist/src/sandbox/backend-server.js --name b1 --http 8080 --udp 9000 [--bind 0.0.0.0]
//                                           [--exit-with-parent]
//
// It is plain compiled JavaScript (Node 20 cannot run .ts), so build first: `make build` or
// `npx tsc -p tsconfig.build.json`. This file imports only Node built-ins, so it also compiles alone.
//
// HTTP (every response carries `x-backend: NAME`):
//   GET /                 -> 200 "NAME\n" (any path not listed below answers the same)
//   GET /health           -> "ok NAME\n" with the current health status (200 unless changed)
//   POST /admin/health?code=503
//                         -> sets the status /health answers with (200..599), for health-check tests
//   GET /whoami           -> JSON {name, remoteAddress, remotePort, localAddress, localPort}:
//                            what the backend saw, e.g. the client's own address after DNAT
//   GET /stream?ms=5000   -> a line "NAME i\n" every 100 ms for ms (default 10 s, at most 120 s)
// UDP: each datagram is answered with "NAME\n"; a datagram starting with "whoami" gets the
// JSON above instead.
// Prints one JSON line {"ready":true,...} on stdout once both sockets listen. SIGTERM/SIGINT close
// them; --exit-with-parent also exits when stdin reaches EOF (the parent died).

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSocket } from 'node:dgram';
import { type AddressInfo, type Socket } from 'node:net';

interface Options {
  name: string;
  http: number;
  udp: number;
  bind: string;
  exitWithParent: boolean;
}

const STREAM_INTERVAL_MS = 100;
const STREAM_DEFAULT_MS = 10_000;
const STREAM_MAX_MS = 120_000;

function usage(msg: string): never {
  process.stderr.write(`backend-server: ${msg}\nusage: backend-server --name NAME --http PORT --udp PORT [--bind ADDR] [--exit-with-parent]\n`);
  process.exit(2);
}

function parsePort(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) usage(`${flag} needs a port (0..65535), got ${JSON.stringify(v)}`);
  return n;
}

function parseArgs(argv: string[]): Options {
  const o: Partial<Options> = { bind: '0.0.0.0', exitWithParent: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--name': o.name = argv[++i]; break;
      case '--http': o.http = parsePort(a, argv[++i]); break;
      case '--udp': o.udp = parsePort(a, argv[++i]); break;
      case '--bind': o.bind = argv[++i]; break;
      case '--exit-with-parent': o.exitWithParent = true; break;
      default: usage(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (!o.name || !/^[\w.-]{1,64}$/.test(o.name)) usage('--name NAME is required ([A-Za-z0-9_.-], at most 64)');
  if (o.http === undefined) usage('--http PORT is required');
  if (o.udp === undefined) usage('--udp PORT is required');
  return o as Options;
}

function whoami(name: string, remoteAddress: string | undefined, remotePort: number | undefined,
  localAddress: string | undefined, localPort: number | undefined): string {
  return JSON.stringify({ name, remoteAddress, remotePort, localAddress, localPort });
}

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  const { name } = opts;
  let healthStatus = 200;
  const sockets = new Set<Socket>();
  const streams = new Set<NodeJS.Timeout>();

  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://backend');
    res.setHeader('x-backend', name);
    req.resume(); // request bodies are not used
    if (url.pathname === '/health') {
      res.writeHead(healthStatus, { 'content-type': 'text/plain' }).end(`ok ${name}\n`);
    } else if (url.pathname === '/admin/health' && req.method === 'POST') {
      const code = Number(url.searchParams.get('code'));
      if (!Number.isInteger(code) || code < 200 || code > 599) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('code must be 200..599\n');
        return;
      }
      healthStatus = code;
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`health ${code}\n`);
    } else if (url.pathname === '/whoami') {
      const s = req.socket;
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(`${whoami(name, s.remoteAddress, s.remotePort, s.localAddress, s.localPort)}\n`);
    } else if (url.pathname === '/stream') {
      const requested = Number(url.searchParams.get('ms') ?? STREAM_DEFAULT_MS);
      const ms = Number.isFinite(requested) ? Math.max(0, Math.min(requested, STREAM_MAX_MS)) : STREAM_DEFAULT_MS;
      const lines = Math.max(1, Math.floor(ms / STREAM_INTERVAL_MS));
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      let i = 0;
      const timer = setInterval(() => {
        res.write(`${name} ${i}\n`);
        if (++i >= lines) { clearInterval(timer); streams.delete(timer); res.end(); }
      }, STREAM_INTERVAL_MS);
      streams.add(timer);
      res.on('close', () => { clearInterval(timer); streams.delete(timer); });
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name}\n`);
    }
  });
  http.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  http.keepAliveTimeout = 5_000;

  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    const reply = msg.subarray(0, 6).toString() === 'whoami'
      ? whoami(name, rinfo.address, rinfo.port, udp.address().address, udp.address().port)
      : name;
    udp.send(`${reply}\n`, rinfo.port, rinfo.address);
  });

  let closing = false;
  const shutdown = (code: number): void => {
    if (closing) return;
    closing = true;
    for (const t of streams) clearInterval(t);
    for (const s of sockets) s.destroy();
    http.close();
    udp.close();
    // Everything is closed; do not wait for stragglers.
    setTimeout(() => process.exit(code), 50).unref();
  };
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  if (opts.exitWithParent) {
    process.stdin.on('end', () => shutdown(0));
    process.stdin.on('error', () => shutdown(0));
    process.stdin.resume();
  }

  let pending = 2;
  const ready = (): void => {
    if (--pending > 0) return;
    const httpPort = (http.address() as AddressInfo).port;
    const udpPort = udp.address().port;
    process.stdout.write(`${JSON.stringify({ ready: true, name, http: httpPort, udp: udpPort, pid: process.pid })}\n`);
  };
  const fail = (what: string) => (err: Error): void => {
    process.stderr.write(`backend-server ${name}: ${what}: ${err.message}\n`);
    shutdown(1);
  };
  http.on('error', fail(`http ${opts.bind}:${opts.http}`));
  udp.on('error', fail(`udp ${opts.bind}:${opts.udp}`));
  http.listen(opts.http, opts.bind, ready);
  udp.bind(opts.udp, opts.bind, ready);
}

main();
