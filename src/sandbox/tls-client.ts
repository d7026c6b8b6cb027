// A TLS client for the SNI tests and benchmark, run inside a client namespace. Opens `count`
// connections (`concurrency` at a time), each: handshake with `servername` (none when empty),
// read the backend's JSON line, optionally send `bytes` bytes and read the echo, half-close.
// Prints one JSON document: per connection the certificate's CN, the line, and for a transfer
// whether the echo's SHA-256 equals what was sent.
//
//   node dist/src/sandbox/tls-client.js --host VIP --port 443 [--servername NAME] [--count 1]
//        [--concurrency 1] [--bytes 0] [--split-hello] [--timeout-ms 10000] [--until-file PATH]
//        [--pace-ms 0]
//
// --split-hello writes the ClientHello one byte per TCP segment (TCP_NODELAY, a pause between).
// --until-file: opens connections back to back until PATH exists (at most `count`), each result
// with the wall-clock time it started (`startedAt`), for connections opened across a restart.
// --pace-ms: a pause of that many ms after each 64 KiB block sent (a stream that lasts).
// The bytes sent are 64 KiB blocks numbered in their first 8 bytes, so a block lost, repeated or
// reordered changes the echo's SHA-256.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';

const args = process.argv.slice(2);
const opt = (n: string, d: string): string => { const i = args.indexOf(`--${n}`); return i < 0 ? d : args[i + 1]!; };
const host = opt('host', '127.0.0.1');
const port = Number(opt('port', '443'));
const servername = opt('servername', '');
const count = Number(opt('count', '1'));
const concurrency = Number(opt('concurrency', '1'));
const bytes = Number(opt('bytes', '0'));
const split = args.includes('--split-hello');
const timeoutMs = Number(opt('timeout-ms', '10000'));
const untilFile = opt('until-file', '');
const paceMs = Number(opt('pace-ms', '0'));

export interface ClientResult { cn?: string; line?: { name: string; proxy: unknown }; echoOk?: boolean; echoed?: number; error?: string; localPort?: number; startedAt?: number }

/** A socket whose first write goes out one byte per segment. */
function splitting(sock: net.Socket): Duplex {
  let first = true;
  const d = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (!first) { sock.write(chunk, cb); return; }
      first = false;
      // The stream API takes a callback, not a promise: the paced loop reports through cb.
      void (async () => {
        for (const b of chunk) {
          sock.write(Buffer.from([b]));
          await new Promise((r) => setTimeout(r, 1));
        }
      })().then(() => cb(), cb);
    },
    final(cb) { sock.end(); cb(); },
    read() { sock.resume(); },
  });
  sock.on('data', (c) => { if (!d.push(c)) sock.pause(); });
  sock.on('end', () => d.push(null));
  sock.on('error', (e) => d.destroy(e));
  return d;
}

function one(): Promise<ClientResult> {
  return new Promise((resolve) => {
    const result: ClientResult = { startedAt: Date.now() };
    const raw = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => { result.error = 'timeout'; raw.destroy(); resolve(result); }, timeoutMs);
    const done = (): void => { clearTimeout(timer); raw.destroy(); resolve(result); };
    raw.once('connect', () => {
      result.localPort = raw.localPort;
      const s = tls.connect({ socket: split ? splitting(raw) : raw, ...(servername ? { servername } : {}), rejectUnauthorized: false });
      s.on('error', (e) => { result.error = e.message; done(); });
      let buf = Buffer.alloc(0);
      const sent = createHash('sha256');
      const got = createHash('sha256');
      let echoed = 0;
      s.once('secureConnect', () => {
        const cert = s.getPeerCertificate();
        result.cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : String(cert.subject?.CN);
      });
      s.on('data', (d: Buffer) => {
        if (!result.line) {
          buf = Buffer.concat([buf, d]);
          const nl = buf.indexOf(10);
          if (nl < 0) return;
          result.line = JSON.parse(buf.subarray(0, nl).toString()) as ClientResult['line'];
          d = buf.subarray(nl + 1);
          if (bytes === 0) { s.end(); return; }
          const block = Buffer.alloc(64 * 1024);
          for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
          let left = bytes;
          let seq = 0n;
          const pump = (): void => {
            while (left > 0) {
              const n = Math.min(left, block.length);
              block.writeBigUInt64LE(seq++, 0);
              const piece = Buffer.from(block.subarray(0, n));
              sent.update(piece);
              left -= n;
              if (!s.write(piece)) { s.once('drain', paceMs > 0 ? () => setTimeout(pump, paceMs) : pump); return; }
              if (paceMs > 0 && left > 0) { setTimeout(pump, paceMs); return; }
            }
            s.end();
          };
          pump();
        }
        if (d.length > 0) { got.update(d); echoed += d.length; }
      });
      s.on('end', () => {
        if (bytes > 0) { result.echoed = echoed; result.echoOk = echoed === bytes && sent.digest('hex') === got.digest('hex'); }
        done();
      });
    });
    raw.on('error', (e) => { result.error ??= e.message; done(); });
  });
}

async function main(): Promise<void> {
  const results: ClientResult[] = [];
  let next = 0;
  const more = (): boolean => next < count && (untilFile === '' || !existsSync(untilFile));
  const worker = async (): Promise<void> => { while (more()) { next++; results.push(await one()); } };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  process.stdout.write(JSON.stringify({ results }) + '\n');
}
void main();
