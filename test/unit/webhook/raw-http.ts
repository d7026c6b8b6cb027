// Raw HTTP/1.1 over a loopback socket, for the tests that must send headers without a body, stall
// a body, or see exactly when the server closes.

import { connect, type Socket } from 'node:net';

export interface RawConnection {
  socket: Socket;
  /** Resolves with everything the server sent once it closed the connection (bounded). */
  closed: Promise<string>;
}

/** Opens a connection and writes `first` once connected. */
export function rawConnection(port: number, first: string | Buffer, timeoutMs = 10_000): RawConnection {
  const chunks: Buffer[] = [];
  const socket = connect(port, '127.0.0.1');
  const closed = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got: ${Buffer.concat(chunks).toString()}`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
  // Written now (queued until connected), so that later writes follow it in order.
  socket.write(first);
  return { socket, closed };
}

/** Request headers of a POST with a declared length. */
export function postHead(path: string, headers: Record<string, string>, contentLength: number): string {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${lines}Content-Length: ${contentLength}\r\n\r\n`;
}

/** Polls `cond` every 10 ms, at most `tries` times; true once it holds. */
export async function eventually(cond: () => boolean, tries = 500): Promise<boolean> {
  for (let i = 0; i < tries && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  return cond();
}
