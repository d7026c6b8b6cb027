// The acceptor over the native front door (native/lb_door.c): the door accepts, reads each hello,
// connects, replays and relays; this side owns the rules and keeps the accounts, the same as the
// Node acceptor (acceptor.ts) does. It compiles the routing table the door decides from itself
// (native/door_table.c: the rules of src/core/sni/choose.ts, for hellos its fast reader takes),
// and hears those decisions in batches (DECIDED); every other hello it is asked about, and decides
// as the Node acceptor does: it parses it (src/core/sni/client-hello.ts), chooses the backend with
// the data plane's weights (src/core/sni/choose.ts) and writes the PROXY v2 header. Either way it
// counts per route and per backend and reports opens and ends to the event stream. Records go over
// the door's control socket (door-abi.ts), the ones a batch of input calls for written back as one.

import type { Socket } from 'node:net';
import { DEFAULT_MAX_HELLO_BYTES, MAX_HELLO_RECORDS, parseClientHello } from '../core/sni/client-hello.js';
import { chooseBackend, type RoutedListener } from '../core/sni/choose.js';
import { encodeProxyV2 } from '../core/sni/proxy-v2.js';
import type { SpliceListener } from '../core/sni/splice-table.js';
import type { AcceptorConn, AcceptorCounters, AcceptorEvents, AcceptorLimits, BackendLoad, KeptConn, RouteCounters } from './acceptor.js';
import { backendKey, backendLoad, closeReason, isKeptConn, keptConn, listenerFor, listenersByAddress, newCounters, reportEnd, restoreKept, routeCounters, routeKey, routedConn, seedBackendLoads } from './accounting.js';
import { DOOR_ABI, decodeRecords, encodeConfig, encodeMore, encodeReset, encodeRoute, encodeTable, encodeTableParts, type DecidedRecord, type DoorRecord } from './door-abi.js';

/** The door did not take this daemon's limits: another build (record version), to be replaced. */
export class DoorRefused extends Error {}

/** A connection the door was told to connect (or an earlier daemon was), until its end. */
interface Routed {
  info: AcceptorConn;
  route: RouteCounters;
  load: BackendLoad;
  /** Bytes of the replayed hello (up, before the relay's count). */
  replay: number;
  opened: boolean;
}

export interface DoorAcceptorOptions {
  /** The door's connection went away (the door died, or broke the protocol): the front door reconnects. */
  lost?(why: string): void;
}

export class DoorAcceptor {
  readonly counters: AcceptorCounters = newCounters();
  readonly routes = new Map<string, RouteCounters>();
  readonly backends = new Map<string, BackendLoad>();
  private byAddress = new Map<string, RoutedListener>();
  private readonly routed = new Map<bigint, Routed>();
  private socket: Socket | null = null;
  /** Bytes read and not yet a whole record. */
  private pending: Buffer = Buffer.alloc(0);
  /** Records to write at the end of this batch. */
  private out: Buffer[] = [];
  private closing = false;
  /** Waiting for the door's first STATS on the current connection (it took the limits). */
  private readyWaiters: Array<{ resolve(): void; reject(err: Error): void }> = [];
  private greeted = false;

  constructor(private limits: AcceptorLimits, private readonly events: AcceptorEvents = {}, private readonly opts: DoorAcceptorOptions = {}) {}

