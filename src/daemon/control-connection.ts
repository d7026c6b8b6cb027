// One connection of the control socket: JSON request lines in, answer lines out, in order, with
// every buffer bounded. A client that pipelines requests and never reads the answers costs the
// daemon a few answers and one read chunk, not memory in proportion to what it sent:
// - reading pauses while `maxPendingRequests` requests wait for their answer;
// - answering pauses while the socket's write buffer is full (until 'drain'), and so does reading;
// - a connection gets `maxRequestsPerConnection` answers, then an error and the end;
// - a connection with no request in progress that moves no byte for `idleTimeoutMs` is closed
//   (a client that stopped reading makes no progress: its connection is idle too).

import type { Socket } from 'node:net';

export interface ControlLimits {
  /** Open connections at once; the server closes further ones at accept. */
  maxConnections: number;
  /** Requests read but not yet answered on one connection; reading pauses at this many. */
  maxPendingRequests: number;
  /** Requests one connection may make; the next one is answered with an error and the connection ends. */
  maxRequestsPerConnection: number;
  /** Longest request line, in characters. */
  maxLineChars: number;
  /** A connection with no request in progress and no byte moving for this long is closed. */
  idleTimeoutMs: number;
}

export const DEFAULT_CONTROL_LIMITS: ControlLimits = {
  maxConnections: 32,
  maxPendingRequests: 16,
  maxRequestsPerConnection: 10_000,
  maxLineChars: 64 * 1024,
  idleTimeoutMs: 60_000,
};

export type Answerer = (line: string) => Promise<Record<string, unknown>>;

const refusal = (message: string): string => `${JSON.stringify({ ok: false, error: { code: 'LB_DAEMON_CONTROL', message } })}\n`;

export class ControlConnection {
  private buffer = '';
  private readonly queue: string[] = [];
  private taken = 0;
  /** The per-connection request cap was reached: no more lines are taken. */
  private exhausted = false;
  /** The pump runs: answering, or waiting for the write buffer to drain. */
  private pumping = false;
  /** A command handler runs: the idle timer does not close the connection meanwhile. */
  private handling = false;

  constructor(private readonly socket: Socket, private readonly answer: Answerer, private readonly limits: ControlLimits) {
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.setTimeout(limits.idleTimeoutMs, () => {
      if (!this.handling) socket.destroy();
    });
    socket.on('data', (chunk: string) => this.onData(chunk));
  }

  private onData(chunk: string): void {
    if (this.exhausted) return; // what still arrives after the cap is not read
    this.buffer += chunk;
    this.takeLines();
    if (!this.exhausted && this.queue.length < this.limits.maxPendingRequests
      && this.buffer.length > this.limits.maxLineChars && !this.buffer.includes('\n')) {
      this.queue.length = 0;
      this.buffer = '';
      this.socket.end(refusal(`request line longer than ${this.limits.maxLineChars} bytes`));
      return;
    }
    void this.pump();
  }

  /** Moves complete lines from the read buffer to the queue, up to the limits; pauses reading at them. */
  private takeLines(): void {
    let nl: number;
    while (!this.exhausted && this.queue.length < this.limits.maxPendingRequests && (nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line === '') continue;
      if (this.taken >= this.limits.maxRequestsPerConnection) {
        this.exhausted = true;
        this.buffer = '';
        break;
      }
      this.taken += 1;
      this.queue.push(line);
    }
    if (this.exhausted || this.queue.length >= this.limits.maxPendingRequests) this.socket.pause();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let line = this.queue.shift(); line !== undefined && !this.socket.destroyed; line = this.queue.shift()) {
        this.handling = true;
        let answer: Record<string, unknown>;
        try {
          answer = await this.answer(line);
        } finally {
          this.handling = false;
        }
        if (this.socket.destroyed) return;
        if (!this.socket.write(`${JSON.stringify(answer)}\n`)) await drainedOrClosed(this.socket);
        this.takeLines();
      }
      if (this.socket.destroyed) return;
      if (this.exhausted) {
        this.socket.end(refusal(`more than ${this.limits.maxRequestsPerConnection} requests on one connection; connect again`));
        return;
      }
      this.socket.resume();
    } finally {
      this.pumping = false;
    }
  }
}

function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
