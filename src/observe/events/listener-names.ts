// The names the connection events carry, per listener id of the active generation: made from a
// live state (its logical listeners and the encoded ones). Pure, so the process that read the
// live state makes it: the daemon's apply worker after its read-back sends this table, not the
// live state of 10,000 listeners, to the daemon's thread (src/reconcile/apply-work.ts).

import { IPPROTO_TCP, type Settings } from '../../core/abi.js';
import { listenerLabel } from '../../core/state.js';
import type { LiveState } from '../../state/live.js';
import type { ListenerNames } from './conn-batch.js';

/** The listeners' names of one generation of the maps (lb_ctl serial), and its conntrack timeouts. */
export interface ListenerNameTable {
  serial: number;
  listeners: Map<number, ListenerNames>;
  /** Every listener found its proxy in the logical state (else a state written after the maps: read again). */
  named: boolean;
  settings: Pick<Settings, 'tcpIdleSec' | 'udpIdleSec' | 'tcpFinSec'>;
}

export function listenerNamesOf(live: Pick<LiveState, 'ctl' | 'state' | 'generation'>): ListenerNameTable {
  const listeners = new Map<number, ListenerNames>();
  // By VIP, port and protocol, the first in state order as a search would find it: one pass,
  // not a search per listener (10,000 listeners made that 100 million comparisons, ~30 s of
  // the daemon's thread after every apply).
  const byKey = new Map<string, (typeof live.state.listeners)[number]>();
  for (const s of live.state.listeners) {
    const k = `${s.vip}:${s.port}:${s.proto === 'udp' ? 'udp' : 'tcp'}`;
    if (!byKey.has(k)) byKey.set(k, s);
  }
  let named = true;
  for (const l of live.generation.listeners) {
    const logical = byKey.get(`${l.key.vip}:${l.key.port}:${l.key.proto !== IPPROTO_TCP ? 'udp' : 'tcp'}`);
    if (!logical) named = false;
    listeners.set(l.value.listenerId, { proxy: logical?.proxy ?? null, label: logical ? listenerLabel(logical) : `${l.key.vip}:${l.key.port}` });
  }
  const { tcpIdleSec, udpIdleSec, tcpFinSec } = live.generation.settings;
  return { serial: live.ctl.serial, listeners, named, settings: { tcpIdleSec, udpIdleSec, tcpFinSec } };
}
