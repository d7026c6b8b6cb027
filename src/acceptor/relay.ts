// The plain relay between a client and its backend, in user space: bytes both ways with
// backpressure (stream.pipe), and the TCP behaviour of a direct connection kept:
// - half-close: a FIN from one side is a FIN to the other (allowHalfOpen, pipe ends the writer);
//   the other direction goes on until it ends too;
// - reset: an error (ECONNRESET, ...) on one side resets the other (resetAndDestroy sends a RST);
// - idle: no byte either way for idleMs resets both, as the data plane's conntrack forgets an idle flow.

import type { Socket } from 'node:net';

export interface RelayCounts {
  /** Client to backend. */
  up: number;
  down: number;
}

export function relay(client: Socket, backend: Socket, idleMs: number, done: (counts: RelayCounts, reason: 'closed' | 'reset' | 'idle') => void): RelayCounts {
  const counts: RelayCounts = { up: 0, down: 0 };
  let finished = false;
  let closed = 0;
  const finish = (reason: 'closed' | 'reset' | 'idle'): void => {
    if (finished) return;
    finished = true;
    done(counts, reason);
  };
  const reset = (reason: 'reset' | 'idle'): void => {
    if (!client.destroyed) client.resetAndDestroy();
    if (!backend.destroyed) backend.resetAndDestroy();
    finish(reason);
  };
  client.on('data', (d: Buffer) => { counts.up += d.length; });
  backend.on('data', (d: Buffer) => { counts.down += d.length; });
  client.pipe(backend);
  backend.pipe(client);
  for (const s of [client, backend]) {
    s.setTimeout(idleMs, () => reset('idle'));
    s.on('error', () => reset('reset'));
    s.on('close', (hadError) => {
      if (hadError) { reset('reset'); return; }
      if (++closed === 2) finish('closed');
    });
  }
  // A side that has ended both ways is closed by Node (allowHalfOpen ends it once its writer ended);
  // when one side closes while the other still sends, the other's writes fail and reset it.
  return counts;
}
