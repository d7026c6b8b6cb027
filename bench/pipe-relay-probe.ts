// A throughput probe, not a test and not part of `make bench`: 2 GiB one way through the splice(2)
// relay (src/acceptor/pipe-relay.ts) and through a plain Node relay (stream.pipe both ways), each
// in a worker thread of its own, on loopback, with 1 stream and with 8. The client and the backend
// (a sink) run in this thread. Reports Gbit/s and the relay thread's CPU seconds
// (getrusage(RUSAGE_THREAD): the relay's own, not the load generator's).
//
//   npx tsc -p tsconfig.build.json && node dist/bench/pipe-relay-probe.js [GiB [pipe KiB]]
import net, { type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../src/package-root.js';
import { listen, relayedPair, RelayWorker, removeDir, workDir } from '../test/lib/pipe-relay-worker.js';

const MiB = 1024 * 1024;
const TOTAL = Number(process.argv[2] ?? 2) * 1024 * MiB;
/** The splice relay's pipe per direction (its default without the argument). */
const PIPE_BYTES = process.argv[3] === undefined ? undefined : Number(process.argv[3]) * 1024;

/** The Node relay: a server whose every connection is piped to the backend and back. */
const NODE_RELAY = `
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import koffi from 'koffi';
const getrusage = koffi.load('libc.so.6').func('int getrusage(int who, _Out_ void *usage)');
const cpu = () => {
  const ru = Buffer.alloc(144);
  getrusage(1, ru);
  return Number(ru.readBigInt64LE(0)) + Number(ru.readBigInt64LE(8)) / 1e6 + Number(ru.readBigInt64LE(16)) + Number(ru.readBigInt64LE(24)) / 1e6;
};
const server = net.createServer({ allowHalfOpen: true }, (front) => {
  const up = net.connect({ host: '127.0.0.1', port: workerData.backend, allowHalfOpen: true });
  front.pipe(up);
  up.pipe(front);
  front.on('error', () => up.destroy());
  up.on('error', () => front.destroy());
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m === 'cpu') parentPort.postMessage({ cpu: cpu() });
  else if (m === 'stop') server.close(() => parentPort.close());
});
`;

/** Writes `bytes` (one reused 1 MiB buffer) with write()'s backpressure, then ends. */
async function pump(s: Socket, bytes: number, chunk: Buffer): Promise<void> {
  for (let off = 0; off < bytes; off += chunk.length) {
    if (!s.write(off + chunk.length <= bytes ? chunk : chunk.subarray(0, bytes - off))) await new Promise((r) => s.once('drain', r));
  }
  s.end();
}

/** Counts what a socket receives until its end. */
function sink(s: Socket): Promise<number> {
  let n = 0;
  s.on('data', (d: Buffer) => { n += d.length; });
  s.resume();
  return new Promise((resolve, reject) => { s.once('end', () => { s.end(); resolve(n); }); s.once('error', reject); });
}

interface Result { relay: string; streams: number; gbps: number; cpu: number }

async function spliceRun(dir: string, streams: number, chunk: Buffer): Promise<Result> {
  const relay = await RelayWorker.start(pathToFileURL(join(packageRoot(), 'dist', 'src', 'acceptor', 'pipe-relay.js')).href, { dir, pipeBytes: PIPE_BYTES });
  const pairs = [];
  for (let i = 0; i < streams; i++) pairs.push(await relayedPair(relay, `p${i}`));
  const cpu0 = await relay.cpu();
  const t0 = process.hrtime.bigint();
  const got = pairs.map((p) => sink(p.back));
  pairs.forEach((p) => { p.client.resume(); void pump(p.client, TOTAL / streams, chunk); });
  const bytes = (await Promise.all(got)).reduce((a, b) => a + b, 0);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = (await relay.cpu()) - cpu0;
  for (const p of pairs) await relay.ended(p.id);
  await relay.stop();
  for (const p of pairs) { p.client.destroy(); p.back.destroy(); p.servers.forEach((s) => s.close()); }
  if (bytes !== TOTAL) throw new Error(`splice relay: ${bytes} bytes arrived of ${TOTAL}`);
  return { relay: 'splice', streams, gbps: (bytes * 8) / secs / 1e9, cpu };
}

async function nodeRun(dir: string, streams: number, chunk: Buffer): Promise<Result> {
  const backs: Socket[] = [];
  const arrived: Array<(s: Socket) => void> = [];
  const b = await listen((s) => { backs.push(s); arrived.shift()?.(s); });
  const file = join(dir, 'node-relay.mjs');
  writeFileSync(file, NODE_RELAY);
  const worker = new Worker(file, { workerData: { backend: b.port } });
  const next = <T>(): Promise<T> => new Promise((r) => worker.once('message', r));
  const { port } = await next<{ port: number }>();
  const pairs: Array<{ client: Socket; back: Socket }> = [];
  for (let i = 0; i < streams; i++) {
    const back = new Promise<Socket>((r) => arrived.push(r));
    const client = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    await new Promise((r) => client.once('connect', r));
    pairs.push({ client, back: await back });
  }
  worker.postMessage('cpu');
  const cpu0 = (await next<{ cpu: number }>()).cpu;
  const t0 = process.hrtime.bigint();
  const got = pairs.map((p) => sink(p.back));
  pairs.forEach((p) => { p.client.resume(); void pump(p.client, TOTAL / streams, chunk); });
  const bytes = (await Promise.all(got)).reduce((a, c) => a + c, 0);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  worker.postMessage('cpu');
  const cpu = (await next<{ cpu: number }>()).cpu - cpu0;
  await worker.terminate();
  for (const p of pairs) { p.client.destroy(); p.back.destroy(); }
  b.server.close();
  if (bytes !== TOTAL) throw new Error(`node relay: ${bytes} bytes arrived of ${TOTAL}`);
  return { relay: 'node', streams, gbps: (bytes * 8) / secs / 1e9, cpu };
}

const dir = workDir();
const chunk = Buffer.alloc(MiB, 0x5a);
try {
  for (const streams of [1, 8]) {
    for (const run of [spliceRun, nodeRun]) {
      const r = await run(dir, streams, chunk);
      console.log(`${r.relay.padEnd(6)} ${r.streams} stream(s): ${(TOTAL / 1024 / MiB).toFixed(0)} GiB, ${r.gbps.toFixed(2)} Gbit/s, relay CPU ${r.cpu.toFixed(2)} s (${(r.cpu / (TOTAL / 1024 / MiB)).toFixed(2)} s/GiB)`);
    }
  }
} finally {
  removeDir(dir);
}
