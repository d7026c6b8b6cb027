// SNI routing against HAProxy (Debian's haproxy, TCP mode routing on req.ssl_sni), same topology,
// same run: a client namespace, a balancer namespace holding both proxies and the backends on its
// loopback. lb serves VIP:443 through `lb daemon`'s acceptor (lb_sk_lookup), HAProxy VIP:4443 (the
// VIP is local there through lb's local route). lb is measured with each of its four relays, the
// daemon restarted between them (LB_SNI_RELAY):
// - lb: the default, the native front door (native/lb_door.c) accepts, reads the hello, connects
//   and relays; the daemon decides and accounts (door-acceptor.ts);
// - lb-splice: LB_SNI_RELAY=splice, Node's acceptor, which hands both sockets of a pair to the
//   pair keeper process, which moves the bytes with splice(2) through a pipe per direction;
// - lb-sockmap: LB_SNI_RELAY=kernel, the sockmap relay (lb_splice's sk_skb verdict, experimental);
// - lb-node: LB_SNI_RELAY=node, every byte through Node's stream.pipe in the daemon.
// Then a reference for the handshake rate, node-floor: the least proxy on Node's net.Socket
// (NODE_FLOOR), what any acceptor that holds its connections in Node sockets is bounded by.
// Each relay's rounds alternate with HAProxy's, and each is compared with the HAProxy rounds of
// its own block (other work on the machine shifts every figure over the minutes of a run).
// Figures:
// - new TLS connections/s, each proxy held to the same CPU budget (the goal's figure): lb's
//   processes (daemon and door) in one cgroup, a single-threaded HAProxy in another, each allowed
//   10% of one CPU (bench/lib/cpu-cap.ts), so the proxy bounds the rate, not the client;
// - new TLS connections/s unconstrained: full handshakes (Node tls client, 32 at a time) to a TLS
//   backend, and the proxy's CPU per connection (user + system, and user alone). The client's one
//   thread bounds this rate (docs/benchmarks.md, "Held to the same CPU"): no goal;
// - bulk throughput, 1 and 16 streams: a real ClientHello then raw bytes to a discarding
//   backend, so the proxies' relay is measured, not TLS crypto;
// - CPU seconds of the proxy per GB relayed, and of the whole machine (every CPU's busy time: the
//   sockmap relay moves the bytes in softirq and kworkers, which no process's time shows; clients
//   and sink are the same for every proxy). lb's CPU is the daemon's plus the door's (lb) or the
//   pair keeper's (the others: with the splice relay the keeper moves the bytes, not the daemon);
//   HAProxy's is its one process.
// Both share the machine's CPUs with the clients and backends (2 on the reference machine).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.js';
import { ManagedProcess, execIn, waitUntil } from '../src/sandbox/index.js';
import { endHolder, liveRecord } from '../src/acceptor/holder.js';
import { endPairKeeper, pairKeeperArgv0 } from '../src/acceptor/pair-keeper.js';
import { endDoor, liveDoor } from '../src/acceptor/door-process.js';
import { DataPlane, instanceDir } from '../src/dataplane/index.js';
import { runDir } from '../src/state/run-dir.js';
import { BenchError } from './lib/errors.js';
import { CpuCap } from './lib/cpu-cap.js';
import { formatNumber } from './report.js';
import { median, ratio } from './lib/stats.js';
import type { Measurement, Ratio, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const VIP = '10.233.9.10';
const LB_ADDR = '10.233.1.1';
const CLIENT_ADDR = '10.233.1.2';
const LB_PORT = 443;
const HAPROXY_PORT = 4443;
/** The single-threaded HAProxy of the CPU-budget rounds. */
const HAPROXY_1T_PORT = 4444;
const FLOOR_PORT = 5443;
const TLS_BACKEND = 9601;
const SINK_BACKEND = 9602;
const NAME = 'bench.example.com';
const HANDSHAKES = 2000;
const HANDSHAKE_CONCURRENCY = 32;
/**
 * Unmeasured handshakes through each proxy at the start of its block. A new daemon's JIT is still
 * at work well past its first thousand connections: with 1,000, perf found V8's optimizing
 * compiler in 103, 46 and 10 of the daemon's samples over the three rounds that followed (of
 * 556, 412 and 302), its CPU per connection falling round by round; after ~4,000 it is steady.
 */
const WARMUP_HANDSHAKES = 4000;
const BULK_BYTES = 512 * 1024 * 1024;
const ROUNDS = 3;
/**
 * The CPU budget of each proxy in the capped rounds: 2 ms per 20 ms period, 10% of one CPU. At
 * ~200 us per connection that is ~500 connections/s, well below the ~700-800 the client's thread
 * reaches, so the proxy is what bounds the rate. A short period keeps the throttled gaps short.
 */
const CAP_QUOTA_US = 2000;
const CAP_PERIOD_US = 20_000;
/**
 * Alternating pairs of capped rounds, and handshakes per round (~3 s each at the budget). One
 * pair's ratio moves by +-8% (the throttled periods fall differently), so the median of 9 pairs.
 */
const CAPPED_ROUNDS = 9;
const CAPPED_HANDSHAKES = 1500;
/**
 * Then pairs with lb's daemon taken out of the budget (the door alone in it): no goal, it shows
 * what the daemon's share of lb's budget costs (docs/benchmarks.md, "Held to the same CPU").
 */
const DOOR_ONLY_ROUNDS = 5;

/** Discards what it receives after the hello, then answers the byte count and closes. */
const SINK = `
const net = require('node:net');
net.createServer({ allowHalfOpen: true }, (s) => {
  let n = 0;
  s.on('data', (d) => { n += d.length; });
  s.on('end', () => s.end(String(n) + '\\n'));
  s.on('error', () => s.destroy());
}).listen(Number(process.argv[1]), '127.0.0.1', () => console.log(JSON.stringify({ ready: true })));
`;

/**
 * The floor: the least a proxy built on Node's net.Socket does per connection (accept, read the
 * first bytes, connect, write them, stream.pipe both ways; no parsing, no choice, no accounting).
 * Measured beside HAProxy for the handshake rate only: what any Node acceptor's rate is bounded by.
 */
const NODE_FLOOR = `
const net = require('node:net');
const [host, port, backend] = process.argv.slice(1);
net.createServer({ allowHalfOpen: true, noDelay: true }, (c) => {
  c.on('error', () => c.destroy());
  c.once('data', (first) => {
    c.pause();
    const b = net.connect({ host: '127.0.0.1', port: Number(backend), allowHalfOpen: true, noDelay: true }, () => {
      b.write(first);
      c.pipe(b);
      b.pipe(c);
      c.resume();
    });
    b.on('error', () => { b.destroy(); c.destroy(); });
    c.on('close', () => b.destroy());
  });
}).listen(Number(port), host, () => console.log(JSON.stringify({ ready: true })));
`;

/** Streams: a captured ClientHello, then raw bytes; resolves when every sink answered. Prints seconds. */
const BULK = `
const net = require('node:net');
const [host, port, streams, total, helloHex] = process.argv.slice(1);
const hello = Buffer.from(helloHex, 'hex');
const block = Buffer.alloc(256 * 1024, 7);
const per = Math.floor(Number(total) / Number(streams));
const one = () => new Promise((resolve, reject) => {
  const s = net.connect({ host, port: Number(port) }, () => {
    s.write(hello);
    let left = per;
    const pump = () => { while (left > 0) { const n = Math.min(left, block.length); left -= n; if (!s.write(block.subarray(0, n))) { s.once('drain', pump); return; } } s.end(); };
    pump();
  });
  let out = '';
  s.on('data', (d) => { out += d; });
  s.on('end', () => resolve(Number(out.trim())));
  s.on('error', reject);
});
const t0 = process.hrtime.bigint();
Promise.all(Array.from({ length: Number(streams) }, one)).then((counts) => {
  console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, received: counts.reduce((a, b) => a + b, 0) }));
}, (e) => { console.error(e.message); process.exit(1); });
`;

function sh(argv: string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** utime and stime of a process, in seconds (/proc/PID/stat, clock ticks of 100 Hz). */
function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** Busy time of every CPU since boot, in seconds (/proc/stat: all but idle and iowait; 100 Hz ticks). */
function machineCpuSeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) / 100;
}

