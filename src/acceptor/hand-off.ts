// Hands a connected pair from Node to another owner of its sockets (the pair keeper's splice
// relay): synchronously, so no byte is read by Node after it looked at its buffers.
// 1. Node stops reading both sockets (libuv's read, not only the stream's flow);
// 2. what Node read and did not pass on yet goes to the other side (Node's write);
// 3. only if the kernel took every byte Node wrote to both sockets (nothing waits in Node), the
//    descriptors are sent (`send`, which duplicates them into the receiver);
// 4. Node's sockets are destroyed: close(2) of this process's descriptors, which ends nothing (no
//    FIN, no RST) while the receiver holds its copies.
// Bytes still in the sockets' receive queues stay there for the new owner: splice(2) reads a
// socket from where the last read stopped. When step 3 fails nothing changed but the reads Node
// did, and Node's relay takes the pair (it resumes reading).
import type { Socket } from 'node:net';

type Handle = { fd?: number; readStop(): number; readStart(): number; reading?: boolean };

function handleOf(s: Socket): Handle | undefined {
  return (s as unknown as { _handle?: Handle })._handle;
}

/** Bytes Node wrote for each side during the hand-off (up: to the backend). */
export interface HandedOver { up: number; down: number }

export function handOff(client: Socket, backend: Socket, send: (fds: [number, number], moved: HandedOver) => boolean): HandedOver | null {
  const ch = handleOf(client);
  const bh = handleOf(backend);
  if (!ch || !bh || typeof ch.fd !== 'number' || typeof bh.fd !== 'number' || ch.fd < 0 || bh.fd < 0) return null;
  if (client.destroyed || backend.destroyed) return null;
  const hold = (on: boolean): void => { holdReads(client, on); holdReads(backend, on); };
  hold(true);
  const moved = { up: passBuffered(client, backend), down: passBuffered(backend, client) };
  // A stream read() below its high-water mark asks libuv to read again (net.Socket._read): stopped
  // again. libuv reads only when the event loop turns, which it does not before the end of this.
  hold(true);
  // A FIN Node was asked to send goes out only after its writes: until then the pair stays here
  // (the new owner would not know to send it).
  if (writesPending(client) || writesPending(backend) || !send([ch.fd, bh.fd], moved)) {
    // Node relays them (the bytes of step 2 went across, uncounted by that relay).
    hold(false);
    return null;
  }
  client.destroy();
  backend.destroy();
  return moved;
}

/** Stops (or starts again) libuv's reads of a socket, under the stream (as handOff does). */
export function holdReads(s: Socket, hold: boolean): void {
  const h = handleOf(s);
  if (!h || s.destroyed) return;
  if (hold) h.readStop();
  else h.readStart();
}

/** Whether Node still has bytes, or a FIN, to write to `s` (handOff waits for neither). */
export function writesPending(s: Socket): boolean {
  return s.writableLength > 0 || (s.writableEnded && !s.writableFinished);
}

/** Writes what `from` has read and not handed out yet to `to`; the byte count. */
export function passBuffered(from: Socket, to: Socket): number {
  let n = 0;
  for (let chunk = from.read() as Buffer | null; chunk !== null; chunk = from.read() as Buffer | null) {
    n += chunk.length;
    to.write(chunk);
  }
  return n;
}
