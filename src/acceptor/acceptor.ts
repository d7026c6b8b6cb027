// The user-space acceptor: one listening socket (on loopback; lb_sk_lookup hands it the SYNs of
// every steered VIP:port, and an accepted socket keeps the VIP:port as its local address). Per
// connection: read the ClientHello within a deadline and a size bound, choose the backend
// (src/core/sni/choose.ts: the data plane's weights and hash), connect, send a PROXY v2 header when
// the backend wants one, replay the bytes read, then relay. Counters for each bound and outcome.

import net, { type Server, type Socket } from 'node:net';
import { DEFAULT_MAX_HELLO_BYTES, MAX_HELLO_RECORDS, parseClientHello } from '../core/sni/client-hello.js';
import { chooseBackend, type RoutedListener } from '../core/sni/choose.js';
import { encodeProxyV2 } from '../core/sni/proxy-v2.js';
import type { SpliceListener } from '../core/sni/splice-table.js';
import type { AcceptorConnNames } from '../observe/events/conn-batch.js';
import { Deadlines } from './deadlines.js';
import { randomBytes } from 'node:crypto';
import { relay, type Relay, type RelayCounts, type RelayEnd } from './relay.js';
import type { SplicedPair, Splicer } from './splice.js';
import { inheritNoDelay } from './listener-options.js';
import type { PairKeeper, RelayedEnd } from './pair-keeper.js';
import { handOff } from './hand-off.js';
import { backendLoad, closeReason, isKeptConn, keptConn, listenerFor, listenersByAddress, newCounters, reportEnd, restoreKept, routeCounters, routedConn, seedBackendLoads } from './accounting.js';

export interface AcceptorLimits {
  /** Time a client has to send its whole ClientHello (slowloris bound). */
  helloTimeoutMs: number;
  maxHelloBytes: number;
  /** Connections held at once (reading a hello, connecting or relaying); more are closed at accept. */
  maxConnections: number;
  connectTimeoutMs: number;
  /** No byte either way for this long resets both sides (settings.connection-timeout-sec). */
  idleTimeoutMs: number;
  /**
   * With the splice relay (the pair keeper): Node relays a pair first and hands it to the keeper
   * once it moved this many bytes both ways, or lived handOffAfterMs, or the daemon stops; 0
   * hands every pair over right after its hello. A hand-off costs a fixed ~0.5 ms of CPU, Node's
   * relay a few us per KB: short connections (a TLS handshake and a small exchange) are cheaper
   * in Node, long ones in the keeper (docs/sni.md, "Which pairs go to the keeper").
   */
  handOffBytes: number;
  handOffAfterMs: number;
}

export const DEFAULT_LIMITS: AcceptorLimits = {
  helloTimeoutMs: 10_000, maxHelloBytes: DEFAULT_MAX_HELLO_BYTES, maxConnections: 10_000, connectTimeoutMs: 5_000, idleTimeoutMs: 300_000,
  handOffBytes: 64 * 1024, handOffAfterMs: 1000,
};

export interface AcceptorCounters {
  accepted: number;
  overLimit: number;
  helloTimeout: number;
  helloTooLarge: number;
  /** Not a readable TLS hello: routed as a connection without a name. */
  helloInvalid: number;
  noListener: number;
  noBackend: number;
  connectFailed: number;
  relayed: number;
  /** Relayed in the kernel (the splice relay in the pair keeper, or lb_splice), a subset of relayed. */
  spliced: number;
  /** Pairs a previous daemon left with the pair keeper, counted and reported by this one. */
  adopted: number;
  /** Hand-offs to the keeper put off: Node's writes to a pair did not reach the kernel in time (a peer not reading). */
  handOffDeferred: number;
  /** Connections the native door decided from the daemon's table (a subset of those routed; the daemon decided the rest). */
  doorDecided: number;
  active: number;
}

export interface RouteCounters { connections: number; bytesUp: number; bytesDown: number }

/**
 * One backend's load through the acceptor, cumulative since the daemon started (the data plane's
 * lb_tstats do not see these connections): what the breaker and least-connections add to the
 * kernel's counts (runtime-sampler.ts).
 */
export interface BackendLoad {
  /** Connections attempted to it (a new flow). */
  attempts: number;
  /** Attempts that failed to connect (refused, unreachable, the connect timeout). */
  failed: number;
  /** Connections to it open now (connecting or relaying). */
  active: number;
}

