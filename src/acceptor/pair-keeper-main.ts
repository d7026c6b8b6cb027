// The pair keeper process (pair-keeper.ts starts it): keeps a descriptor of both sockets of every
// spliced pair the daemon hands it, so the pair outlives the daemon (a socket whose last
// descriptor closes leaves the sockmap and closes). It never reads or writes those sockets. Its fd
// 3 is a listening unix SOCK_SEQPACKET socket; it serves one daemon connection at a time (the
// instance lock allows one daemon), with these messages (unix-fds.ts):
//   {op:'keep', id, rec} + 2 fds   keep the pair (a pair kept under the same id is dropped first)
//   {op:'drop', id}                close the pair's descriptors (the daemon closed the pair)
//   {op:'list'}                    answered with {id, rec} + 2 fds per pair, then {end:true}
// No reply otherwise: a keep costs the daemon one sendmsg, and the descriptors in flight are held
// by the kernel from then on, so a daemon killed right after still leaves them with the keeper.

import { acceptBlocking, closeFd, receiveMessage, sendMessage } from './unix-fds.js';

const LISTEN_FD = 3;

interface Kept { fds: number[]; rec: unknown }
const pairs = new Map<string, Kept>();

function drop(id: string): void {
  const p = pairs.get(id);
  if (!p) return;
  for (const fd of p.fds) closeFd(fd);
  pairs.delete(id);
}

function serve(conn: number): void {
  for (;;) {
    const got = receiveMessage(conn);
    if (!got) return;
    const m = got.message as { op?: unknown; id?: unknown; rec?: unknown } | null;
    const id = typeof m?.id === 'string' ? m.id : undefined;
    if (m?.op === 'keep' && id !== undefined && got.fds.length === 2) {
      drop(id);
      pairs.set(id, { fds: got.fds, rec: m.rec });
      continue;
    }
    // Descriptors that came with anything else are not kept.
    for (const fd of got.fds) closeFd(fd);
    if (m?.op === 'drop' && id !== undefined) drop(id);
    else if (m?.op === 'list') {
      for (const [pid, p] of pairs) if (!sendMessage(conn, { id: pid, rec: p.rec }, p.fds)) return;
      if (!sendMessage(conn, { end: true })) return;
    }
  }
}

for (;;) {
  const conn = acceptBlocking(LISTEN_FD);
  if (conn < 0) process.exit(1);
  serve(conn);
  closeFd(conn);
}
