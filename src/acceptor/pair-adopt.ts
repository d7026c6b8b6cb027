// A daemon's start with the pairs a previous one left with the pair keeper (pair-keeper.ts). A
// pair the keeper relays (the splice relay) stays there; the acceptor counts it as open and reports
// its end when the keeper does. A kept pair (the sockmap relay): its descriptors become Node
// sockets again, the Splicer re-learns the pair from its cookies (its entries stayed in the maps
// while the keeper held the sockets, and the verdict kept relaying), and the acceptor relays it as
// its own: FIN hand-off, resets, idle timeout, counts.

import net, { type Socket } from 'node:net';
import type { Acceptor, KeptConn } from './acceptor.js';
import type { PairKeeper } from './pair-keeper.js';
import type { KeptSplice, Splicer } from './splice.js';
import { closeFd } from './unix-fds.js';

function isKeptSplice(v: unknown): v is KeptSplice {
  const k = v as KeptSplice | null;
  return typeof k === 'object' && k !== null && Array.isArray(k.cookies) && k.cookies.length === 2 && Array.isArray(k.bases) && k.bases.length === 2
    && k.bases.every((b) => Number.isSafeInteger(b) && b >= 0);
}

function isKeptConn(v: unknown): v is KeptConn {
  const k = v as KeptConn | null;
  return typeof k === 'object' && k !== null && typeof k.info === 'object' && typeof k.routeKey === 'string' && typeof k.backendKey === 'string';
}

function socketOn(fd: number): Socket | undefined {
  try {
    return new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
  } catch {
    closeFd(fd);
    return undefined;
  }
}

/**
 * Takes every kept pair back; a pair that is no longer whole (gone from the maps, diverted, a bad
 * record, no splicer here to relay it) is closed and dropped. The pairs the keeper relays itself
 * stay there: the acceptor counts them and reports their ends (Acceptor.adoptRelayed).
 */
export function adoptKeptPairs(acceptor: Acceptor, splicer: Splicer | null, keeper: PairKeeper): { adopted: number; dropped: number } {
  let adopted = 0;
  let dropped = 0;
  const { kept, relayed } = keeper.list();
  for (const r of relayed) {
    if (!isKeptConn(r.rec)) continue;
    acceptor.adoptRelayed(r.id, r.rec);
    adopted++;
  }
  for (const p of kept) {
    const client = socketOn(p.fds[0]);
    const backend = socketOn(p.fds[1]);
    const pair = splicer && client && backend && isKeptSplice(p.rec) && isKeptConn(p.rec.rec) ? splicer.adopt(client, backend, p.rec) : null;
    if (!pair || !client || !backend) {
      keeper.drop(p.id);
      client?.destroy();
      backend?.destroy();
      dropped++;
      continue;
    }
    acceptor.adopt(client, backend, pair, (p.rec as KeptSplice).rec as KeptConn);
    adopted++;
  }
  return { adopted, dropped };
}