/** A relayed connection as the event stream names it (src/acceptor/conn-events.ts), and when it was accepted. */
export interface AcceptorConn extends AcceptorConnNames {
  /** When the client's connection was accepted: CLOCK_MONOTONIC ns and wall-clock ms. */
  acceptedNs: bigint; acceptedMs: number;
}

export type AcceptorCloseReason = 'fin' | 'rst-client' | 'rst-backend' | 'idle-timeout';

/** What the acceptor records with a pair the keeper holds, to relay it again after a restart. */
export interface KeptConn {
  info: Omit<AcceptorConn, 'acceptedNs'> & { acceptedNs: string };
  /** "proxy\u0000group" (Acceptor.routes) and "addr:port" (Acceptor.backends). */
  routeKey: string;
  backendKey: string;
  /** Bytes of the hello replayed before the relay started. */
  replay: number;
  /** With the splice relay: bytes up (after the hello) and down the daemon relayed before the hand-off. */
  up?: number;
  down?: number;
}

/**
 * A relay's end: bytes each way (up: client to backend) and why; `atNs` (CLOCK_MONOTONIC) when it
 * happened, if that was before the report (the native door reports in batches).
 */
export interface AcceptorEnd { up: number; down: number; reason: AcceptorCloseReason; atNs?: bigint }

export interface AcceptorEvents {
  /** Every connection routed to a backend (tests and logs). */
  routed?(e: { proxy: string; group: string; serverName: string | null; backend: string }): void;
  /** The backend accepted the connection and the relay starts (`atNs`: when, if before the report). */
  opened?(c: AcceptorConn, atNs?: bigint): void;
  /** The relay ended: bytes each way (up: client to backend) and why. */
  closed?(c: AcceptorConn, end: AcceptorEnd): void;
  /** Publishes records that wait for their batch (the daemon, before its event stream stops). */
  flush?(): void;
}

export class Acceptor {
  readonly counters: AcceptorCounters = newCounters();
  /** "proxy\u0000group" -> counts. */
  readonly routes = new Map<string, RouteCounters>();
  /** "addr:port" -> load, over every proxy. */
  readonly backends = new Map<string, BackendLoad>();
  private readonly server: Server;
  private byAddress = new Map<string, RoutedListener>();
  private readonly open = new Set<Socket>();
  /** The relays running now, to leave kept pairs to the next daemon on close(). */
  private readonly relays = new Set<{ detach(): boolean }>();
  /** The sockmap relay (splice.ts); null: not used. */
  splicer: Splicer | null = null;
  /** The splice relay: pairs handed to the pair keeper, which relays them (pipe-relay.ts); null: not used. */
  private keeper: PairKeeper | null = null;
  /** Pairs the keeper relays: id -> what their end is reported with. */
  private readonly handed = new Map<string, Handed>();
  /** Pairs Node relays until they go to the keeper (handOffBytes, handOffAfterMs), oldest first. */
  private readonly nodeFirst = new Map<Relay, NodeFirst>();
  private endsTimer: NodeJS.Timeout | undefined;
  /** Ids unique across daemons (the keeper outlives this one): a random prefix and a sequence. */
  private readonly idPrefix = randomBytes(6).toString('hex');
  private seq = 0;
  /** Clients still sending their hello, and backends still connecting: one timer each, not one per connection. */
  private readonly helloDeadlines: Deadlines<Socket>;
  private readonly connectDeadlines: Deadlines<Socket>;

  constructor(private limits: AcceptorLimits = DEFAULT_LIMITS, private readonly events: AcceptorEvents = {}) {
    this.helloDeadlines = new Deadlines(limits.helloTimeoutMs, (client) => {
      this.counters.helloTimeout++;
      // Only the hello reader listens for data before the relay.
      client.removeAllListeners('data');
      client.resetAndDestroy();
    });
    this.connectDeadlines = new Deadlines(limits.connectTimeoutMs, (upstream) => upstream.destroy(new Error('connect timeout')));
    // noDelay on the client's side too (the backend's is set at connect): a relayed TLS flight is
    // several small writes, and Nagle would hold one behind the client's delayed ACK. Set on the
    // listening socket once it listens (inherited), per connection only if that fails.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (s) => this.accept(s));
    this.server.maxConnections = limits.maxConnections;
    this.server.on('drop', () => { this.counters.overLimit++; });
  }

