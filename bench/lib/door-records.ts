// The daemon's cost per SNI connection the native door decided, on its own thread: the door's
// records of each connection (DECIDED, OPENED, ENDED), in batches as the door sends them, read by
// the daemon's DoorAcceptor, which counts them per route and backend and reports them to the
// connection events (acceptorConnEvents), published to the event hub and the daemon's sinks (a
// JSON access log handed to a counting stdout, ConnStats). No door and no socket: the records are
// built here with the layouts of src/acceptor/door-abi.ts and handed to the acceptor's reader.

import type { Socket } from 'node:net';
import { DEFAULT_LIMITS } from '../../src/acceptor/acceptor.js';
import { acceptorConnEvents } from '../../src/acceptor/conn-events.js';
import { DOOR_ABI, DoorRec, Layout } from '../../src/acceptor/door-abi.js';
import { DoorAcceptor } from '../../src/acceptor/door-acceptor.js';
import { AccessLog } from '../../src/observe/access-log.js';
import { ConnStats } from '../../src/observe/conn-stats.js';
import { EventHub } from '../../src/observe/events/event-hub.js';

/** Connections per batch: the door's 100 ms batch at ~650 connections a second (bench sni's rate). */
export const DOOR_BATCH = 64;

function rec(size: number, type: number, id: bigint): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(size, Layout.lb_door_rec.len);
  b.writeUInt16LE(type, Layout.lb_door_rec.type);
  b.writeBigUInt64LE(id, Layout.lb_door_rec.id);
  return b;
}

const NAMES = ['tls', 'sni:api.example.com', 'eth0 10.233.9.10:443/tcp', 'api.example.com'].map((s) => Buffer.from(s));

/** One connection's three records, as the door writes them (times relative to `now`). */
function connectionRecords(id: bigint, clientPort: number, backend: number, now: bigint): Buffer[] {
  const D = Layout.lb_door_decided;
  const decided = rec(D.size + NAMES.reduce((n, s) => n + s.length, 0), DoorRec.DECIDED, id);
  decided.set([10, 233, 1, 2], D.client_ip);
  decided.set([10, 233, 9, 10], D.local_ip);
  decided.set([127, 0, 0, backend], D.backend_ip);
  decided.writeUInt16LE(clientPort, D.client_port);
  decided.writeUInt16LE(443, D.local_port);
  decided.writeUInt16LE(9601, D.backend_port);
  [D.proxy_len, D.group_len, D.listener_len, D.name_len].forEach((at, i) => decided.writeUInt16LE(NAMES[i]!.length, at));
  decided.writeBigUInt64LE(now - 3_000_000n, D.accepted_ns);
  decided.writeBigUInt64LE(BigInt(Date.now() - 3), D.accepted_ms);
  decided.writeUInt32LE(517, D.replay);
  let at = D.size;
  for (const s of NAMES) at += s.copy(decided, at);
  const opened = rec(Layout.lb_door_opened.size, DoorRec.OPENED, id);
  opened.writeBigUInt64LE(now - 2_000_000n, Layout.lb_door_opened.at_ns);
  const E = Layout.lb_door_ended;
  const ended = rec(E.size, DoorRec.ENDED, id);
  ended.writeBigUInt64LE(1_500n, E.up);
  ended.writeBigUInt64LE(4_000n, E.down);
  ended.writeBigUInt64LE(now - 1_000_000n, E.at_ns);
  return [decided, opened, ended];
}

export interface DoorCost { usPerConn: number; connections: number; logBytes: number }

/**
 * us of this thread per connection: `batches` batches of DOOR_BATCH connections each through
 * DoorAcceptor's reader and the daemon's event sinks, after `warm` unmeasured ones (the JIT).
 * The access log's lines are formatted and handed to a counting stdout (logBytes).
 */
export async function doorRecordsCost(batches: number, warm: number): Promise<DoorCost> {
  let logBytes = 0;
  const hub = new EventHub({ instance: `bench-door-${process.pid}` }); // not started: fed by the acceptor
  const log = new AccessLog({ enabled: true, format: 'json', path: '-', stdout: true, maxFileBytes: 1 << 30, maxFiles: 1, bufferSize: 1 << 20 }, (t) => { logBytes += t.length; });
  const stats = new ConnStats();
  hub.addSink((b) => log.add(b));
  hub.addSink((b) => stats.add(b));
  const acceptor = new DoorAcceptor(DEFAULT_LIMITS, acceptorConnEvents(hub));
  const socket = { setNoDelay: () => socket, on: () => socket, once: () => socket, write: () => true, destroy: () => socket, end: () => socket };
  acceptor.attach(socket as unknown as Socket);
  const read = (chunk: Buffer): void => (acceptor as unknown as { read(s: unknown, c: Buffer): void }).read(socket, chunk);
  const stats0 = rec(Layout.lb_door_stats.size, DoorRec.STATS, 0n);
  stats0.writeUInt32LE(DOOR_ABI, Layout.lb_door_stats.abi);
  read(stats0);
  let id = 1n;
  const now = process.hrtime.bigint();
  const chunks = Array.from({ length: warm + batches }, () => Buffer.concat(Array.from({ length: DOOR_BATCH }, () => {
    const n = id++;
    return connectionRecords(n, 1024 + Number(n % 60_000n), 1 + Number(n % 3n), now);
  }).flat()));
  // After each batch, the write the daemon starts (to the counting stdout), as consumerCost does.
  for (const c of chunks.slice(0, warm)) {
    read(c);
    await log.flush();
  }
  logBytes = 0;
  const t0 = process.cpuUsage();
  for (const c of chunks.slice(warm)) {
    read(c);
    await log.flush();
  }
  const t = process.cpuUsage(t0);
  const connections = batches * DOOR_BATCH;
  if (stats.backends().reduce((n, s) => n + s.closed, 0) !== (warm + batches) * DOOR_BATCH) throw new Error('the door records bench: not every connection was accounted');
  return { usPerConn: (t.user + t.system) / connections, connections, logBytes };
}
