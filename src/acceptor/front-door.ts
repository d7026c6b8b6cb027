// The SNI front door as the daemon owns it: the acceptor, its steering (lb_sk_lookup and its maps)
// and the VIPs' local routes, brought to each applied config. Started at the first config that
// has a proxy on the splice path; kept until the daemon stops. Its listening socket outlives the
// daemon in a holder process (holder.ts), which the next daemon takes it back from. By default the
// connections are the native door's (door-process.ts, door-acceptor.ts: it outlives the daemon
// too, and the next daemon connects to it again); the daemon decides for it and keeps the accounts.

import { join, resolve } from 'node:path';
import type { RuntimeInputs } from '../core/compile/compile.js';
import type { LbConfig } from '../core/config/types.js';
import { compileSpliceTable, type SpliceListener } from '../core/sni/splice-table.js';
import { native } from '../dataplane/libbpf.js';
import { ensureInstanceDir } from '../dataplane/bpffs.js';
import { packageRoot } from '../package-root.js';
import { Acceptor, DEFAULT_LIMITS, type AcceptorEvents, type AcceptorLimits } from './acceptor.js';
import { dropTaken, endHolder, spawnHolder, takeFromHolder, type TakeResult } from './holder.js';
import { setLocalRoutes } from './local-routes.js';
import { adoptKeptPairs } from './pair-adopt.js';
import { PairKeeper } from './pair-keeper.js';
import { Splicer } from './splice.js';
import { Steering, type SteeredListener } from './steering.js';
import { DoorAcceptor, DoorRefused } from './door-acceptor.js';
import { connectDoor, endDoor, listenLoopback, liveDoor, spawnDoor } from './door-process.js';
import { closeFd } from './unix-fds.js';
import type { Socket } from 'node:net';

export type RelayMode = 'native' | 'splice' | 'kernel' | 'node';

/** LB_SNI_RELAY's value as a mode; undefined (the default) for anything else. */
export function relayMode(value: string | undefined): RelayMode | undefined {
  return value === 'native' || value === 'splice' || value === 'kernel' || value === 'node' ? value : undefined;
}

/** The native front door's process: started or found running, lost (and reconnected to later), or not startable. */
export type DoorEvent = { pid: number; started: boolean } | { lost: string } | { error: string };

/** How long after losing the door's connection the front door tries again (doubling up to the max). */
const DOOR_RETRY_MS = 500;
const DOOR_RETRY_MAX_MS = 10_000;

export interface FrontDoorOptions {
  instance: string;
  /** Where lb_sk_lookup.bpf.o is (default build/bpf of the package). */
  objectDir?: string;
  limits?: Partial<AcceptorLimits>;
  events?: AcceptorEvents;
  /** Whether the listening socket was taken over from the holder (a restart) or made anew, and why. */
  onHandover?(h: { adopted: true; holder: number } | { adopted: false; reason: string }): void;
  /** The spliced pairs a previous daemon left with the pair keeper: taken back, or why the keeper is not used. */
  onPairs?(p: { keeper: number; started: boolean; adopted: number; dropped: number } | { error: string }): void;
  /** The native front door's process (relay 'native'). */
  onDoor?(e: DoorEvent): void;
  /**
   * 'native' (default): the native front door (native/lb_door.c) accepts, reads the hellos,
   * connects and relays, outside the daemon, which decides and accounts (door-acceptor.ts); where
   * it cannot run, 'splice' serves (relayError says why). 'splice': Node's acceptor, and the pair
   * keeper relays each pair with splice(2) (pipe-relay.ts), outside the daemon; 'kernel': the
   * sockmap relay (lb_splice), experimental: it cannot always hold a sender back (docs/sni.md);
   * 'node': every byte in Node. Where 'splice' or 'kernel' cannot run, Node relays.
   */
  relay?: RelayMode;
}

export class FrontDoor {
  private acceptor: Acceptor | DoorAcceptor | undefined;
  private steering: Steering | undefined;
  private starting: Promise<void> | undefined;
  private splicer: Splicer | null = null;
  private keeper: PairKeeper | null = null;
  /** Whether the pair keeper relays (the splice relay). */
  private splicing = false;
  /** After close(): the native door is not reconnected to. */
  private stopped = false;
  private doorRetry: NodeJS.Timeout | undefined;
  private doorRetryMs = DOOR_RETRY_MS;
  /** Why the kernel relay is not used although asked for (its load or attach failed); null otherwise. */
  relayError: string | null = null;

  constructor(private readonly opts: FrontDoorOptions) {}

  get counters(): Acceptor['counters'] | undefined {
    return this.acceptor?.counters;
  }

  /** How connections are relayed, once started: by the native door, the pair keeper (splice), lb_splice (kernel) or Node. */
  get relay(): RelayMode | undefined {
    if (!this.acceptor) return undefined;
    if (this.acceptor instanceof DoorAcceptor) return 'native';
    return this.splicing ? 'splice' : this.splicer ? 'kernel' : 'node';
  }

  get routeCounters(): Acceptor['routes'] | undefined {
    return this.acceptor?.routes;
  }

