// The SNI front door as the daemon owns it: the acceptor, its steering (lb_sk_lookup and its maps)
// and the VIPs' local routes, brought to each applied config. Started at the first config that
// has a proxy on the splice path; kept until the daemon stops. Its listening socket outlives the
// daemon in a holder process (holder.ts), which the next daemon takes it back from.

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

export type RelayMode = 'splice' | 'kernel' | 'node';

/** LB_SNI_RELAY's value as a mode; undefined (the default) for anything else. */
export function relayMode(value: string | undefined): RelayMode | undefined {
  return value === 'splice' || value === 'kernel' || value === 'node' ? value : undefined;
}

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
  /**
   * 'splice' (default): the pair keeper relays each pair with splice(2) (pipe-relay.ts), outside
   * the daemon; 'kernel': the sockmap relay (lb_splice), experimental: it cannot always hold a
   * sender back (docs/sni.md); 'node': every byte in Node. Where the one asked for cannot run, Node
   * relays (relayError says why).
   */
  relay?: RelayMode;
}

export class FrontDoor {
  private acceptor: Acceptor | undefined;
  private steering: Steering | undefined;
  private starting: Promise<void> | undefined;
  private splicer: Splicer | null = null;
  private keeper: PairKeeper | null = null;
  /** Whether the pair keeper relays (the splice relay). */
  private splicing = false;
  /** Why the kernel relay is not used although asked for (its load or attach failed); null otherwise. */
  relayError: string | null = null;

  constructor(private readonly opts: FrontDoorOptions) {}

  get counters(): Acceptor['counters'] | undefined {
    return this.acceptor?.counters;
  }

  /** How connections are relayed, once started: by the pair keeper (splice), lb_splice (kernel) or Node. */
  get relay(): RelayMode | undefined {
    return this.acceptor ? (this.splicing ? 'splice' : this.splicer ? 'kernel' : 'node') : undefined;
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
    this.acceptor?.detachKeeper();
    this.opts.events?.flush?.();
  }

  /**
   * Closes the acceptor; the steering, the routes and the holder's socket stay for the next daemon
   * (until then the kernel queues the handshakes in the socket's backlog). `lb down` ends the holder.
   */
  async close(): Promise<void> {
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

  /** `serve` gives the acceptor its listeners before it listens: a held socket has connections queued already. */
  private async start(serve: (a: Acceptor) => void): Promise<void> {
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
      const mode = this.opts.relay ?? 'splice';
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