  /** Talks to the door over `socket` from now on (a new connection after a lost one, too): the limits first. */
  attach(socket: Socket): void {
    this.socket?.destroy();
    this.pending = Buffer.alloc(0);
    this.greeted = false;
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(socket, chunk));
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      // Before it took the limits: refused (another record version), for ready()'s caller to act on.
      if (!this.greeted) this.notReady(new DoorRefused('the native front door closed the connection before taking the limits (a door of another build?)'));
      else if (!this.closing) this.forgetRouted('the native front door closed its control socket');
    });
    socket.write(encodeConfig(this.doorConfig()));
    this.sendTable();
  }

  /**
   * The routing table to the door, in parts, after every change of the listeners, their weights or
   * the limits. One over MAX_TABLE goes as an empty one: the door then asks about every hello.
   */
  private sendTable(): void {
    if (!this.socket) return;
    const table = encodeTable([...this.byAddress.values()].map((r) => r.listener), this.limits.maxHelloBytes);
    for (const part of encodeTableParts(table ?? encodeTable([], this.limits.maxHelloBytes)!)) this.socket.write(part);
  }

  get attached(): boolean {
    return this.socket !== null;
  }

  /**
   * Resolves once the door has this daemon's limits (its first STATS on this connection comes
   * after it applied the first CONFIG: native/lb_door_abi.h); rejects after timeoutMs.
   */
  ready(timeoutMs = 5000): Promise<void> {
    if (this.greeted) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the native front door did not take the limits within ${timeoutMs} ms`)), timeoutMs);
      this.readyWaiters.push({
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      });
    });
  }

  /** A door of another build: nothing more it sends is read, and ready() fails with DoorRefused. */
  private refuse(why: string): void {
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
    this.notReady(new DoorRefused(why));
  }

  private notReady(err: Error): void {
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
  }

  /** The listeners to serve from now on; connections already routed keep their backend. */
  update(listeners: readonly SpliceListener[], limits?: Partial<AcceptorLimits>): void {
    this.byAddress = listenersByAddress(listeners);
    seedBackendLoads(this.backends, listeners);
    if (limits) {
      this.limits = { ...this.limits, ...limits };
      this.socket?.write(encodeConfig(this.doorConfig()));
    }
    this.sendTable();
  }

  /** Stops talking to the door; it keeps relaying, and keeps the ends for the next daemon. */
  close(): Promise<void> {
    this.closing = true;
    const s = this.socket;
    this.socket = null;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => {
      s.once('close', () => resolve());
      s.end();
      // A door that does not close its side is not waited for.
      setTimeout(() => { s.destroy(); }, 1000).unref();
    });
  }

  private doorConfig(): Parameters<typeof encodeConfig>[0] {
    const l = this.limits;
    return {
      helloTimeoutMs: l.helloTimeoutMs, connectTimeoutMs: l.connectTimeoutMs, idleTimeoutMs: l.idleTimeoutMs, maxConnections: l.maxConnections,
      // The stream bound: the hello's bytes plus a header for every record it may span.
      maxHelloStream: (l.maxHelloBytes || DEFAULT_MAX_HELLO_BYTES) + 4 + 5 * MAX_HELLO_RECORDS,
      spliceAfter: l.handOffBytes,
    };
  }

  /** The door broke the protocol or went away: what it held is no longer this daemon's to report. */
  private forgetRouted(why: string): void {
    for (const r of this.routed.values()) r.load.active--;
    this.routed.clear();
    this.opts.lost?.(why);
  }

  private read(socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    const buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let decoded: ReturnType<typeof decodeRecords>;
    try {
      decoded = decodeRecords(buf);
    } catch (err) {
      socket.destroy();
      this.socket = null;
      this.forgetRouted((err as Error).message);
      return;
    }
    // A partial record keeps its bytes (copied: the chunk's buffer is Node's to reuse).
    this.pending = decoded.next < buf.length ? Buffer.from(buf.subarray(decoded.next)) : Buffer.alloc(0);
    for (const r of decoded.records) {
      // The door's first record says its version (STATS); until it is checked nothing else is read.
      if (!this.greeted && r.type !== 'stats') {
        this.refuse('the native front door sent another record before its version (a door of another build?)');
        return;
      }
      this.handle(r);
      if (socket !== this.socket) return;
    }
    if (this.out.length > 0) {
      const batch = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
      this.out = [];
      socket.write(batch);
    }
    // A batch without a question is the door's timed batch (LB_DOOR_BATCH_MS): the connection
    // events it made go out as one now, in this wakeup, rather than in another after the events'
    // own wait. Hellos come one wakeup each: their events wait to be batched.
    if (!decoded.records.some((r) => r.type === 'hello')) this.events.flush?.();
  }

  private handle(r: DoorRecord): void {
    switch (r.type) {
      case 'hello': return this.decide(r);
      case 'opened': return this.opened(r.id, r.atNs);
      case 'failed': {
        const c = this.take(r.id);
        this.counters.connectFailed++;
        if (c) c.load.failed++;
        return;
      }
      case 'dropped': {
        this.take(r.id);
        return;
      }
      case 'ended': {
        const c = this.take(r.id);
        if (!c) return;
        const resetBy = r.by === 'client' ? 'rst-client' : r.by === 'backend' ? 'rst-backend' : undefined;
        reportEnd(this.events, c.info, c.route, c.replay, { up: r.up, down: r.down }, closeReason(r.reason, resetBy), r.atNs);
        return;
      }
      case 'decided': return this.decided(r);
      case 'held': return r.decided ? this.heldDecided(r.decided) : this.held(r.id, r.blob);
      case 'stats': {
        const s = r.stats;
        Object.assign(this.counters, { accepted: s.accepted, overLimit: s.overLimit, helloTimeout: s.helloTimeout, active: s.active, spliced: s.spliced });
        if (!this.greeted) {
          if (s.abi !== DOOR_ABI) {
            this.refuse(`the native front door running speaks record version ${s.abi}, this daemon ${DOOR_ABI}`);
            return;
          }
          this.greeted = true;
          for (const w of this.readyWaiters.splice(0)) w.resolve();
        }
        return;
      }
    }
  }

  /** A routed connection's end (or failure): no longer open at its backend. */
  private take(id: bigint): Routed | undefined {
    const c = this.routed.get(id);
    if (!c) return undefined;
    this.routed.delete(id);
    c.load.active--;
    return c;
  }

  private opened(id: bigint, atNs: bigint): void {
    const c = this.routed.get(id);
    if (!c || c.opened) return;
    c.opened = true;
    this.counters.relayed++;
    this.events.opened?.(c.info, atNs);
  }

  /**
   * A connection routed (by this side or by the door): counted for its route and backend, reported
   * routed, and followed until its end.
   */
  private admit(id: bigint, info: AcceptorConn, replay: number): void {
    const route = routeCounters(this.routes, routeKey(info));
    route.connections++;
    const backend = backendKey(info);
    this.events.routed?.({ proxy: info.proxy, group: info.route, serverName: info.serverName, backend });
    const load = backendLoad(this.backends, backend);
    load.attempts++;
    load.active++;
    this.routed.set(id, { info, route, load, replay, opened: false });
  }

  /** A connection the door decided from the table, as if this side had routed it. */
  private decided(r: DecidedRecord): void {
    if (this.routed.has(r.id)) return;
    this.counters.doorDecided++;
    this.admit(r.id, decidedInfo(r), r.replay);
  }

  /** A connection an earlier daemon routed, with the record it kept (held: JSON) or the door's (heldDecided). */
  private held(id: bigint, blob: Buffer): void {
    let rec: unknown;
    try {
      rec = JSON.parse(blob.toString('utf8'));
    } catch {
      return;
    }
    if (isKeptConn(rec)) this.adopt(id, rec);
  }

  private heldDecided(r: DecidedRecord): void {
    this.adopt(r.id, keptConn(decidedInfo(r), r.replay));
  }

  /** A connection routed before this daemon: counted open at its backend until its end comes. */
  private adopt(id: bigint, rec: KeptConn): void {
    if (this.routed.has(id)) return;
    const { info, route, load } = restoreKept(rec, this.routes, this.backends);
    this.counters.adopted++;
    load.active++;
    // Its open was reported by the daemon that routed it; OPENED follows only for one still connecting.
    this.routed.set(id, { info, route, load, replay: rec.replay, opened: false });
  }

  private decide(r: Extract<DoorRecord, { type: 'hello' }>): void {
    const routed = listenerFor(this.byAddress, r.localIp, r.localPort);
    if (!routed) {
      this.counters.noListener++;
      this.out.push(encodeReset(r.id));
      return;
    }
    const v = parseClientHello(r.bytes, this.limits.maxHelloBytes);
    let serverName: string | null = null;
    if (v.kind === 'hello') serverName = v.hello.serverName;
    else if ((v.kind === 'invalid' && v.oversize === true) || r.full) {
      this.counters.helloTooLarge++;
      this.out.push(encodeReset(r.id));
      return;
    } else if (v.kind === 'invalid' || r.eof) {
      // Not a readable TLS hello, or a client that half-closed before its hello was whole: routed without a name.
      this.counters.helloInvalid++;
    } else {
      this.out.push(encodeMore(r.id));
      return;
    }
    const conn = { clientIp: r.clientIp, clientPort: r.clientPort, localIp: r.localIp, localPort: r.localPort };
    const choice = chooseBackend(routed, conn, serverName);
    const backend = choice.backend;
    if (!backend) {
      this.counters.noBackend++;
      this.out.push(encodeReset(r.id));
      return;
    }
    const info = routedConn(routed.listener, choice.group, serverName, conn, backend, { ns: r.acceptedNs, ms: r.acceptedMs });
    this.admit(r.id, info, r.bytes.length);
    const header = backend.proxyProtocol ? encodeProxyV2(conn, serverName) : null;
    this.out.push(encodeRoute(r.id, backend.addr, backend.port, header, Buffer.from(JSON.stringify(keptConn(info, r.bytes.length)))));
  }
}

/** What a DECIDED record says of its connection, as the events name it. */
function decidedInfo(r: DecidedRecord): AcceptorConn {
  return {
    proxy: r.proxy, listener: r.listener, route: r.group, serverName: r.serverName,
    client: r.clientIp, clientPort: r.clientPort, vip: r.localIp, vipPort: r.localPort,
    backend: r.backendIp, backendPort: r.backendPort, acceptedNs: r.acceptedNs, acceptedMs: r.acceptedMs,
  };
}
