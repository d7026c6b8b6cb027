// The acceptor's counters on the daemon's /metrics (prom-client collectors reading the live
// counters at scrape time): its bounds and outcomes, connections held now, and per SNI route
// (proxy and group) the connections routed and the bytes of the relays that ended.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { AcceptorCounters } from './acceptor.js';
import type { FrontDoor } from './front-door.js';

const EVENTS: Record<Exclude<keyof AcceptorCounters, 'active'>, string> = {
  accepted: 'accepted', overLimit: 'over_limit', helloTimeout: 'hello_timeout', helloTooLarge: 'hello_too_large', helloInvalid: 'hello_invalid',
  noListener: 'no_listener', noBackend: 'no_backend', connectFailed: 'connect_failed', relayed: 'relayed', spliced: 'spliced', adopted: 'adopted',
  handOffDeferred: 'hand_off_deferred', doorDecided: 'door_decided',
};

export function registerAcceptorMetrics(registry: Registry, door: FrontDoor): void {
  const registers = [registry];
  new Counter({
    name: 'lb_sni_acceptor_events_total', help: 'SNI acceptor connections by outcome (accepted, over_limit, hello_timeout, hello_too_large, hello_invalid, no_listener, no_backend, connect_failed, relayed, spliced, adopted, hand_off_deferred, door_decided)',
    labelNames: ['event'], registers,
    collect(this: Counter<'event'>) {
      this.reset();
      const c = door.counters;
      if (c) for (const [key, event] of Object.entries(EVENTS)) this.inc({ event }, c[key as keyof typeof EVENTS]);
    },
  });
  new Gauge({
    name: 'lb_sni_acceptor_connections', help: 'Connections the SNI acceptor holds now (reading a hello, connecting or relaying)', registers,
    collect(this: Gauge) { this.set(door.counters?.active ?? 0); },
  });
  new Gauge({
    name: 'lb_sni_acceptor_relay', help: 'How the SNI acceptor relays bytes (1 on the mode in use): native (the native front door), splice (the pair keeper, splice(2)), kernel (the lb_splice sockmap) or node',
    labelNames: ['mode'], registers,
    collect(this: Gauge<'mode'>) {
      this.reset();
      if (door.relay) this.set({ mode: door.relay }, 1);
    },
  });
  new Counter({
    name: 'lb_sni_route_connections_total', help: 'Connections the SNI acceptor routed, by proxy and group (default, a source prefix, sni:NAME)',
    labelNames: ['proxy_name', 'group'], registers,
    collect(this: Counter<'proxy_name' | 'group'>) {
      this.reset();
      for (const [key, r] of door.routeCounters ?? []) {
        const [proxy_name, group] = key.split('\u0000') as [string, string];
        this.inc({ proxy_name, group }, r.connections);
      }
    },
  });
  new Counter({
    name: 'lb_sni_route_bytes_total', help: 'Bytes relayed by the SNI acceptor on connections that ended, by proxy, group and direction (up: client to backend)',
    labelNames: ['proxy_name', 'group', 'direction'], registers,
    collect(this: Counter<'proxy_name' | 'group' | 'direction'>) {
      this.reset();
      for (const [key, r] of door.routeCounters ?? []) {
        const [proxy_name, group] = key.split('\u0000') as [string, string];
        this.inc({ proxy_name, group, direction: 'up' }, r.bytesUp);
        this.inc({ proxy_name, group, direction: 'down' }, r.bytesDown);
      }
    },
  });
}