type Relay = 'splice' | 'native' | 'kernel' | 'node';
type LbWho = 'lb' | 'lb-splice' | 'lb-sockmap' | 'lb-node';
/** A block of rounds: one of lb's variants, or the Node floor (handshakes only). */
type Block = LbWho | 'node-floor';
type Who = Block | 'haproxy';
/** lb's variants, in the order of their blocks, and the LB_SNI_RELAY each runs with (undefined: not set, the default). */
const VARIANTS: ReadonlyArray<{ who: LbWho; relay: Relay; env: string | undefined }> = [
  { who: 'lb', relay: 'native', env: undefined },
  { who: 'lb-splice', relay: 'splice', env: 'splice' },
  { who: 'lb-sockmap', relay: 'kernel', env: 'kernel' },
  { who: 'lb-node', relay: 'node', env: 'node' },
];
const WHOS: readonly Who[] = ['lb', 'lb-splice', 'lb-sockmap', 'lb-node', 'node-floor', 'haproxy'];
/** The figures the floor block measures (handshakes only). */
const FLOOR_KEYS = new Set(['handshakes', 'hscpu', 'hsuser', 'hsmachine']);

/**
 * HAProxy's configuration; `threads` sets nbthread (default: one per CPU). The capped rounds run
 * it with one: with its default two threads under a budget of a tenth of a CPU it served ~16%
 * fewer connections (docs/benchmarks.md), and lb's door is one thread too.
 */
