// The in-kernel relay's backpressure under load (src/acceptor/splice.ts, relay.ts): a spliced echo
// with both directions saturated, where the client and the backend each stop reading now and then
// (so the psocks' queues grow and the relay's backpressure acts many times), beside a busy loop
// competing for the CPUs. Each stream is a sequence pattern (the 32-bit word at byte offset 4i is
// i ^ seed), so a failure says at which offset bytes were lost, duplicated or reordered, and what
// arrived instead. Three copies of this file at once found a divert's repeated bytes (docs/sni.md:
// 5 of 27 file runs, before a divert took both sockets of a pair). Needs root (BPF); fails,
// never skips, without it.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { spliceEvents } from '../../../src/acceptor/relay.js';
import { useSplicer } from '../../lib/splicer.js';
import { captured } from '../../unit/sni/hellos.js';
import { acceptor } from '../../lib/acceptor.js';

if (process.getuid?.() !== 0) throw new Error('acceptor-splice-stress.test.ts must run as root: it loads a BPF program');

const MiB = 1024 * 1024;
const TOTAL = Number(process.env.TOTAL ?? 256) * MiB;
/** A reader stops for STALL_MS after each STALL_EVERY bytes: far more than SPLICE_BACKLOG_MAX piles up meanwhile. */
const STALL_EVERY = Number(process.env.STALL_EVERY ?? 16) * MiB;
const STALL_MS = Number(process.env.STALL_MS ?? 200);
const hello = captured('node-sni');
const kernel = useSplicer('sps');
const { cleanups } = kernel;

/**
 * The client and the echo backend run in a worker thread: their sends and reads are system calls
 * on another thread than the acceptor's map updates, so the kernel's receive path runs
 * concurrently with the relay's backpressure, as with separate processes. CommonJS, evaluated.
 */
const PEERS = `
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
const { total, stallEvery, stallMs, seed, hello } = workerData;
function pattern(from, n) {
  const first = Math.floor(from / 4);
  const words = new Uint32Array(Math.ceil((from + n) / 4) - first);
  for (let i = 0; i < words.length; i++) words[i] = ((first + i) ^ seed) >>> 0;
  return Buffer.from(words.buffer).subarray(from - first * 4, from - first * 4 + n);
}
// Pauses s for stallMs after every stallEvery bytes it read; a writer's backpressure pauses it too.
function stalling(s, onData) {
  let since = 0, stalled = false, blocked = false;
  const ctl = { stalls: 0, setBlocked(b) { blocked = b; apply(); } };
  const apply = () => { if (stalled || blocked) s.pause(); else s.resume(); };
  s.on('data', (d) => {
    onData(d);
    since += d.length;
    if (since >= stallEvery && !stalled) {
      since = 0; ctl.stalls++; stalled = true; apply();
      setTimeout(() => { stalled = false; apply(); }, stallMs);
    }
  });
  return ctl;
}
const server = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => undefined);
  const ctl = stalling(s, (d) => { if (!s.write(d)) { ctl.setBlocked(true); s.once('drain', () => ctl.setBlocked(false)); } });
  s.once('end', () => s.end());
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ backendPort: server.address().port }));
parentPort.once('message', ({ port }) => {
  const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  let offset = 0, skip = hello.length, error = null, answered = null;
  const helloEchoed = new Promise((r) => { answered = r; });
  c.on('error', (e) => { error = error || 'client: ' + e.message; });
  const back = stalling(c, (d) => {
    if (skip > 0) { const n = Math.min(skip, d.length); skip -= n; d = d.subarray(n); if (skip === 0) answered(); }
    if (d.length === 0 || error) { offset += d.length; return; }
    const want = pattern(offset, d.length);
    if (!want.equals(d)) {
      let i = 0;
      while (i < d.length && d[i] === want[i]) i++;
      const at = offset + i;
      // Where the bytes that came instead sit in the stream: at one of 4 alignments they decode
      // to a word of the pattern (a gap, a repeat), else they are no part of it.
      const came = [];
      for (let k = 0; k < 4 && i + k + 4 <= d.length; k++) {
        const t = ((d.readUInt32LE(i + k) ^ seed) >>> 0) * 4 - k;
        if (Math.abs(t - at) < 1 << 30) came.push('stream offset ' + t);
      }
      error = 'first wrong byte at offset ' + at + ' (chunk of ' + d.length + ' at ' + offset + '); got ' + d.subarray(i, i + 16).toString('hex')
        + ', want ' + want.subarray(i, i + 16).toString('hex') + '; came from ' + (came.join(' or ') || 'nowhere in the stream');
    }
    offset += d.length;
  });
  c.once('close', () => { server.close(); parentPort.postMessage({ received: offset, error, stalls: back.stalls }); });
  c.once('connect', async () => {
    c.write(Buffer.from(hello));
    // Like a TLS client, the stream once the hello was answered (its echo): bytes sent right behind
    // the hello may find the pair relayed in Node (splice.ts: the receive queues are read first).
    await helloEchoed;
    const BLOCK = 256 * 1024;
    for (let off = 0; off < total && !error; off += BLOCK) {
      if (!c.write(pattern(off, BLOCK))) await new Promise((r) => c.once('drain', r));
    }
    c.end();
  });
});
`;

/** A busy loop in another process, competing for the CPUs; bounded by `timeout`, killed by the cleanup. */
function burnCpu(seconds: number): ChildProcess {
  // A process group of its own (timeout leads it, the shell loop is in it): the cleanup kills the
  // group. Killing timeout alone left the loop running after the test (it never got its signal).
  const child = spawn('timeout', ['-s', 'KILL', String(seconds), 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore', detached: true });
  cleanups.push(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  });
  return child;
}

interface PeersResult { received: number; error: string | null; stalls: number }

async function echoRun(run: number): Promise<{ holds: number; releases: number; stalls: number }> {
  const worker = new Worker(PEERS, { eval: true, workerData: { total: TOTAL, stallEvery: STALL_EVERY, stallMs: STALL_MS, seed: (0x9e3779b9 * (run + 1)) >>> 0, hello } });
  cleanups.push(async () => { await worker.terminate(); });
  const failed = new Promise<never>((_, reject) => worker.once('error', reject));
  const [{ backendPort }] = await Promise.race([once(worker, 'message') as Promise<[{ backendPort: number }]>, failed]);
  const { a, port } = await acceptor(backendPort, cleanups, {}, kernel.splicer);
  let holds = 0;
  let releases = 0;
  const onHold = (): void => { holds++; };
  const onRelease = (): void => { releases++; };
  spliceEvents.on('hold', onHold);
  spliceEvents.on('release', onRelease);
  cleanups.push(() => { spliceEvents.off('hold', onHold); spliceEvents.off('release', onRelease); });
  const result = once(worker, 'message') as Promise<[PeersResult]>;
  worker.postMessage({ port });
  const [r] = await Promise.race([result, failed]);
  expect(r.error).toBeNull();
  expect(r.received).toBe(TOTAL);
  expect(a.counters.spliced).toBe(1);
  return { holds, releases, stalls: r.stalls };
}

describe('in-kernel relay under backpressure and load', () => {
  for (const [run, load] of [[0, false], [1, true], [2, true]] as const) {
    it(`echoes ${TOTAL / MiB} MiB each way in order with both readers stalling${load ? ', beside a busy loop' : ''} (run ${run})`, async () => {
      if (load) burnCpu(300);
      const r = await echoRun(run);
      console.log(`run ${run}${load ? ' (busy loop)' : ''}: ${r.holds} holds, ${r.releases} releases, client stalled ${r.stalls} times`);
    }, 300_000);
  }
});
