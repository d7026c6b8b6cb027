// A door and a daemon of different builds (the door outlives the daemon, so an upgraded daemon
// finds the old door running): the real door closes the connection of a daemon whose CONFIG names
// another record version, and the daemon's side refuses a door whose first STATS does (ready()
// fails with DoorRefused, which makes the front door replace it) or that sends anything before it.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../../src/acceptor/acceptor.js';
import { DOOR_ABI, DoorRec, Layout, decodeRecords, encodeConfig } from '../../../src/acceptor/door-abi.js';
import { DoorAcceptor, DoorRefused } from '../../../src/acceptor/door-acceptor.js';
import { connectDoor } from '../../../src/acceptor/door-process.js';
import * as lib from '../../lib/acceptor.js';
import type { Cleanups } from '../../lib/acceptor.js';

const cleanups: Cleanups = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

const config = encodeConfig({ helloTimeoutMs: 10_000, connectTimeoutMs: 5000, idleTimeoutMs: 300_000, maxConnections: 10, maxHelloStream: 17_668, spliceAfter: 0 });

/** A STATS record as a door of record version `abi` would send it. */
function stats(abi: number): Buffer {
  const L = Layout.lb_door_stats;
  const b = Buffer.alloc(L.size);
  b.writeUInt32LE(L.size, Layout.lb_door_rec.len);
  b.writeUInt16LE(DoorRec.STATS, Layout.lb_door_rec.type);
  b.writeUInt32LE(abi, L.abi);
  return b;
}

/** A unix server standing in for a door: sends `reply` to the daemon's first bytes. */
async function fakeDoor(reply: Buffer): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'lb-door-version-'));
  const path = join(dir, 'door.sock');
  const conns: Socket[] = [];
  const server = net.createServer((s) => { conns.push(s); s.once('data', () => s.write(reply)); s.on('error', () => undefined); });
  await new Promise<void>((r) => server.listen(path, () => r()));
  cleanups.push(async () => {
    for (const s of conns) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

async function attached(path: string): Promise<DoorAcceptor> {
  const a = new DoorAcceptor({ ...DEFAULT_LIMITS });
  const s = net.connect({ path });
  await once(s, 'connect');
  a.attach(s);
  cleanups.push(() => a.close());
  return a;
}

describe('record versions between the door and the daemon', () => {
  it('the door answers a CONFIG of its version with STATS carrying it, and closes the connection of one of another', async () => {
    const b = await lib.backend(cleanups);
    const { instance } = await lib.doorAcceptor(b.port, cleanups);
    // A second connection replaces the test acceptor's (the newest wins); its CONFIG names version 99.
    const other = Buffer.from(config);
    other.writeUInt32LE(99, Layout.lb_door_config.abi);
    const s = await connectDoor(instance);
    cleanups.push(() => { s.destroy(); });
    s.write(other);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    await once(s, 'close');
    expect(Buffer.concat(got)).toHaveLength(0);

    const ok = await connectDoor(instance);
    cleanups.push(() => { ok.destroy(); });
    ok.write(config);
    const [first] = (await once(ok, 'data')) as [Buffer];
    const r = decodeRecords(first).records[0];
    expect(r).toMatchObject({ type: 'stats', stats: { abi: DOOR_ABI } });
  });

  it('refuses a door whose first STATS names another version', async () => {
    const a = await attached(await fakeDoor(stats(DOOR_ABI + 1)));
    await expect(a.ready(5000)).rejects.toThrow(DoorRefused);
  });

  it('refuses a door that sends a record before its version', async () => {
    const opened = Buffer.alloc(Layout.lb_door_opened.size);
    opened.writeUInt32LE(opened.length, 0);
    opened.writeUInt16LE(DoorRec.OPENED, 4);
    const a = await attached(await fakeDoor(Buffer.concat([opened, stats(DOOR_ABI)])));
    await expect(a.ready(5000)).rejects.toThrow(/another record before its version/);
  });

  it('takes a door of its own version', async () => {
    const a = await attached(await fakeDoor(stats(DOOR_ABI)));
    await expect(a.ready(5000)).resolves.toBeUndefined();
  });
});
