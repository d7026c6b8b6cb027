// Captures real ClientHellos from Node's tls and from `openssl s_client` on loopback, one hex file
// per client in test/fixtures/client-hello/, for the SNI parser's tests and its fuzz seeds.
// Run again after a Node or OpenSSL upgrade: `node scripts/capture-client-hellos.mjs`.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const OUT = new URL('../test/fixtures/client-hello/', import.meta.url);

/** Accepts one connection and resolves with its first TLS record (the hello fits one on these clients). */
function captureOnce(start) {
  return new Promise((resolve, reject) => {
    const server = net.createServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          sock.destroy();
          server.close();
          resolve(buf.subarray(0, 5 + buf.readUInt16BE(3)));
        }
      });
      sock.on('error', () => {});
    });
    server.listen(0, '127.0.0.1', () => start(server.address().port));
    setTimeout(() => { server.close(); reject(new Error('no hello within 10 s')); }, 10_000).unref();
  });
}

function node(name, options) {
  return [name, (port) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    s.on('error', () => {});
  }];
}

function openssl(name, args) {
  return [name, (port) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
    p.on('error', () => {});
    setTimeout(() => p.kill(), 5000).unref();
  }];
}

const clients = [
  node('node-sni', { servername: 'api.example.com' }),
  node('node-sni-mixed-case', { servername: 'Api.Example.COM' }),
  node('node-no-sni', { servername: '' }),
  node('node-tls12', { servername: 'www.example.com', maxVersion: 'TLSv1.2' }),
  node('node-alpn', { servername: 'deep.sub.example.com', ALPNProtocols: ['h2', 'http/1.1'] }),
  openssl('openssl-tls13', ['-servername', 'api.example.com', '-tls1_3']),
  openssl('openssl-tls12', ['-servername', 'www.example.com', '-tls1_2']),
  openssl('openssl-tls11', ['-servername', 'old.example.com', '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']),
  openssl('openssl-tls10', ['-servername', 'older.example.com', '-tls1', '-cipher', 'DEFAULT@SECLEVEL=0']),
  openssl('openssl-no-sni', ['-noservername']),
];

for (const [name, start] of clients) {
  const hello = await captureOnce(start);
  writeFileSync(new URL(`${name}.hex`, OUT), hello.toString('hex') + '\n');
  console.log(`${name}: ${hello.length} bytes`);
}
