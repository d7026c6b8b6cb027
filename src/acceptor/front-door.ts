// The SNI front door as the daemon owns it: the acceptor, its steering (lb_sk_lookup and its maps)
// and the VIPs' local routes, brought to each applied config. Started at the first config that
// has a proxy on the splice path; kept until the daemon stops.

import { join, resolve } from 'node:path';
import type { RuntimeInputs } from '../core/compile/compile.js';
import type { LbConfig } from '../core/config/types.js';
import { compileSpliceTable, type SpliceListener } from '../core/sni/splice-table.js';
import { native } from '../dataplane/libbpf.js';
import { ensureInstanceDir } from '../dataplane/bpffs.js';
import { packageRoot } from '../package-root.js';
import { Acceptor, DEFAULT_LIMITS, type AcceptorEvents, type AcceptorLimits } from './acceptor.js';
import { setLocalRoutes } from './local-routes.js';
import { Splicer } from './splice.js';
import { Steering, type SteeredListener } from './steering.js';

export interface FrontDoorOptions {
  instance: string;
  /** Where lb_sk_lookup.bpf.o is (default build/bpf of the package). */
  objectDir?: string;
  limits?: Partial<AcceptorLimits>;
  events?: AcceptorEvents;
  /** 'kernel' (default): splice relayed pairs in the kernel where it can (lb_splice); 'node': relay every byte in Node. */
  relay?: 'kernel' | 'node';
}

export class FrontDoor {
  private acceptor: Acceptor | undefined;
  private steering: Steering | undefined;
  private starting: Promise<void> | undefined;
  private splicer: Splicer | null = null;
  /** Why the kernel relay is not used although asked for (its load or attach failed); null otherwise. */
  relayError: string | null = null;

  constructor(private readonly opts: FrontDoorOptions) {}

  get counters(): Acceptor['counters'] | undefined {
    return this.acceptor?.counters;
  }

  /** How connections are relayed, once started: in the kernel (lb_splice) or in Node. */
  get relay(): 'kernel' | 'node' | undefined {
    return this.acceptor ? (this.splicer ? 'kernel' : 'node') : undefined;
  }

  get routeCounters(): Acceptor['routes'] | undefined {
    return this.acceptor?.routes;
  }

  /** Serves the splice proxies of this config with these runtime answers (the ones its apply used). */
  async apply(config: LbConfig, inputs: RuntimeInputs): Promise<SpliceListener[]> {
    const { listeners } = compileSpliceTable(config, inputs);
    if (listeners.length === 0 && !this.acceptor) return listeners;
    this.starting ??= this.start();
    await this.starting;
    this.acceptor!.update(listeners, { idleTimeoutMs: config.settings.connectionTimeoutSec * 1000 });
    const steered: SteeredListener[] = [];
    for (const l of listeners) {
      const ifindex = native().if_nametoindex(l.iface);
      if (ifindex > 0) steered.push({ ifindex, vip: l.vip, port: l.port });
    }
    this.steering!.setListeners(steered);
    setLocalRoutes([...new Set(listeners.flatMap((l) => (l.vip === null ? [] : [l.vip])))]);
    return listeners;
  }

  /** Closes the acceptor; the steering and routes stay for the next daemon (until then SYNs get a RST). */
  async close(): Promise<void> {
    await this.starting?.catch(() => undefined);
    await this.acceptor?.close();
    this.splicer?.close();
    this.splicer = null;
    this.steering?.close();
    this.acceptor = undefined;
    this.steering = undefined;
  }

  private async start(): Promise<void> {
    const acceptor = new Acceptor({ ...DEFAULT_LIMITS, ...this.opts.limits }, this.opts.events);
    const fd = await acceptor.listen();
    try {
      const objectDir = resolve(this.opts.objectDir ?? join(packageRoot(), 'build', 'bpf'));
      const steering = Steering.open(ensureInstanceDir(this.opts.instance), objectDir);
      steering.setAcceptorSocket(fd);
      this.steering = steering;
      if (this.opts.relay !== 'node') {
        // A kernel without sockmap stream verdicts (or a missing object) keeps the Node relay.
        try {
          this.splicer = Splicer.open(ensureInstanceDir(this.opts.instance), objectDir);
        } catch (err) {
          this.relayError = (err as Error).message;
        }
        acceptor.splicer = this.splicer;
      }
      this.acceptor = acceptor;
    } catch (err) {
      await acceptor.close();
      this.starting = undefined;
      throw err;
    }
  }
}