export function haproxyConfig(vip: string, port: number, backend: number, sink: number, threads?: number): string {
  return `global
    maxconn 8000${threads === undefined ? '' : `\n    nbthread ${threads}`}
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend tls
    bind ${vip}:${port}
    tcp-request inspect-delay 10s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend sink if { req.ssl_sni -i api.example.com }
    default_backend tlsb
backend tlsb
    server b1 127.0.0.1:${backend}
backend sink
    server s1 127.0.0.1:${sink}
`;
}

/**
 * LB_BENCH_SNI_BLOCKS=lb-native,node-floor (say): only those blocks, in their usual order, to
 * iterate on one of them (not for the record: the record runs them all).
 */
function chosenBlocks(): { variants: typeof VARIANTS; withFloor: boolean } {
  const wanted = process.env.LB_BENCH_SNI_BLOCKS?.split(',').map((w) => w.trim()).filter(Boolean);
  if (!wanted || wanted.length === 0) return { variants: VARIANTS, withFloor: true };
  const known: string[] = [...VARIANTS.map((v) => v.who), 'node-floor'];
  const unknown = wanted.filter((w) => !known.includes(w));
  if (unknown.length > 0) throw new BenchError(`LB_BENCH_SNI_BLOCKS: unknown block(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
  return { variants: VARIANTS.filter((v) => wanted.includes(v.who)), withFloor: wanted.includes('node-floor') };
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const { variants, withFloor } = chosenBlocks();
  const root = packageRoot();
  const tag = `${process.pid % 100000}`;
  const LB = `lbsni${tag}-lb`;
  const CLIENT = `lbsni${tag}-c`;
  const instance = `bsni${tag}`;
  const dir = mkdtempSync(join(tmpdir(), 'lb-bench-sni-'));
  const procs: ManagedProcess[] = [];
  /** The capped rounds' cgroups, removed (their processes given back) however the run ends. */
  const caps: CpuCap[] = [];
  // LB_BENCH_SNI_PROFILE=DIR: the TLS backend, the TLS clients and the daemon relaying in Node write
  // V8 CPU profiles there (where the time per connection goes: docs/benchmarks.md section 6). Not the
  // first daemon: the profiler's SIGPROF makes the verifier give up loading the programs (EAGAIN);
  // the second adopts what the first loaded.
  const profileDir = process.env.LB_BENCH_SNI_PROFILE;
  const prof = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  try {
    sh(['ip', 'netns', 'add', LB]);
    sh(['ip', 'netns', 'add', CLIENT]);
    sh(['ip', '-n', LB, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', CLIENT]);
    for (const [ns, addr] of [[LB, LB_ADDR], [CLIENT, CLIENT_ADDR]] as const) {
      sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      sh(['ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    }
    sh(['ip', '-n', CLIENT, 'route', 'add', `${VIP}/32`, 'via', LB_ADDR]);
    sh(['ip', 'netns', 'exec', CLIENT, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);
    sh(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=bench', '-keyout', join(dir, 'b.key'), '-out', join(dir, 'b.crt')]);
    const start = async (argv: string[], label: string, ready: RegExp): Promise<ManagedProcess> => {
      const p = new ManagedProcess(argv, { label });
      procs.push(p);
      await p.waitForOutput(ready, 20_000);
      return p;
    };
    await start(['ip', 'netns', 'exec', LB, process.execPath, ...prof, join(root, 'dist', 'src', 'sandbox', 'tls-backend.js'), '--name', 'b1', '--port', String(TLS_BACKEND),
      '--cert', join(dir, 'b.crt'), '--key', join(dir, 'b.key')], 'tls backend', /"ready":true/);
    await start(['ip', 'netns', 'exec', LB, process.execPath, '-e', SINK, String(SINK_BACKEND)], 'sink', /"ready":true/);
    writeFileSync(join(dir, 'lb.yaml'), `proxies:
  - name: tls
    listen: {interfaces: [eth0], port: ${LB_PORT}, address: ${VIP}}
    default-target: {ip: 127.0.0.1, port: ${TLS_BACKEND}}
    sni-routes:
      - {sni-hostname: api.example.com, target: {ip: 127.0.0.1, port: ${SINK_BACKEND}}}
`);
    // The daemon with one relay; the serving log names the relay it uses (a relay that cannot run
    // falls back to Node, which would measure the wrong thing).
    const startDaemon = async (v: (typeof VARIANTS)[number]): Promise<ManagedProcess> => {
      const env: NodeJS.ProcessEnv = { ...process.env };
      // The default relay is measured as the default: LB_SNI_RELAY unset, not set to splice.
      if (v.env === undefined) delete env.LB_SNI_RELAY;
      else env.LB_SNI_RELAY = v.env;
      const p = new ManagedProcess(['nsenter', `--net=/run/netns/${LB}`, process.execPath, ...(v.relay === 'node' ? prof : []), join(root, 'dist', 'src', 'cli', 'main.js'), '--instance', instance, 'daemon',
        '--config', join(dir, 'lb.yaml'), '--poll', '1h', '--work-dir', join(dir, 'work')], { label: `lb daemon (${v.who}, relay ${v.relay})`, env });
      procs.push(p);
      await p.waitForOutput(/"msg":"SNI acceptor serving"/, 20_000);
      if (!p.stdout.includes(`"relay":"${v.relay}"`)) throw new BenchError(`lb daemon: asked to relay with ${v.relay}, its log says otherwise: ${p.stdout.slice(-800)}`);
      return p;
    };
    /** `count` full TLS handshakes from the client namespace to VIP:port, 32 at a time; throws if any failed. */
    const handshakes = async (port: number, count: number, nodeArgs: string[], what: string): Promise<void> => {
      const r = await execIn(CLIENT, [process.execPath, ...nodeArgs, join(root, 'dist', 'src', 'sandbox', 'tls-client.js'), '--host', VIP, '--port', String(port),
        '--servername', NAME, '--count', String(count), '--concurrency', String(HANDSHAKE_CONCURRENCY), '--timeout-ms', '30000'], { timeoutMs: 300_000 });
      const failed = (JSON.parse(r.stdout) as { results: Array<{ error?: string }> }).results.filter((x) => x.error).length;
      if (failed > 0) throw new BenchError(`${what}: ${failed} of ${count} handshakes failed`);
    };
    // The pair keeper's pid (the splice relay's byte mover), or with the native relay the door's
    // (it accepts and relays), from their records; both outlive daemon restarts, so the one a block
    // measures is read after that block's daemon started.
    const keeperPid = (relay: Relay): number | undefined => (relay === 'native' ? liveDoor(instance)?.pid
      : liveRecord(join(runDir(instance), 'pair-keeper.json'), pairKeeperArgv0(instance))?.pid);
    writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(VIP, HAPROXY_PORT, TLS_BACKEND, SINK_BACKEND));
    let haproxy: ManagedProcess | undefined;
    // A real hello (Node's, captured) naming api.example.com: the sink's route.
    const hello = readFileSync(join(root, 'test', 'fixtures', 'client-hello', 'node-sni.hex'), 'utf8').trim();
    const measurements: Measurement[] = [];
    /** Samples per figure and proxy; haproxy's of all blocks. */
    const figures: Record<string, Partial<Record<Who, number[]>>> = {};
    /** HAProxy's samples per figure, by the lb variant whose block they were measured in. */
    const haproxyBy: Record<string, Partial<Record<Block, number[]>>> = {};
    const add = (key: string, who: Who, v: number, block: Block): void => {
      ((figures[key] ??= {})[who] ??= []).push(v);
      if (who === 'haproxy') ((haproxyBy[key] ??= {})[block] ??= []).push(v);
    };
    // --quick (1 round) or --rounds N below 3 shortens it for iterating.
    const rounds = Math.min(ROUNDS, ctx.options.rounds);
    const bulkBytes = rounds < ROUNDS ? BULK_BYTES / 8 : BULK_BYTES;
    let daemon: ManagedProcess | undefined;
    let keeper: number | undefined;
    /** The floor block's proxy, once it started. */
    const floor: { proc?: ManagedProcess } = {};
    // The proxy's own processes: `ip netns exec` and nsenter exec them, so the ManagedProcess pid
    // is the process itself. lb's is the daemon and, when one runs, the pair keeper.
    const pidsOf = (who: Who): number[] => (who === 'haproxy' ? [haproxy!.pid!] : who === 'node-floor' ? [floor.proc!.pid!] : [daemon!.pid!, ...(keeper === undefined ? [] : [keeper])]);
    const cpuOf = (who: Who): { user: number; system: number; keeper: number } => {
      let user = 0;
      let system = 0;
      for (const pid of pidsOf(who)) {
        const t = cpuTimes(pid);
        user += t.user;
        system += t.system;
      }
      return { user, system, keeper: (who === 'lb' || who === 'lb-splice') && keeper !== undefined ? cpuSeconds(keeper) : 0 };
    };
    const portOf = (who: Who): number => (who === 'haproxy' ? HAPROXY_PORT : who === 'node-floor' ? FLOOR_PORT : LB_PORT);
    // Unmeasured handshakes through the block's proxy and HAProxy first: a daemon that has just
    // started compiles its accept path (V8's JIT) during its first connections (WARMUP_HANDSHAKES),
    // a cost it pays once in its life, not per connection. HAProxy gets as many, so both start
    // their rounds warm.
    const warmUp = async (who: Block): Promise<void> => {
      for (const w of [who, 'haproxy'] as const) {
        ctx.log(`sni: warm-up, ${w}: ${WARMUP_HANDSHAKES} handshakes (not measured)`);
        await handshakes(portOf(w), WARMUP_HANDSHAKES, [], `warm-up of ${w}`);
      }
    };
    /** One round of handshakes through `who`: the rate, and the proxy's and the machine's CPU per connection. */
    const handshakeRound = async (who: Who, block: Block, what: string): Promise<void> => {
      const hsCpu0 = cpuOf(who);
      const hsMachine0 = machineCpuSeconds();
      const t0 = process.hrtime.bigint();
      await handshakes(portOf(who), HANDSHAKES, prof, what);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      add('handshakes', who, HANDSHAKES / seconds, block);
      // The proxy's CPU per connection, and its user-space part (the system part is the kernel's
      // TCP work, about the same for every proxy): what the connection rate costs each of them.
      const hsCpu = cpuOf(who);
      add('hscpu', who, ((hsCpu.user + hsCpu.system - hsCpu0.user - hsCpu0.system) / HANDSHAKES) * 1e6, block);
      add('hsuser', who, ((hsCpu.user - hsCpu0.user) / HANDSHAKES) * 1e6, block);
      if (who === 'lb' || who === 'lb-splice') add('hskeeper', who, ((hsCpu.keeper - hsCpu0.keeper) / HANDSHAKES) * 1e6, block);
      // Every CPU's busy time per connection (client, backend, proxy, softirq): on 2 busy CPUs the
      // rate is about 2 CPUs over this, so the proxy's share of it is what the rate ratio moves with.
      add('hsmachine', who, ((machineCpuSeconds() - hsMachine0) / HANDSHAKES) * 1e6, block);
    };
    /** Who goes first alternates from round to round, and from block to block. */
    const order = (first: Who, round: number, block: number): Who[] => ((round + block) % 2 === 0 ? [first, 'haproxy'] : ['haproxy', first]);
    /** HAProxy from a configuration in `dir`, once it accepts on VIP:port. */
    const startHaproxy = async (cfg: string, port: number, label: string): Promise<ManagedProcess> => {
      const h = new ManagedProcess(['ip', 'netns', 'exec', LB, 'haproxy', '-db', '-f', join(dir, cfg)], { label });
      procs.push(h);
      await waitUntil(async () => (await execIn(CLIENT, ['bash', '-c', `exec 3<>/dev/tcp/${VIP}/${port}`], { allowFailure: true, timeoutMs: 2000 })).code === 0 || undefined,
        { timeoutMs: 20_000, intervalMs: 200, what: `${label} to listen (${h.stderr.slice(-500)})` });
      return h;
    };
    writeFileSync(join(dir, 'haproxy-1t.cfg'), haproxyConfig(VIP, HAPROXY_1T_PORT, TLS_BACKEND, SINK_BACKEND, 1));
    /**
     * The capped rounds (in lb's block, its daemon and door warm): lb's daemon and door in one
     * cgroup, a single-threaded HAProxy in another, each allowed CAP_QUOTA_US of CPU per
     * CAP_PERIOD_US; rounds of CAPPED_HANDSHAKES alternating between them. The rate, each proxy's
     * CPU per connection, and how much of its budget it used (near all of it: the proxy bounds
     * the rate; far below: something else does, and the note says so).
     */
    const cappedRounds = async (blockIndex: number): Promise<void> => {
      const h1 = await startHaproxy('haproxy-1t.cfg', HAPROXY_1T_PORT, 'haproxy (one thread)');
      ctx.log(`sni: warm-up, haproxy (one thread): ${WARMUP_HANDSHAKES} handshakes (not measured)`);
      await handshakes(HAPROXY_1T_PORT, WARMUP_HANDSHAKES, [], 'warm-up of haproxy (one thread)');
      const lbPids = [daemon!.pid!, keeper!];
      const lbCap = CpuCap.create(`lbsni${tag}-lb`, CAP_QUOTA_US, CAP_PERIOD_US);
      caps.push(lbCap);
      const haCap = CpuCap.create(`lbsni${tag}-haproxy`, CAP_QUOTA_US, CAP_PERIOD_US);
      caps.push(haCap);
      for (const pid of lbPids) lbCap.add(pid);
      haCap.add(h1.pid!);
      const budget = CAP_QUOTA_US / CAP_PERIOD_US;
      /** Pairs of capped rounds; `lbBudgeted`: lb's processes in its budget, whose CPU is counted. */
      const pairs = async (n: number, lbBudgeted: number[], keys: { rate: string; cpu?: string; used?: string }, what: string): Promise<void> => {
        for (let round = 0; round < n; round++) {
          for (const who of order('lb', round, blockIndex)) {
            const pids = who === 'haproxy' ? [h1.pid!] : lbBudgeted;
            const cpu = (): number => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
            ctx.log(`sni: ${what} round ${round + 1}, ${who === 'haproxy' ? 'haproxy (one thread)' : who}: ${CAPPED_HANDSHAKES} handshakes, ${budget * 100}% of one CPU`);
            const cpu0 = cpu();
            const t0 = process.hrtime.bigint();
            await handshakes(who === 'haproxy' ? HAPROXY_1T_PORT : LB_PORT, CAPPED_HANDSHAKES, [], `${what} ${who}`);
            const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
            const used = cpu() - cpu0;
            add(keys.rate, who, CAPPED_HANDSHAKES / seconds, 'lb');
            if (keys.cpu) add(keys.cpu, who, (used / CAPPED_HANDSHAKES) * 1e6, 'lb');
            if (keys.used) add(keys.used, who, (used / seconds / budget) * 100, 'lb');
          }
        }
      };
      await pairs(rounds < ROUNDS ? rounds : CAPPED_ROUNDS, lbPids, { rate: 'capped', cpu: 'cappedcpu', used: 'cappedused' }, 'capped');
      lbCap.release(daemon!.pid!);
      await pairs(rounds < ROUNDS ? 1 : DOOR_ONLY_ROUNDS, [keeper!], { rate: 'cappeddoor' }, 'capped, the door alone,');
      capThrottled = { lb: lbCap.stats().throttled, haproxy: haCap.stats().throttled };
      lbCap.remove();
      haCap.remove();
      await h1.stop(3000);
    };
    let capThrottled: { lb: number; haproxy: number } | undefined;
    let block = 0;
    // One block per relay: the daemon (re)started with it, then its rounds alternating with
    // HAProxy's.
    for (const v of variants) {
      if (daemon) {
        ctx.log(`sni: restarting the daemon with relay ${v.relay} (${v.who})`);
        await daemon.stop(5000);
      }
      daemon = await startDaemon(v);
      // The VIP is local in the balancer namespace once lb's daemon set its route (a daemon
      // restart keeps it): HAProxy binds it then, and serves every block from one start.
      haproxy ??= await startHaproxy('haproxy.cfg', HAPROXY_PORT, 'haproxy');
      keeper = keeperPid(v.relay);
      if ((v.relay === 'splice' || v.relay === 'native') && keeper === undefined) {
        throw new BenchError(`${v.who}: the ${v.relay} relay runs but no live ${v.relay === 'native' ? 'door' : 'pair keeper'} is recorded in ${runDir(instance)}`);
      }
      await warmUp(v.who);
      for (let round = 0; round < rounds; round++) {
        for (const who of order(v.who, round, block)) {
          const what = who === 'haproxy' ? `haproxy (${v.who}'s block)` : who;
          ctx.log(`sni: round ${round + 1}, ${what}: ${HANDSHAKES} handshakes`);
          await handshakeRound(who, v.who, what);
          for (const streams of [1, 16]) {
            ctx.log(`sni: round ${round + 1}, ${what}: ${bulkBytes / 2 ** 20} MiB over ${streams} stream(s)`);
            const cpu0 = cpuOf(who);
            const machine0 = machineCpuSeconds();
            const b = await execIn(CLIENT, [process.execPath, '-e', BULK, VIP, String(portOf(who)), String(streams), String(bulkBytes), hello], { timeoutMs: 300_000 });
            const cpu1 = cpuOf(who);
            const machine = machineCpuSeconds() - machine0;
            const out = JSON.parse(b.stdout.trim().split('\n').pop()!) as { seconds: number; received: number };
            if (out.received < bulkBytes - 16 * 256 * 1024) throw new BenchError(`${what}: the sink received ${out.received} of ${bulkBytes} bytes`);
            const gb = out.received / 1e9;
            add(`bulk${streams}`, who, (out.received * 8) / out.seconds / 1e9, v.who);
            add(`cpu${streams}`, who, (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / gb, v.who);
            if (who === 'lb' || who === 'lb-splice') add(`keeper${streams}`, who, (cpu1.keeper - cpu0.keeper) / gb, v.who);
            add(`machine${streams}`, who, machine / gb, v.who);
          }
        }
      }
      // The goal's figure, with the default relay: each proxy held to the same CPU budget.
      if (v.who === 'lb') await cappedRounds(block);
      block++;
    }
    // The floor block: the least Node proxy (NODE_FLOOR) against HAProxy, handshakes only; the
    // daemon stays up (idle) as in the other blocks, where the idle proxies do too.
    if (withFloor) floor.proc = await start(['ip', 'netns', 'exec', LB, process.execPath, '-e', NODE_FLOOR, VIP, String(FLOOR_PORT), String(TLS_BACKEND)], 'node floor proxy', /"ready":true/);
    if (withFloor) await warmUp('node-floor');
    for (let round = 0; round < (withFloor ? rounds : 0); round++) {
      for (const who of order('node-floor', round, block)) {
        const what = who === 'haproxy' ? 'haproxy (node-floor\'s block)' : who;
        ctx.log(`sni: round ${round + 1}, ${what}: ${HANDSHAKES} handshakes`);
        await handshakeRound(who, 'node-floor', what);
      }
    }
    const units: Record<string, [string, string]> = {
      capped: [`new TLS connections/s, each proxy held to ${(CAP_QUOTA_US / CAP_PERIOD_US) * 100}% of one CPU (lb: daemon + door; haproxy: one thread)`, 'conn/s'],
      cappedcpu: ['proxy CPU per new TLS connection, held to the budget', 'CPU us/conn'],
      cappedused: ['share of its CPU budget the proxy used in the capped rounds', '%'],
      cappeddoor: ['new TLS connections/s held to the same budget, lb\'s door alone in it (the daemon outside; no goal: what the daemon\'s share costs)', 'conn/s'],
      handshakes: ['new TLS connections/s unconstrained (full handshakes, 32 at a time; the client\'s thread bounds it: no goal)', 'conn/s'],
      hscpu: ['proxy CPU per new TLS connection (user + system; lb: daemon + door; others: daemon + pair keeper)', 'CPU us/conn'],
      hsuser: ['proxy user-space CPU per new TLS connection (lb: daemon + door; others: daemon + pair keeper)', 'CPU us/conn'],
      hskeeper: ['of which the native door (lb) or the pair keeper (lb-splice), per new TLS connection', 'CPU us/conn'],
      hsmachine: ['machine CPU per new TLS connection (client, backend, proxy, softirq)', 'CPU us/conn'],
      bulk1: ['bulk throughput, 1 stream', 'Gbit/s'],
      bulk16: ['bulk throughput, 16 streams', 'Gbit/s'],
      cpu1: ['proxy CPU per GB relayed, 1 stream (lb: daemon + door; others: daemon + pair keeper)', 'CPU s/GB'],
      keeper1: ['of which the native door (lb) or the pair keeper (lb-splice), 1 stream', 'CPU s/GB'],
      cpu16: ['proxy CPU per GB relayed, 16 streams (lb: daemon + door; others: daemon + pair keeper)', 'CPU s/GB'],
      keeper16: ['of which the native door (lb) or the pair keeper (lb-splice), 16 streams', 'CPU s/GB'],
      machine1: ['machine CPU per GB relayed (all processes, softirq, kworkers), 1 stream', 'CPU s/GB'],
      machine16: ['machine CPU per GB relayed (all processes, softirq, kworkers), 16 streams', 'CPU s/GB'],
    };
    // Goals (lb / haproxy >= 1.0x): connections/s, both throughputs and the machine's CPU per GB;
    // the proxy's own CPU carries none (the sockmap relay's bytes are not in any process's time).
    // The unconstrained rate carries none: the client's one thread bounds it (a proxy that costs
    // 1.7x HAProxy's CPU per connection met 1.04x there; docs/benchmarks.md, "Held to the same CPU").
    const goals = new Set(['capped', 'bulk1', 'bulk16', 'machine1', 'machine16']);
    const ratios: Ratio[] = [];
    for (const [key, [label, unit]] of Object.entries(units)) {
      const byWho = figures[key];
      if (!byWho) continue;
      for (const who of WHOS) {
        const samples = byWho[who];
        if (!samples) continue;
        measurements.push({
          key: `${key}_${who.replace('-', '_')}`, label: `${label}: ${who}`, value: median(samples), unit, samples,
          ...(who === 'haproxy' ? { detail: { byBlock: haproxyBy[key] } } : {}),
        });
      }
      if (key.startsWith('keeper') || key === 'hskeeper' || key === 'cappedused') continue;
      const cpu = key.startsWith('cpu') || key.startsWith('machine') || key.startsWith('hs') || key === 'cappedcpu';
      const blocks: Block[] = [...variants.map((v) => v.who), ...(FLOOR_KEYS.has(key) && withFloor ? ['node-floor' as const] : [])];
      for (const who of blocks) {
        const mineRounds = byWho[who] ?? [];
        if (mineRounds.length === 0) continue; // the capped rounds run in lb's block only
        // Against the HAProxy rounds of the same block, alternated with this variant's.
        const theirRounds = haproxyBy[key]?.[who] ?? [];
        const mine = median(mineRounds);
        const theirs = median(theirRounds);
        const of = (a: number, b: number): number => (cpu ? ratio(b, a) : ratio(a, b));
        // Round i of each ran next to the other (order alternates): the median of the rounds'
        // ratios takes out the machine's drift over the minutes of a block, which the ratio of
        // the medians keeps (docs/benchmarks.md, "The door decides").
        const paired = mineRounds.length === theirRounds.length && mineRounds.length > 0
          ? median(mineRounds.map((m, i) => of(m, theirRounds[i]!)))
          : of(mine, theirs);
        ratios.push({
          key: `${key}_${who.replace('-', '_')}_vs_haproxy`,
          label: cpu ? `${label}: haproxy / ${who} (higher: ${who} cheaper)` : `${label}: ${who} / haproxy`,
          value: paired,
          note: `haproxy ${formatNumber(theirs)} in ${who}'s block; median of the rounds' ratios; ratio of the medians ${formatNumber(of(mine, theirs))}x`,
          // The floor is a reference, not lb: no goal.
          ...(goals.has(key) && who !== 'node-floor' ? { goal: 1 } : {}),
        });
      }
    }
    return {
      suite: 'sni', title: 'SNI routing: lb acceptor (native door and 3 Node relays) vs HAProxy (TCP mode, req.ssl_sni)',
      method: [
        `Both proxies in one namespace on the same VIP (lb :${LB_PORT} via lb_sk_lookup, haproxy :${HAPROXY_PORT}), backends on its loopback, clients in another namespace over a veth.`,
        `Handshakes: ${HANDSHAKES} Node tls connections, ${HANDSHAKE_CONCURRENCY} at a time, to a Node TLS backend (which bounds both); the proxy's CPU per connection (user + system, and user alone) over the same run.`,
        `Bulk: a captured ClientHello naming api.example.com (the sink's route), then ${bulkBytes / 2 ** 20} MiB of raw bytes to a discarding backend, over 1 and 16 streams; CPU of the proxy's processes from /proc/PID/stat, of the machine from /proc/stat.`,
        'lb: the default (LB_SNI_RELAY unset): the native front door, build/native/lb-door, accepts, reads the hello, connects and relays (splice(2) past 64 KiB), the daemon decides; lb-splice: LB_SNI_RELAY=splice (Node\'s acceptor; the pair keeper process splices each pair through pipes); lb-sockmap: LB_SNI_RELAY=kernel (lb_splice sk_skb verdict, experimental); lb-node: LB_SNI_RELAY=node (stream.pipe in the daemon).',
        `Four blocks, lb then lb-splice then lb-sockmap then lb-node; the daemon is restarted (same instance, its listening socket taken back from the holder) at the start of each after the first; haproxy runs throughout from one start.`,
        `Each block starts with ${WARMUP_HANDSHAKES} unmeasured handshakes through the variant and through haproxy (a new daemon compiles its accept path during its first connections, once in its life).`,
        `Each block: ${rounds} round(s) alternating the variant and haproxy; medians; each ratio is the median of the rounds' ratios against the haproxy round run next to it in the same block (the ratio of the medians in its note)${rounds < ROUNDS ? ` (--quick: ${bulkBytes / 2 ** 20} MiB bulk, not for the record)` : ''}.`,
        `In lb's block, after its rounds: ${rounds < ROUNDS ? rounds : CAPPED_ROUNDS} pairs of capped rounds (${CAPPED_HANDSHAKES} handshakes each, alternating): lb's daemon and door in one cgroup, a second HAProxy with nbthread 1 (VIP:${HAPROXY_1T_PORT}, warmed up with ${WARMUP_HANDSHAKES} handshakes) in another, each with a CFS quota of ${CAP_QUOTA_US} us per ${CAP_PERIOD_US} us (${(CAP_QUOTA_US / CAP_PERIOD_US) * 100}% of one CPU; bench/lib/cpu-cap.ts): the proxy bounds the rate, not the client. This rate carries the goal; the unconstrained one, bounded by the client's one thread, does not.`,
        `Then ${rounds < ROUNDS ? 1 : DOOR_ONLY_ROUNDS} pairs with lb's daemon given back to the root group, the door alone in lb's budget against the same HAProxy (cappeddoor, no goal: the daemon's share of lb's budget is the difference).`,
        `A fifth block, node-floor, handshakes only: the least proxy on Node's net.Socket (accept, read the first bytes, connect, write them, stream.pipe both ways; no parsing, choice or accounting) on VIP:${FLOOR_PORT}, alternating with haproxy as above: the bound of any acceptor built on Node sockets, no goal.`,
      ],
      measurements, ratios,
      notes: [
        'lb\'s proxy CPU is the daemon\'s plus the native door\'s (lb-acceptor-holder:<instance>:door, pid from /run/lb/<instance>/door.json), which holds the connections and moves the bytes; for the other variants the daemon\'s plus the pair keeper\'s (lb-acceptor-holder:<instance>:pairs, /run/lb/<instance>/pair-keeper.json): with the splice relay the keeper moves the bytes, with lb-sockmap it only holds descriptors and with lb-node it idles ("of which" rows).',
        'The sockmap relay moves a pair\'s bytes in softirq and the psock\'s kworker, in no process\'s time: for lb-sockmap compare the machine CPU figures, not the proxy\'s.',
        ...(capThrottled ? [`Capped rounds: periods in which the budget ran out, lb ${capThrottled.lb}, haproxy ${capThrottled.haproxy}; the share of its budget each used is a figure above (near 100%: the proxy bounded the rate).`] : []),
      ],
    };
  } finally {
    for (const cap of caps) {
      try { cap.remove(); } catch { /* reported by the run's own error, if any */ }
    }
    for (const p of procs.reverse()) await p.stop(3000).catch(() => undefined);
    for (const ns of [CLIENT, LB]) { try { sh(['ip', 'netns', 'del', ns]); } catch { /* already gone */ } }
    if (existsSync(instanceDir(instance))) DataPlane.down(instance);
    // As lb down: the daemon leaves its socket holder and its pair keeper (the splice and sockmap
    // relays') running for a restart (src/acceptor/holder.ts, pair-keeper.ts).
    endHolder(instance);
    endPairKeeper(instance);
    endDoor(instance);
    rmSync(runDir(instance), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

export const sniSuite: Suite = { name: 'sni', title: 'SNI routing vs HAProxy', run };
