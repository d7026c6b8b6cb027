// Loopback servers for the runtime's integration tests: an HTTP(S) backend whose /health status
// can be changed and which can be stopped and restarted on the same port, and a self-signed
// certificate made with openssl. Everything listens on 127.0.0.1 only.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestBackend {
  port: number;
  /** The status /health answers with. */
  healthStatus: number;
  /** Requests seen, by path. */
  hits: string[];
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

export async function startBackend(options: { tls?: { key: string; cert: string }; port?: number } = {}): Promise<TestBackend> {
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  const backend: TestBackend = {
    port: options.port ?? 0,
    healthStatus: 200,
    hits: [],
    stop: async () => {
      const s = server;
      server = null;
      if (!s) return;
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    restart: async () => {
      await listen();
    },
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    backend.hits.push(req.url ?? '');
    req.resume();
    if (req.url === '/health') res.writeHead(backend.healthStatus).end('health\n');
    else if (req.url === '/hang') { /* never answers: for timeouts */ }
    else res.writeHead(200).end('ok\n');
  };
  const listen = async (): Promise<void> => {
    const s = options.tls ? createHttpsServer(options.tls, handler) : createHttpServer(handler);
    s.on('connection', (sock: Socket) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(backend.port, '127.0.0.1', () => resolve());
    });
    backend.port = (s.address() as AddressInfo).port;
    server = s;
  };
  await listen();
  return backend;
}

/** A throwaway self-signed certificate for CN=backend.test (openssl must be installed). */
export function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lb-runtime-cert-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', '1', '-subj', '/CN=backend.test'], { stdio: 'ignore', timeout: 20_000 });
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A port on 127.0.0.1 that nothing listens on (bound, read, released). */
export async function closedPort(): Promise<number> {
  const s = createHttpServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