  /** Per backend "addr:port": the acceptor's connections (undefined before it started). */
  get backendLoad(): Acceptor['backends'] | undefined {
    return this.acceptor?.backends;
  }

  /** Serves the splice proxies of this config with these runtime answers (the ones its apply used). */
  async apply(config: LbConfig, inputs: RuntimeInputs): Promise<SpliceListener[]> {
    const { listeners } = compileSpliceTable(config, inputs);
    if (listeners.length === 0 && !this.acceptor) return listeners;
    const limits = { idleTimeoutMs: config.settings.connectionTimeoutSec * 1000 };
    this.starting ??= this.start((a) => a.update(listeners, limits));
    await this.starting;
    this.acceptor!.update(listeners, limits);
    const steered: SteeredListener[] = [];
    for (const l of listeners) {
      const ifindex = native().if_nametoindex(l.iface);
      if (ifindex > 0) steered.push({ ifindex, vip: l.vip, port: l.port });
    }
    this.steering!.setListeners(steered);
    setLocalRoutes(this.opts.instance, [...new Set(listeners.flatMap((l) => (l.vip === null ? [] : [l.vip])))]);
    return listeners;
  }

  /** Publishes the connection records that wait for their batch (conn-events.ts), when the daemon stops. */
  flushEvents(): void {
    // Ends the keeper reported since its last poll first: their records join this batch. Later
    // ones the keeper keeps for the next daemon (this one's event stream stops next).
    if (this.acceptor instanceof Acceptor) this.acceptor.detachKeeper();
    this.opts.events?.flush?.();
  }

