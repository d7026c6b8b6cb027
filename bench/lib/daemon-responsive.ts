// The daemon's ops endpoint while it prepares and applies a large config (the [ingest] goal:
// /healthz, webhooks and the control socket answer within 100 ms during the largest allowed
// config). One round: the built `lb daemon --config FILE` in the scratch namespace applies a
// config of one proxy; a probe inside that namespace scrapes /metrics once (which resets the
// daemon's event-loop delay histogram, prom-client's nodejs_eventloop_lag_max_seconds) and then
// asks /healthz over and over, a connection per request; the file is replaced by N proxies; once
// the daemon logged that it applied them, the probe stops and scrapes /metrics again: the longest
// /healthz wait and the daemon's own largest event-loop delay over the whole run. Then, the N
// proxies applied, the scrape phase: SCRAPES scrapes of /metrics a little over a second apart (so
// each reads the kernel maps again) while /healthz is asked back to back beside them: the longest
// /healthz wait, the longest scrape and the largest event-loop delay the scrapes report.
// Traffic: 127.0.0.1 of the scratch namespace only.

import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, waitUntil } from '../../src/sandbox/index.js';
import { BenchError } from './errors.js';
import { proxiesYaml } from './proxies-yaml.js';

export interface ResponsiveRound {
  /** /healthz answers during the run. */
  answers: number;
  /** The longest /healthz wait, ms. */
  healthzMaxMs: number;
  /** The daemon's largest event-loop delay over the run (its /metrics), ms. */
  loopDelayMaxMs: number;
  /** The daemon's reconcile of the large config (its log), ms. */
  runMs: number;
  /** CPU time of the daemon's main thread (its event loop) from the swap to the end, ms: what load does not inflate. */
  mainThreadCpuMs: number;
  /** The scrape phase (N proxies applied). */
  scrape: ScrapePhase;
}

export interface ScrapePhase {
  scrapes: number;
  /** /healthz answers during the scrapes. */
  answers: number;
  /** The longest /healthz wait while /metrics was scraped, ms. */
  healthzMaxMs: number;
  /** The longest /metrics answer, ms. */
  scrapeMaxMs: number;
  /** The largest nodejs_eventloop_lag_max_seconds the scrapes reported (each covers the time since the one before, its own rendering included), ms. */
  loopDelayMaxMs: number;
  /** CPU time of the daemon's main thread over the phase, ms. */
  mainThreadCpuMs: number;
}

/** Scrapes of the scrape phase. */
const SCRAPES = 4;

/** User + system CPU time of a process's main thread, ms (/proc; clock ticks of 10 ms). */
function mainThreadCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime), counted after the command's closing parenthesis.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * For a probe script run with `node --input-type=module -e`: `get(path)` asks the daemon's ops
 * endpoint on 127.0.0.1:`port` (a variable the script defines first) with a connection of its own,
 * and resolves with the wait, the status code and the body.
 */
export function probeGetSource(timeoutMs: number): string {
  return `
import http from 'node:http';
import { performance } from 'node:perf_hooks';
const get = (path) => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const req = http.get({ host: '127.0.0.1', port: Number(port), path, agent: false, timeout: ${timeoutMs} }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { body += d; });
    res.on('end', () => resolve({ ms: performance.now() - t0, code: res.statusCode, body }));
  });
  req.on('timeout', () => req.destroy(new Error(path + ' timed out')));
  req.on('error', reject);
});
`;
}

const PROBE = `${probeGetSource(60_000)}
const [port, maxMs] = process.argv.slice(1);
let stop = false;
process.stdin.on('data', () => { stop = true; });
process.stdin.on('end', () => { stop = true; });
await get('/metrics');
process.stdout.write('ready\\n');
const deadline = Date.now() + Number(maxMs);
let answers = 0;
let maxWait = 0;
while (!stop && Date.now() < deadline && answers < 1000000) {
  const h = await get('/healthz');
  if (h.code !== 200) throw new Error('/healthz answered ' + h.code);
  answers++;
  maxWait = Math.max(maxWait, h.ms);
}
const lagOf = (body) => {
  const lag = /^nodejs_eventloop_lag_max_seconds (\\S+)/m.exec(body);
  return lag ? Number(lag[1]) * 1000 : -1;
};
const m = await get('/metrics');
process.stdout.write(JSON.stringify({ answers, maxWait, lagMaxMs: lagOf(m.body) }) + '\\n');
// The scrape phase: /healthz back to back while /metrics is scraped SCRAPES times.
let scraping = true;
const healthz = (async () => {
  let n = 0;
  let max = 0;
  while (scraping && n < 1000000) {
    const h = await get('/healthz');
    if (h.code !== 200) throw new Error('/healthz answered ' + h.code);
    n++;
    max = Math.max(max, h.ms);
  }
  return { n, max };
})();
let scrapeMax = 0;
let lagMax = 0;
const scrapes = Number(process.argv[3]);
for (let i = 0; i < scrapes; i++) {
  await new Promise((r) => setTimeout(r, 1100));
  const s = await get('/metrics');
  if (s.code !== 200 || !s.body.includes('lb_backend_packets_total{')) throw new Error('/metrics answered ' + s.code + ' without the backends');
  scrapeMax = Math.max(scrapeMax, s.ms);
  lagMax = Math.max(lagMax, lagOf(s.body));
}
scraping = false;
const h = await healthz;
process.stdout.write(JSON.stringify({ scrape: { scrapes, answers: h.n, healthzMaxMs: h.max, scrapeMaxMs: scrapeMax, loopDelayMaxMs: lagMax } }) + '\\n');
`;