  /**
   * Listens on 127.0.0.1 (an ephemeral port: nothing connects to it directly), or on a listening
   * socket taken over from a previous daemon (`fd`), and returns the socket's fd.
   */
  async listen(fd?: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      const where = fd === undefined ? { host: '127.0.0.1', port: 0 } : { fd };
      this.server.listen({ ...where, backlog: 4096 }, () => { this.server.off('error', reject); resolve(); });
    });
    const own = (this.server as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof own !== 'number' || own < 0) throw new Error('the acceptor socket has no file descriptor');
    // Accepted sockets inherit the listener's TCP_NODELAY: no setNoDelay per connection.
    // (net.Server reads its noDelay option from this property at each connection.)
    if (inheritNoDelay(own)) (this.server as unknown as { noDelay: boolean }).noDelay = false;
    return own;
  }

  /** The listeners to serve from now on; connections already routed keep their backend. */
  update(listeners: readonly SpliceListener[], limits?: Partial<AcceptorLimits>): void {
    this.byAddress = listenersByAddress(listeners);
    seedBackendLoads(this.backends, listeners);
    if (limits) {
      this.limits = { ...this.limits, ...limits };
      this.server.maxConnections = this.limits.maxConnections;
      this.helloDeadlines.setTimeout(this.limits.helloTimeoutMs);
      this.connectDeadlines.setTimeout(this.limits.connectTimeoutMs);
    }
  }

  /**
   * Stops. Pairs the keeper holds stay spliced for the next daemon (their sockets here close
   * without ending them); every other connection is closed.
   */
  async close(): Promise<void> {
    // Pairs Node relays go to the keeper too, to outlive this daemon like those it has.
    await this.handOverAll();
    // Pairs the keeper relays go on without this daemon; the next one reports their ends.
    this.detachKeeper();
    this.helloDeadlines.clear();
    this.connectDeadlines.clear();
    for (const r of this.relays) r.detach();
    for (const s of this.open) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Relays with the splice relay from now on: each pair goes to `keeper` (right after its hello
   * with handOffBytes 0, else once Node relayed it for handOffBytes or handOffAfterMs, or at
   * close), and the keeper's reports of ends are read every ENDS_POLL_MS.
   */
  useKeeperRelay(keeper: PairKeeper): void {
    this.keeper = keeper;
    clearInterval(this.endsTimer);
    this.endsTimer = setInterval(() => {
      this.takeEnds();
      this.handOverOld();
    }, ENDS_POLL_MS);
    this.endsTimer.unref();
  }

  /** Hands the pairs Node relayed for handOffAfterMs to the keeper (oldest first: the map's order). */
  private handOverOld(): void {
    const now = Date.now();
    const due = now - this.limits.handOffAfterMs;
    for (const p of this.nodeFirst.values()) {
      if (p.since > due) return;
      if (p.nextTry <= now) void this.handOver(p);
    }
  }

  /**
   * Gives a pair Node relays to the keeper (relay.ts release, hand-off.ts), waiting at most
   * `waitMs` for Node's writes to reach the kernel. A pair that could not go (a peer that reads
   * nothing, a keeper that does not take it) is tried again by the look at old pairs, after a
   * backoff that doubles up to RETRY_MAX_MS.
   */
  private handOver(p: NodeFirst, waitMs = HAND_OVER_WAIT_MS): Promise<boolean> {
    p.handing ??= this.tryHandOver(p, waitMs).finally(() => { p.handing = null; });
    return p.handing;
  }

  private async tryHandOver(p: NodeFirst, waitMs: number): Promise<boolean> {
    const keeper = this.keeper;
    if (!keeper || !this.nodeFirst.has(p.relay)) return false;
    const id = `${this.idPrefix}.${++this.seq}`;
    let counts = { up: 0, down: 0 };
    const given = await p.relay.release(() => handOff(p.client, p.backend, (fds) => {
      counts = { ...p.relay.counts };
      return keeper.relay(id, fds, this.limits.idleTimeoutMs, { ...p.rec, up: counts.up, down: counts.down });
    }) !== null, waitMs);
    if (!given) {
      // Still Node's (not ended meanwhile): tried again later.
      if (this.nodeFirst.has(p.relay)) {
        this.counters.handOffDeferred++;
        p.backoffMs = Math.min(p.backoffMs * 2 || ENDS_POLL_MS, RETRY_MAX_MS);
        p.nextTry = Date.now() + p.backoffMs;
      }
      return false;
    }
    this.nodeFirst.delete(p.relay);
    this.relays.delete(p.relay);
    this.handedOver(id, p, counts);
    return true;
  }

  /** The pair is the keeper's: counted open until its end comes (Node's sockets closed here ended nothing). */
  private handedOver(id: string, p: { rec: KeptConn; info: AcceptorConn; route: RouteCounters; load: BackendLoad }, counts: RelayCounts): void {
    this.counters.active++;
    p.load.active++;
    this.counters.spliced++;
    this.handed.set(id, { info: p.info, route: p.route, replay: p.rec.replay, up: counts.up, down: counts.down, load: p.load });
  }

  /**
   * At close: every pair Node relays goes to the keeper, each given up to HAND_OVER_AT_CLOSE_MS
   * for Node's writes to drain (a release already under way is waited for, and its pair tried
   * again); the pairs left are closed with Node.
   */
  private async handOverAll(): Promise<void> {
    if (!this.keeper) return;
    for (let round = 0; round < 2 && this.nodeFirst.size > 0; round++) {
      await Promise.all([...this.nodeFirst.values()].map((p) => this.handOver(p, HAND_OVER_AT_CLOSE_MS)));
    }
  }

  /** Reports the ends the keeper sent (now: tests). */
  takeEnds(): void {
    if (!this.keeper) return;
    for (const e of this.keeper.takeEnds()) this.relayedEnded(e);
  }

  /**
   * Reports the ends the keeper sent, and no later one: the keeper keeps those for the next daemon
   * (the daemon, before it stops its event stream). Pairs still go to the keeper. An end the keeper
   * sent and this daemon did not read before closing the connection would be lost.
   */
  detachKeeper(): void {
    clearInterval(this.endsTimer);
    if (!this.keeper) return;
    for (const e of this.keeper.detach()) this.relayedEnded(e);
  }

  /** A pair the keeper relays (handed over by a previous daemon): counted as open until its end comes. */
  adoptRelayed(id: string, rec: KeptConn): void {
    if (this.handed.has(id)) return;
    const { info, route, load } = this.restore(rec);
    this.counters.adopted++;
    this.counters.active++;
    load.active++;
    // Its end is reported once, here: with what the daemon that opened it wrote itself.
    this.handed.set(id, { info, route, replay: rec.replay, up: rec.up ?? 0, down: rec.down ?? 0, load });
  }

  private relayedEnded(e: RelayedEnd): void {
    let h = this.handed.get(e.id);
    if (!h) {
      // Ended before this daemon listed it (between two daemons): reported from the keeper's record.
      if (!isKeptConn(e.rec)) return;
      const rec = e.rec;
      this.adoptRelayed(e.id, rec);
      h = this.handed.get(e.id)!;
    }
    this.handed.delete(e.id);
    this.counters.active--;
    h.load.active--;
    const resetBy: AcceptorCloseReason | undefined = e.by === 'client' ? 'rst-client' : e.by === 'backend' ? 'rst-backend' : undefined;
    reportEnd(this.events, h.info, h.route, h.replay, { up: h.up + e.up, down: h.down + e.down }, closeReason(e.reason, resetBy));
  }

  /** The acceptor's entries for a pair a previous daemon opened (its record). */
  private restore(rec: KeptConn): { info: AcceptorConn; route: RouteCounters; load: BackendLoad } {
    return restoreKept(rec, this.routes, this.backends);
  }

  /** Accounts for a relay that ended and reports it. */
  private ended(info: AcceptorConn, route: RouteCounters, replay: number, counts: RelayCounts, reason: RelayEnd, resetBy: AcceptorCloseReason | undefined): void {
    reportEnd(this.events, info, route, replay, counts, closeReason(reason, resetBy));
  }

  /**
   * Relays a pair a previous daemon spliced and left with the pair keeper (`pair`: re-learnt by
   * Splicer.adopt on new sockets of its descriptors), as if this acceptor had connected it.
   */
  adopt(client: Socket, backend: Socket, pair: SplicedPair, rec: KeptConn): void {
    const { info, route, load } = this.restore(rec);
    this.counters.adopted++;
    this.counters.active++;
    load.active++;
    for (const s of [client, backend]) {
      this.open.add(s);
      s.once('close', () => this.open.delete(s));
    }
    client.once('close', () => { this.counters.active--; });
    backend.once('close', () => { load.active--; });
    let resetBy: AcceptorCloseReason | undefined;
    client.once('error', () => { resetBy ??= 'rst-client'; });
    backend.once('error', () => { resetBy ??= 'rst-backend'; });
    // The replayed hello was counted by the daemon that opened the pair; the kernel's counts run on.
    const r = relay(client, backend, this.limits.idleTimeoutMs, (counts, reason) => {
      this.relays.delete(r);
      this.ended(info, route, 0, counts, reason, resetBy);
    }, this.splicer, { adopted: pair });
    this.relays.add(r);
  }

  private accept(client: Socket): void {
    const accepted = { ns: process.hrtime.bigint(), ms: Date.now() };
    // Node's maxConnections counts the sockets this process holds; pairs the keeper relays count too.
    if (this.handed.size > 0 && this.counters.active >= this.limits.maxConnections) {
      this.counters.overLimit++;
      client.resetAndDestroy();
      return;
    }
    this.counters.accepted++;
    this.counters.active++;
    this.open.add(client);
    client.once('close', () => {
      this.open.delete(client);
      this.helloDeadlines.delete(client);
      this.counters.active--;
    });
    client.on('error', () => client.destroy());
    const routed = listenerFor(this.byAddress, client.localAddress ?? '', client.localPort ?? 0);
    if (!routed) {
      this.counters.noListener++;
      client.resetAndDestroy();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    // The stream bound: the hello's bytes plus a header for every record it may span.
    const maxStream = this.limits.maxHelloBytes + 4 + 5 * MAX_HELLO_RECORDS;
    this.helloDeadlines.add(client);
    const decide = (serverName: string | null): void => {
      this.helloDeadlines.delete(client);
      client.removeListener('data', onData);
      client.removeListener('end', onEnd);
      client.pause();
      // onData keeps the bytes in one chunk: replayed as read, not copied again.
      this.connect(routed, client, chunks[0] ?? Buffer.alloc(0), serverName, accepted);
    };
    const onData = (d: Buffer): void => {
      chunks.push(d);
      size += d.length;
      const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      if (chunks.length > 1) chunks.splice(0, chunks.length, bytes);
      const v = parseClientHello(bytes, this.limits.maxHelloBytes);
      if (v.kind === 'hello') return decide(v.hello.serverName);
      if (v.kind === 'invalid' && !v.oversize) {
        this.counters.helloInvalid++;
        return decide(null);
      }
      if (v.kind === 'invalid' || size > maxStream) {
        this.counters.helloTooLarge++;
        this.helloDeadlines.delete(client);
        client.removeListener('data', onData);
        client.resetAndDestroy();
      }
    };
    // A client that half-closes before its hello is whole sent all it will: route it without a name.
    const onEnd = (): void => { this.counters.helloInvalid++; decide(null); };
    client.on('data', onData);
    client.once('end', onEnd);
  }

  private connect(routed: RoutedListener, client: Socket, replay: Buffer, serverName: string | null, accepted: { ns: bigint; ms: number }): void {
    const conn = { clientIp: client.remoteAddress ?? '0.0.0.0', clientPort: client.remotePort ?? 0, localIp: client.localAddress ?? '0.0.0.0', localPort: client.localPort ?? 0 };
    const choice = chooseBackend(routed, conn, serverName);
    const proxy = routed.listener.proxy;
    if (!choice.backend || client.destroyed) {
      if (!choice.backend) this.counters.noBackend++;
      client.resetAndDestroy();
      return;
    }
    const backend = choice.backend;
    const key = `${proxy}\u0000${choice.group}`;
    const route = routeCounters(this.routes, key);
    route.connections++;
    this.events.routed?.({ proxy, group: choice.group, serverName, backend: `${backend.addr}:${backend.port}` });
    const upstream = net.connect({ host: backend.addr, port: backend.port, allowHalfOpen: true, noDelay: true });
    const backendKey = `${backend.addr}:${backend.port}`;
    const load = backendLoad(this.backends, backendKey);
    load.attempts++;
    load.active++;
    this.open.add(upstream);
    upstream.once('close', () => {
      this.open.delete(upstream);
      this.connectDeadlines.delete(upstream);
      load.active--;
    });
    this.connectDeadlines.add(upstream);
    const onConnectError = (): void => {
      this.counters.connectFailed++;
      load.failed++;
      client.resetAndDestroy();
    };
    upstream.once('error', onConnectError);
    upstream.once('connect', () => {
      upstream.off('error', onConnectError);
      this.connectDeadlines.delete(upstream);
      if (backend.proxyProtocol) upstream.write(encodeProxyV2(conn, serverName));
      if (replay.length > 0) upstream.write(replay);
      this.counters.relayed++;
      const info = routedConn(routed.listener, choice.group, serverName, conn, backend, accepted);
      this.events.opened?.(info);
      // The relay says "reset"; which side sent it is the side whose socket failed first (these
      // listeners run before the relay's, which resets the other side).
      let resetBy: AcceptorCloseReason | undefined;
      client.once('error', () => { resetBy ??= 'rst-client'; });
      upstream.once('error', () => { resetBy ??= 'rst-backend'; });
      const rec = keptConn(info, replay.length);
      const keeper = this.keeper;
      if (keeper && this.limits.handOffBytes === 0) {
        const id = `${this.idPrefix}.${++this.seq}`;
        const handed = handOff(client, upstream, (fds, moved) => keeper.relay(id, fds, this.limits.idleTimeoutMs, { ...rec, ...moved }));
        if (handed) {
          this.handedOver(id, { rec, info, route, load }, handed);
          return;
        }
      }
      // With the keeper: Node relays the pair until it is worth a hand-off (handOffBytes, handOffAfterMs).
      const later = keeper !== null && this.limits.handOffBytes > 0;
      const r = relay(client, upstream, this.limits.idleTimeoutMs, (counts, reason) => {
        this.relays.delete(r);
        this.nodeFirst.delete(r);
        this.ended(info, route, replay.length, counts, reason, resetBy);
      }, this.splicer, later ? { rec, handOffAt: this.limits.handOffBytes, onBytes: () => { if (p) void this.handOver(p); } } : { rec });
      this.relays.add(r);
      const p: NodeFirst | undefined = later ? { relay: r, client, backend: upstream, since: Date.now(), nextTry: 0, backoffMs: 0, handing: null, rec, info, route, load } : undefined;
      if (p) this.nodeFirst.set(r, p);
      if (r.spliced) this.counters.spliced++;
      // The client's FIN came with (or right after) its hello, before the pipe was there to pass it on.
      if (client.readableEnded) upstream.end();
      client.resume();
    });
  }
}

/** How often the keeper's reports of relayed pairs' ends are read (and old pairs in Node handed over). */
const ENDS_POLL_MS = 25;
/**
 * How long a hand-off waits for Node's writes to reach the kernel, reading neither socket meanwhile
 * (a bulk sender's pair: about one send buffer's time); and how long a stopping daemon waits.
 */
const HAND_OVER_WAIT_MS = 100;
const HAND_OVER_AT_CLOSE_MS = 1000;
/** The longest wait between two tries to hand over an old pair whose writes do not drain. */
const RETRY_MAX_MS = 5000;

/** A pair Node relays for now, and what its hand-off to the keeper records. */
interface NodeFirst {
  relay: Relay;
  client: Socket;
  backend: Socket;
  /** When its relay started (ms). */
  since: number;
  /** The look at old pairs skips it until then (ms), after a failed hand-off; the backoff doubles. */
  nextTry: number;
  backoffMs: number;
  /** The hand-off under way. */
  handing: Promise<boolean> | null;
  rec: KeptConn;
  info: AcceptorConn;
  route: RouteCounters;
  load: BackendLoad;
}

interface Handed {
  info: AcceptorConn;
  route: RouteCounters;
  /** Bytes of the replayed hello. */
  replay: number;
  /** Bytes the daemon relayed itself before the hand-off, after the hello (up: client to backend). */
  up: number;
  down: number;
  load: BackendLoad;
}
