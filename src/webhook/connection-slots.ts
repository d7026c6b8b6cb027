// The webhook receiver's connections: at most `max` at once, and each must have sent its request
// headers within `headersTimeoutMs`. At the cap, a new connection closes the OLDEST one rather than
// being turned away: a genuine delivery is sent within milliseconds of connecting, so to starve it
// a client must open `max` connections faster than one delivery is sent, not merely hold them.
// (Node's own headersTimeout is only enforced every connectionsCheckingInterval, 30 s by default.)

import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionSlotsOptions {
  max: number;
  headersTimeoutMs: number;
  /** Called for each connection closed to make room, or for sending its headers too slowly. */
  onShed?: (why: 'evicted' | 'headers_timeout') => void;
}

export class ConnectionSlots {
  private readonly opts: ConnectionSlotsOptions;
  /** Insertion order is connection order: the first entry is the oldest. */
  private readonly open = new Map<Socket, NodeJS.Timeout | undefined>();

  constructor(opts: ConnectionSlotsOptions) {
    if (!(Number.isSafeInteger(opts.max) && opts.max > 0)) throw new RangeError(`connection cap must be a positive integer, not ${opts.max}`);
    this.opts = opts;
  }

  get size(): number {
    return this.open.size;
  }

  /**
   * Watches `server`'s connections. server.maxConnections is the cap plus one: Node refuses a
   * connection beyond it before any handler runs, so the extra slot is where a newcomer stands
   * while the oldest connection is closed for it (socket.destroy() frees the slot at once).
   */
  attach(server: Server): void {
    server.maxConnections = this.opts.max + 1;
    server.on('connection', (socket: Socket) => this.admit(socket));
    server.on('request', (req: { socket: Socket }) => this.headersReceived(req.socket));
  }

  admit(socket: Socket): void {
    const timer = setTimeout(() => {
      if (!this.open.has(socket)) return;
      this.forget(socket);
      socket.destroy();
      this.opts.onShed?.('headers_timeout');
    }, this.opts.headersTimeoutMs);
    timer.unref();
    this.open.set(socket, timer);
    socket.once('close', () => this.forget(socket));
    while (this.open.size > this.opts.max) {
      const oldest = this.open.keys().next().value!;
      this.forget(oldest);
      oldest.destroy();
      this.opts.onShed?.('evicted');
    }
  }

  /** The request line and headers are in: the body has its own deadline from here. */
  headersReceived(socket: Socket): void {
    const timer = this.open.get(socket);
    if (timer !== undefined) clearTimeout(timer);
    if (this.open.has(socket)) this.open.set(socket, undefined);
  }

  private forget(socket: Socket): void {
    const timer = this.open.get(socket);
    if (timer !== undefined) clearTimeout(timer);
    this.open.delete(socket);
  }
}