/** One round on interface `ifname` of namespace `ns`, instance `instance` (the caller takes it down). */
export async function responsiveRound(opts: { ns: string; ifname: string; instance: string; port: number; proxies: number; cli: string }): Promise<ResponsiveRound> {
  const dir = mkdtempSync(join(tmpdir(), 'lb-bench-responsive-'));
  const file = join(dir, 'lb.yaml');
  const inNs = ['nsenter', `--net=/run/netns/${opts.ns}`, process.execPath];
  writeFileSync(file, proxiesYaml(1, 0, { ifname: opts.ifname }));
  const daemon = new ManagedProcess([...inNs, opts.cli, '--instance', opts.instance, 'daemon', '--config', file, '--poll', '1h', '--drift-interval', '1h',
    '--ops-listen', `127.0.0.1:${opts.port}`], { label: `lb daemon (${opts.instance})`, env: { ...process.env, NO_COLOR: '1' } });
  let probe: ManagedProcess | undefined;
  const applied = (): string[] => daemon.stdout.split('\n').filter((l) => l.includes('"msg":"applied revision'));
  try {
    await waitUntil(() => {
      if (!daemon.running) throw new BenchError(`the daemon exited: ${daemon.stderr.slice(-1000)}`);
      return applied().length >= 1;
    }, { timeoutMs: 60_000, intervalMs: 50, what: 'the daemon applied the one-proxy config' });
    probe = new ManagedProcess([...inNs, '--input-type=module', '-e', PROBE, String(opts.port), '240000', String(SCRAPES)], { label: 'ops probe' });
    await probe.waitForOutput(/^ready$/m, 30_000);
    // nsenter execs node: the pid is the daemon's.
    const pid = daemon.pid!;
    const cpuBefore = mainThreadCpuMs(pid);
    // 8,000 distinct backends: the data plane holds 16,384.
    writeFileSync(`${file}.new`, proxiesYaml(opts.proxies, 0, { ifname: opts.ifname, backendPairs: 4_000 }));
    renameSync(`${file}.new`, file);
    await waitUntil(() => {
      if (!daemon.running) throw new BenchError(`the daemon exited: ${daemon.stderr.slice(-1000)}`);
      return applied().length >= 2;
    }, { timeoutMs: 240_000, intervalMs: 50, what: `the daemon applied ${opts.proxies} proxies` });
    const cpu = mainThreadCpuMs(pid) - cpuBefore;
    probe.child.stdin?.end('stop\n');
    const line = (await probe.waitForOutput(/^\{"answers".*\}$/m, 60_000))[0];
    const out = JSON.parse(line) as { answers: number; maxWait: number; lagMaxMs: number };
    const run = JSON.parse(applied()[1]!) as { durationMs?: number };
    const scrapeCpuBefore = mainThreadCpuMs(pid);
    const scrapeLine = (await probe.waitForOutput(/^\{"scrape".*\}$/m, 120_000))[0];
    const scrape = (JSON.parse(scrapeLine) as { scrape: Omit<ScrapePhase, 'mainThreadCpuMs'> }).scrape;
    return {
      answers: out.answers, healthzMaxMs: out.maxWait, loopDelayMaxMs: out.lagMaxMs, runMs: run.durationMs ?? -1, mainThreadCpuMs: cpu,
      scrape: { ...scrape, mainThreadCpuMs: mainThreadCpuMs(pid) - scrapeCpuBefore },
    };
  } finally {
    await probe?.stop(2000);
    await daemon.stop(10_000);
    rmSync(dir, { recursive: true, force: true });
  }
}
