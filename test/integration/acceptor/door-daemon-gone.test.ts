// What the native door does for the breaker while no daemon hears it: a connection routed before
// the daemon went whose connect fails meanwhile is kept, and the next daemon hears it (HELD, then
// FAILED), so the backend's failure counts. A real door (build/native/lb-door) on loopback, two
// daemons' acceptors in turn (DoorAcceptor), a backend that first drops SYNs and then refuses
// them. Every wait is for an event (the door's log, the client's reset), bounded by the test timeout.
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../../src/acceptor/acceptor.js';
import { DoorAcceptor } from '../../../src/acceptor/door-acceptor.js';
import { connectDoor, doorLogPath } from '../../../src/acceptor/door-process.js';
import { captured } from '../../unit/sni/hellos.js';
import * as lib from '../../lib/acceptor.js';
import { closed, type Cleanups } from '../../lib/acceptor.js';

const cleanups: Cleanups = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

/** Lines of the door's log. */
const doorLog = (instance: string): string[] => (existsSync(doorLogPath(instance)) ? readFileSync(doorLogPath(instance), 'utf8').split('\n') : []);

describe('The native door while no daemon is connected', () => {
  it('keeps a connect failure for the next daemon, which counts it against the backend', async () => {
    // The kernel drops the door's SYN until the child is killed; the SYN's next retransmission is refused.
    const { port: silent, child } = await lib.silentBackend(cleanups);
    // A connect bound far off: the failure here is the refusal, after the daemon went.
    const limits = { connectTimeoutMs: 60_000 };
    const { a, port, instance } = await lib.doorAcceptor(silent, cleanups, limits);
    const backendKey = `127.0.0.1:${silent}`;

    const c = await lib.connect(port, cleanups);
    c.on('error', () => undefined);
    c.write(captured('node-sni'));
    // The door decided it and is connecting.
    await expect.poll(() => a.backends.get(backendKey), { timeout: 10_000 }).toEqual({ attempts: 1, failed: 0, active: 1 });
    const disconnects = doorLog(instance).filter((l) => l.includes('daemon disconnected')).length;
    await a.close();
    await expect.poll(() => doorLog(instance).filter((l) => l.includes('daemon disconnected')).length, { timeout: 10_000 }).toBe(disconnects + 1);

    child.kill('SIGKILL');
    await once(child, 'exit');
    // Refused at the next SYN retransmission: the door resets the client, with no daemon to tell.
    await closed(c);

    const next = new DoorAcceptor({ ...DEFAULT_LIMITS, ...limits });
    next.update([lib.testListener(port, silent)]);
    next.attach(await connectDoor(instance));
    cleanups.push(() => next.close());
    await next.ready();
    // HELD (the connection the first daemon routed), then FAILED: adopted, and failed at its backend.
    await expect.poll(() => next.counters, { timeout: 10_000 }).toMatchObject({ adopted: 1, connectFailed: 1 });
    expect(next.backends.get(backendKey)).toMatchObject({ failed: 1, active: 0 });
  });
});
