// SNI routing against HAProxy (Debian's haproxy, TCP mode routing on req.ssl_sni), same topology,
// same run: a client namespace, a balancer namespace holding both proxies and the backends on its
// loopback. lb serves VIP:443 through `lb daemon`'s acceptor (lb_sk_lookup, then the relay spliced
// in the kernel: lb_splice), HAProxy VIP:4443 (the VIP is local there through lb's local route);
// then the daemon again with LB_SNI_RELAY=node (every byte through Node's stream.pipe: the
// fallback, and the plain user-space relay to compare the splice with). Figures:
// - new TLS connections/s: full handshakes (Node tls client, 32 at a time) to a TLS backend, and
//   the proxy's CPU per connection (user + system, and user alone);
// - bulk throughput, 1 and 16 streams: a real ClientHello then raw bytes to a discarding
//   backend, so the proxies' relay is measured, not TLS crypto;
// - CPU seconds of the proxy process (the daemon / haproxy) per GB relayed, and of the whole
//   machine (every CPU's busy time: the spliced bytes are moved in softirq and kworkers, which no
//   process's time shows; clients and sink are the same for every proxy).
// Both share the machine's CPUs with the clients and backends (2 on the reference machine).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.js';
import { ManagedProcess, execIn, waitUntil } from '../src/sandbox/index.js';
import { endHolder } from '../src/acceptor/holder.js';
import { endPairKeeper } from '../src/acceptor/pair-keeper.js';
import { DataPlane, instanceDir } from '../src/dataplane/index.js';
import { runDir } from '../src/state/run-dir.js';
import { BenchError } from './lib/errors.js';
import { median, ratio } from './lib/stats.js';
import type { Measurement, Ratio, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const VIP = '10.233.9.10';
const LB_ADDR = '10.233.1.1';
const CLIENT_ADDR = '10.233.1.2';
const LB_PORT = 443;
const HAPROXY_PORT = 4443;
const TLS_BACKEND = 9601;
const SINK_BACKEND = 9602;
const NAME = 'bench.example.com';
const HANDSHAKES = 2000;
const HANDSHAKE_CONCURRENCY = 32;
const BULK_BYTES = 512 * 1024 * 1024;
const ROUNDS = 3;

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

type Who = 'lb' | 'lb-node' | 'haproxy';

export function haproxyConfig(vip: string, port: number, backend: number, sink: number): string {
  return `global
    maxconn 8000
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

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const root = packageRoot();
  const tag = `${process.pid % 100000}`;
  const LB = `lbsni${tag}-lb`;
  const CLIENT = `lbsni${tag}-c`;
  const instance = `bsni${tag}`;
  const dir = mkdtempSync(join(tmpdir(), 'lb-bench-sni-'));
  const procs: ManagedProcess[] = [];
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
    // The daemon, relaying in the kernel (the default) or in Node; the serving log names the relay.
    const startDaemon = async (relay: 'kernel' | 'node'): Promise<ManagedProcess> => {
      const p = new ManagedProcess(['nsenter', `--net=/run/netns/${LB}`, process.execPath, ...(relay === 'node' ? prof : []), join(root, 'dist', 'src', 'cli', 'main.js'), '--instance', instance, 'daemon',
        '--config', join(dir, 'lb.yaml'), '--poll', '1h', '--work-dir', join(dir, 'work')], { label: `lb daemon (${relay})`, env: { ...process.env, LB_SNI_RELAY: relay } });
      procs.push(p);
      await p.waitForOutput(/"msg":"SNI acceptor serving"/, 20_000);
      if (!p.stdout.includes(`"relay":"${relay}"`)) throw new BenchError(`lb daemon: asked to relay in ${relay}, its log says otherwise: ${p.stdout.slice(-800)}`);
      return p;
    };
    let daemon = await startDaemon('kernel');
    writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(VIP, HAPROXY_PORT, TLS_BACKEND, SINK_BACKEND));
    const haproxy = new ManagedProcess(['ip', 'netns', 'exec', LB, 'haproxy', '-db', '-f', join(dir, 'haproxy.cfg')], { label: 'haproxy' });
    procs.push(haproxy);
    await waitUntil(async () => (await execIn(CLIENT, ['bash', '-c', `exec 3<>/dev/tcp/${VIP}/${HAPROXY_PORT}`], { allowFailure: true, timeoutMs: 2000 })).code === 0 || undefined,
      { timeoutMs: 20_000, intervalMs: 200, what: `haproxy to listen (${haproxy.stderr.slice(-500)})` });
    // The proxy's own pid: `ip netns exec` execs it, so the ManagedProcess pid is the process itself.
    const pids: Record<Who, number> = { lb: daemon.pid!, 'lb-node': 0, haproxy: haproxy.pid! };
    // A real hello (Node's, captured) naming api.example.com: the sink's route.
    const hello = readFileSync(join(root, 'test', 'fixtures', 'client-hello', 'node-sni.hex'), 'utf8').trim();
    const measurements: Measurement[] = [];
    const figures: Record<string, Record<Who, number[]>> = {};
    const add = (key: string, who: Who, v: number): void => { ((figures[key] ??= { lb: [], 'lb-node': [], haproxy: [] })[who]).push(v); };
    // Rounds alternate lb (spliced) and haproxy; then the daemon restarts relaying in Node for lb-node's rounds.
    const order: Who[][] = [];
    // --quick (1 round) or --rounds N below 3 shortens it for iterating.
    const rounds = Math.min(ROUNDS, ctx.options.rounds);
    const bulkBytes = rounds < ROUNDS ? BULK_BYTES / 8 : BULK_BYTES;
    for (let round = 0; round < rounds; round++) order.push(round % 2 === 0 ? ['lb', 'haproxy'] : ['haproxy', 'lb']);
    for (let round = 0; round < rounds; round++) order.push(['lb-node']);
    for (const [i, whos] of order.entries()) {
      const round = i % rounds;
      for (const who of whos) {
        if (who === 'lb-node' && pids['lb-node'] === 0) {
          await daemon.stop(5000);
          daemon = await startDaemon('node');
          pids['lb-node'] = daemon.pid!;
        }
        const port = who === 'haproxy' ? HAPROXY_PORT : LB_PORT;
        ctx.log(`sni: round ${round + 1}, ${who}: ${HANDSHAKES} handshakes`);
        const hsCpu0 = cpuTimes(pids[who]);
        const hsMachine0 = machineCpuSeconds();
        const t0 = process.hrtime.bigint();
        const r = await execIn(CLIENT, [process.execPath, ...prof, join(root, 'dist', 'src', 'sandbox', 'tls-client.js'), '--host', VIP, '--port', String(port),
          '--servername', NAME, '--count', String(HANDSHAKES), '--concurrency', String(HANDSHAKE_CONCURRENCY), '--timeout-ms', '30000'], { timeoutMs: 300_000 });
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const results = (JSON.parse(r.stdout) as { results: Array<{ error?: string }> }).results;
        const errors = results.filter((x) => x.error).length;
        if (errors > 0) throw new BenchError(`${who}: ${errors} of ${HANDSHAKES} handshakes failed`);
        add('handshakes', who, HANDSHAKES / seconds);
        // The proxy's CPU per connection, and its user-space part (the system part is the kernel's
        // TCP work, about the same for every proxy): what the connection rate costs each of them.
        const hsCpu = cpuTimes(pids[who]);
        add('hscpu', who, ((hsCpu.user + hsCpu.system - hsCpu0.user - hsCpu0.system) / HANDSHAKES) * 1e6);
        add('hsuser', who, ((hsCpu.user - hsCpu0.user) / HANDSHAKES) * 1e6);
        // Every CPU's busy time per connection (client, backend, proxy, softirq): on 2 busy CPUs the
        // rate is about 2 CPUs over this, so the proxy's share of it is what the rate ratio moves with.
        add('hsmachine', who, ((machineCpuSeconds() - hsMachine0) / HANDSHAKES) * 1e6);
        for (const streams of [1, 16]) {
          ctx.log(`sni: round ${round + 1}, ${who}: ${bulkBytes / 2 ** 20} MiB over ${streams} stream(s)`);
          const cpu0 = cpuSeconds(pids[who]);
          const machine0 = machineCpuSeconds();
          const b = await execIn(CLIENT, [process.execPath, '-e', BULK, VIP, String(port), String(streams), String(bulkBytes), hello], { timeoutMs: 300_000 });
          const cpu = cpuSeconds(pids[who]) - cpu0;
          const machine = machineCpuSeconds() - machine0;
          const out = JSON.parse(b.stdout.trim().split('\n').pop()!) as { seconds: number; received: number };
          if (out.received < bulkBytes - 16 * 256 * 1024) throw new BenchError(`${who}: the sink received ${out.received} of ${bulkBytes} bytes`);
          add(`bulk${streams}`, who, (out.received * 8) / out.seconds / 1e9);
          add(`cpu${streams}`, who, cpu / (out.received / 1e9));
          add(`machine${streams}`, who, machine / (out.received / 1e9));
        }
      }
    }
    const units: Record<string, [string, string]> = {
      handshakes: ['new TLS connections/s (full handshakes, 32 at a time)', 'conn/s'],
      hscpu: ['proxy CPU per new TLS connection (user + system)', 'CPU us/conn'],
      hsuser: ['proxy user-space CPU per new TLS connection', 'CPU us/conn'],
      hsmachine: ['machine CPU per new TLS connection (client, backend, proxy, softirq)', 'CPU us/conn'],
      bulk1: ['bulk throughput, 1 stream', 'Gbit/s'],
      bulk16: ['bulk throughput, 16 streams', 'Gbit/s'],
      cpu1: ['proxy CPU per GB relayed, 1 stream', 'CPU s/GB'],
      cpu16: ['proxy CPU per GB relayed, 16 streams', 'CPU s/GB'],
      machine1: ['machine CPU per GB relayed (all processes, softirq, kworkers), 1 stream', 'CPU s/GB'],
      machine16: ['machine CPU per GB relayed (all processes, softirq, kworkers), 16 streams', 'CPU s/GB'],
    };
    const ratios: Ratio[] = [];
    for (const [key, byWho] of Object.entries(figures)) {
      const [label, unit] = units[key]!;
      for (const who of ['lb', 'lb-node', 'haproxy'] as const) {
        measurements.push({ key: `${key}_${who.replace('-', '_')}`, label: `${label}: ${who}`, value: median(byWho[who]), unit, samples: byWho[who] });
      }
      const cpu = key.startsWith('cpu') || key.startsWith('machine') || key.startsWith('hs');
      for (const other of ['haproxy', 'lb-node'] as const) {
        ratios.push({
          key: `${key}_lb_vs_${other.replace('-', '_')}`, label: cpu ? `${label}: ${other} / lb (higher: lb cheaper)` : `${label}: lb / ${other}`,
          value: cpu ? ratio(median(byWho[other]), median(byWho.lb)) : ratio(median(byWho.lb), median(byWho[other])),
          ...(other === 'haproxy' && !key.startsWith('cpu') && !key.startsWith('hs') ? { goal: 1 } : {}),
        });
      }
    }
    return {
      suite: 'sni', title: 'SNI routing: lb acceptor vs HAProxy (TCP mode, req.ssl_sni)',
      method: [
        `Both proxies in one namespace on the same VIP (lb :${LB_PORT} via lb_sk_lookup, haproxy :${HAPROXY_PORT}), backends on its loopback, clients in another namespace over a veth.`,
        `Handshakes: ${HANDSHAKES} Node tls connections, ${HANDSHAKE_CONCURRENCY} at a time, to a Node TLS backend (which bounds both); the proxy process's CPU per connection (user + system, and user alone) over the same run.`,
        `Bulk: a captured ClientHello naming api.example.com (the sink's route), then ${BULK_BYTES / 2 ** 20} MiB of raw bytes to a discarding backend, over 1 and 16 streams; CPU of the proxy process from /proc/PID/stat, of the machine from /proc/stat.`,
        `lb splices in the kernel (lb_splice, LB_SNI_RELAY=kernel: opt-in, docs/sni.md); lb-node is the same daemon restarted with LB_SNI_RELAY=node (Node's stream.pipe, the default relay).`,
        `${rounds} rounds alternating lb and haproxy, then ${rounds} rounds of lb-node; medians${rounds < ROUNDS ? ` (--quick: ${bulkBytes / 2 ** 20} MiB bulk, not for the record)` : ''}.`,
      ],
      measurements, ratios,
      notes: ['A spliced pair\'s bytes are moved in softirq and the psock\'s kworker, not in the daemon: compare the machine CPU figures, not the proxy process\'s.'],
    };
  } finally {
    for (const p of procs.reverse()) await p.stop(3000).catch(() => undefined);
    for (const ns of [CLIENT, LB]) { try { sh(['ip', 'netns', 'del', ns]); } catch { /* already gone */ } }
    if (existsSync(instanceDir(instance))) DataPlane.down(instance);
    // As lb down: the daemon leaves its socket holder and its pair keeper (the kernel relay's)
    // running for a restart (src/acceptor/holder.ts, pair-keeper.ts).
    endHolder(instance);
    endPairKeeper(instance);
    rmSync(runDir(instance), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

export const sniSuite: Suite = { name: 'sni', title: 'SNI routing vs HAProxy', run };
