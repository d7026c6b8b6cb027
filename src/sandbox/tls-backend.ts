// A TLS backend for the SNI tests and benchmark: serves its own certificate (so the certificate a
// client receives names the backend that answered), optionally reads a PROXY protocol v2 header
// first, then sends one JSON line {name, proxy} (the decoded header or null) and echoes every
// byte it receives until the client half-closes. Run inside a namespace:
//
//   node dist/src/sandbox/tls-backend.js --name api --port 9441 --cert F --key F [--bind 127.0.0.1]
//                                        [--proxy-v2] [--exit-with-parent]
//
// Prints {"ready":true,...} once listening.

import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { decodeProxyV2, type DecodedProxyV2 } from '../core/sni/proxy-v2.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => { const i = args.indexOf(`--${name}`); return i < 0 ? undefined : args[i + 1]; };
const name = opt('name') ?? 'backend';
const port = Number(opt('port') ?? 0);
const bind = opt('bind') ?? '127.0.0.1';
const proxyV2 = args.includes('--proxy-v2');
const context = tls.createSecureContext({ cert: readFileSync(opt('cert')!), key: readFileSync(opt('key')!) });

function serveTls(raw: Socket, proxy: DecodedProxyV2 | null): void {
  const s = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
  s.on('error', () => s.destroy());
  s.once('secure', () => {
    s.write(JSON.stringify({ name, proxy }) + '\n');
    s.pipe(s);
  });
}

const server = net.createServer({ allowHalfOpen: true }, (raw) => {
  raw.on('error', () => raw.destroy());
  if (!proxyV2) return serveTls(raw, null);
  let buf = Buffer.alloc(0);
  const onData = (d: Buffer): void => {
    buf = Buffer.concat([buf, d]);
    const header = decodeProxyV2(buf);
    if (!header) {
      if (buf.length > 4096) raw.destroy();
      return;
    }
    raw.off('data', onData);
    raw.pause();
    raw.unshift(buf.subarray(header.length));
    serveTls(raw, header);
  };
  raw.on('data', onData);
});
server.listen(port, bind, () => process.stdout.write(JSON.stringify({ ready: true, name, port: (server.address() as net.AddressInfo).port }) + '\n'));
const stop = (): void => { server.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (args.includes('--exit-with-parent')) { process.stdin.resume(); process.stdin.on('end', stop); }