  /**
   * Closes the acceptor; the steering, the routes and the holder's socket stay for the next daemon
   * (until then the kernel queues the handshakes in the socket's backlog). `lb down` ends the holder.
   */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.doorRetry);
    await this.starting?.catch(() => undefined);
    await this.acceptor?.close();
    this.keeper?.close();
    this.keeper = null;
    this.splicer?.close();
    this.splicer = null;
    this.steering?.close();
    this.acceptor = undefined;
    this.steering = undefined;
  }

  /**
   * Spliced pairs outlive the daemon with the pair keeper; the ones a previous daemon left there
   * are relayed again. Without a keeper (it cannot start or answer) pairs end with the daemon.
   */
  private keepPairs(acceptor: Acceptor, splicer: Splicer | null): PairKeeper | null {
    try {
      const keeper = PairKeeper.open(this.opts.instance);
      this.keeper = keeper;
      if (splicer) splicer.keeper = keeper;
      const r = adoptKeptPairs(acceptor, splicer, keeper);
      this.opts.onPairs?.({ keeper: keeper.pid, started: keeper.started, ...r });
      return keeper;
    } catch (err) {
      this.opts.onPairs?.({ error: (err as Error).message });
      return null;
    }
  }

  /**
   * The native front door: the listening socket from the holder (or made anew, and given to a new
   * holder), steered to; the door that runs on it connected to again, or a new one started on it.
   */
  private async startNative(serve: (a: DoorAcceptor) => void): Promise<void> {
    const door = new DoorAcceptor({ ...DEFAULT_LIMITS, ...this.opts.limits }, this.opts.events, { lost: (why) => this.doorLost(door, why) });
    serve(door);
    const taken = takeFromHolder(this.opts.instance);
    const fd = taken.fd ?? listenLoopback();
    try {
      const objectDir = resolve(this.opts.objectDir ?? join(packageRoot(), 'build', 'bpf'));
      const steering = Steering.open(ensureInstanceDir(this.opts.instance), objectDir);
      steering.setAcceptorSocket(fd);
      if (taken.fd === undefined) {
        endHolder(this.opts.instance);
        spawnHolder(this.opts.instance, fd);
        // A door left running accepts on a socket nothing steers to any more.
        endDoor(this.opts.instance);
      }
      this.opts.onHandover?.(taken.fd === undefined ? { adopted: false, reason: taken.reason } : { adopted: true, holder: taken.pid });
      this.steering = steering;
      await this.attachDoor(door, fd);
      this.acceptor = door;
    } catch (err) {
      // start() falls back to Node's acceptor: this one lets go of the door and the steering.
      void door.close();
      this.steering?.close();
      this.steering = undefined;
      throw err;
    } finally {
      // The holder and the door have their copies.
      closeFd(fd);
    }
  }

  /**
   * Connects `door` to the instance's door (started on `fd`, the listening socket, when none runs)
   * once it took the limits; a door of another build (an upgrade) is replaced, and the connections
   * it held end with it.
   */
  private async attachDoor(door: DoorAcceptor, fd: number): Promise<void> {
    door.attach(await this.doorConnection(fd));
    try {
      await door.ready();
    } catch (err) {
      if (!(err instanceof DoorRefused)) throw err;
      this.opts.onDoor?.({ error: `${err.message}: replaced by a new door (the connections it held are reset)` });
      endDoor(this.opts.instance);
      door.attach(await this.doorConnection(fd));
      await door.ready();
    }
  }

  /** A connection to the instance's door; started on `fd` (the listening socket) when none runs. */
  private async doorConnection(fd: number): Promise<Socket> {
    const live = liveDoor(this.opts.instance);
    if (live) {
      try {
        const s = await connectDoor(this.opts.instance);
        this.opts.onDoor?.({ pid: live.pid, started: false });
        return s;
      } catch {
        // A door that does not answer is ended, and a new one started.
        endDoor(this.opts.instance);
      }
    }
    const rec = spawnDoor(this.opts.instance, fd);
    const s = await connectDoor(this.opts.instance);
    this.opts.onDoor?.({ pid: rec.pid, started: true });
    return s;
  }

  /** The door's connection went away: connected again (a new door on the holder's socket if it died), retried with a backoff. */
  private doorLost(door: DoorAcceptor, why: string): void {
    if (this.stopped) return;
    this.opts.onDoor?.({ lost: why });
    clearTimeout(this.doorRetry);
    this.doorRetry = setTimeout(() => {
      const taken = takeFromHolder(this.opts.instance);
      if (taken.fd === undefined) {
        this.opts.onDoor?.({ error: `cannot restart the native front door: ${taken.reason}` });
        return;
      }
      this.attachDoor(door, taken.fd).then(() => {
        this.doorRetryMs = DOOR_RETRY_MS;
        if (this.stopped) void door.close();
      }, (err: unknown) => {
        this.opts.onDoor?.({ error: (err as Error).message });
        this.doorRetryMs = Math.min(this.doorRetryMs * 2, DOOR_RETRY_MAX_MS);
        this.doorLost(door, 'retrying');
      }).finally(() => closeFd(taken.fd));
    }, this.doorRetryMs);
    this.doorRetry.unref();
  }

  /** `serve` gives the acceptor its listeners before it listens: a held socket has connections queued already. */
  private async start(serve: (a: Acceptor | DoorAcceptor) => void): Promise<void> {
    if ((this.opts.relay ?? 'native') === 'native') {
      try {
        return await this.startNative(serve);
      } catch (err) {
        // Not built, or it does not start or answer: the Node acceptor with the splice relay serves.
        this.relayError = `the native front door cannot serve: ${(err as Error).message}`;
        this.opts.onDoor?.({ error: this.relayError });
      }
    }
    // A native door left by an earlier daemon (another LB_SNI_RELAY) would accept from the same
    // socket, with no daemon to decide for it: ended, and the connections it relays with it.
    endDoor(this.opts.instance);
    const acceptor = new Acceptor({ ...DEFAULT_LIMITS, ...this.opts.limits }, this.opts.events);
    serve(acceptor);
    // A previous daemon's socket, kept by its holder, carries the handshakes queued since it died.
    const taken = takeFromHolder(this.opts.instance);
    const { fd, adopted } = await listenTakenOrNew(acceptor, taken);
    try {
      const objectDir = resolve(this.opts.objectDir ?? join(packageRoot(), 'build', 'bpf'));
      const steering = Steering.open(ensureInstanceDir(this.opts.instance), objectDir);
      steering.setAcceptorSocket(fd);
      if (!adopted) {
        // A new socket: an old holder keeps one nobody accepts from; a new holder keeps this one.
        endHolder(this.opts.instance);
        spawnHolder(this.opts.instance, fd);
      }
      this.opts.onHandover?.(taken.fd === undefined ? { adopted: false, reason: taken.reason }
        : adopted ? { adopted: true, holder: taken.pid } : { adopted: false, reason: 'the held socket could not listen' });
      this.steering = steering;
      const mode = this.opts.relay === undefined || this.opts.relay === 'native' ? 'splice' : this.opts.relay;
      if (mode === 'splice') {
        // Without a keeper (it cannot start or answer) Node relays.
        const keeper = this.keepPairs(acceptor, null);
        if (keeper) {
          acceptor.useKeeperRelay(keeper);
          this.splicing = true;
        } else this.relayError = 'the SNI pair keeper is not running';
      }
      if (mode === 'kernel') {
        // A kernel without sockmap stream verdicts (or a missing object) keeps the Node relay.
        try {
          this.splicer = Splicer.open(ensureInstanceDir(this.opts.instance), objectDir);
        } catch (err) {
          this.relayError = (err as Error).message;
        }
        acceptor.splicer = this.splicer;
        if (this.splicer) this.keepPairs(acceptor, this.splicer);
      }
      this.acceptor = acceptor;
    } catch (err) {
      await acceptor.close();
      this.starting = undefined;
      throw err;
    }
  }
}

/**
 * Listens on the socket taken from the holder, or on a new one when there is none or it cannot
 * listen. Said explicitly, not by comparing descriptor numbers: the new socket may get the number
 * the taken one had.
 */
export async function listenTakenOrNew(acceptor: Acceptor, taken: TakeResult): Promise<{ fd: number; adopted: boolean }> {
  if (taken.fd === undefined) return { fd: await acceptor.listen(), adopted: false };
  try {
    return { fd: await acceptor.listen(taken.fd), adopted: true };
  } catch {
    // Closed before the new socket is made. The holder keeps its own copy until it is ended.
    dropTaken(taken);
    return { fd: await acceptor.listen(), adopted: false };
  }
}
