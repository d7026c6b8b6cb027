// The original's example configs (test/fixtures/seed-configs/*.edn), run as a user runs them: each
// file unchanged (sni-routing.edn with the one change lb needs, see expectations.ts) in a topology
// built from the file itself (src/sandbox/seed-topology.ts): an LB namespace whose interfaces carry
// the file's names, a client namespace behind each, a namespace per backend address, servers on
// 127.0.0.1 for loopback targets, a DNS responder for host names. lb applies the file (`lb apply`,
// or `lb daemon --config` for files that need health checks or DNS), and real clients exercise:
//   - every listener (interface x port x protocol) from a client outside the source routes;
//   - every source route from a client inside it (an extra address in its prefix on the client);
//   - every group of several backends: shares of new connections within SIGMAS of the weights';
//   - the settings lb acts on (connection table timeouts, per-backend counters), and as plan
//     warnings the ones it does not act on yet (expectations.ts holds their texts);
//   - every health check: backends killed leave (no new connection), come back after a restart;
//   - every DNS name: resolved at start, last known good kept through SERVFAIL, a changed answer
//     picked up within its dns-refresh-seconds.
// One describe per file of the folder (a new file is one more case; expectations.ts needs an
// entry), one topology per file. The files run side by side (describe.concurrent, at most
// MAX_ACTIVE sandboxes at once in example-run.ts), the daemon files first: their waits for health
// checks and DNS refreshes are the long ones. Each connection comes from a source port of its own
// (the flow hash then decides; the ports depend on the file alone, so a run repeats exactly).
// Needs root; fails (never skips) without it. Traffic goes only to namespaces created here.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthCheck, HostTarget, Target } from '../../../src/core/config/types.js';
import type { RuntimeStatus, TargetStatus } from '../../../src/runtime/status.js';
import { waitUntil } from '../../../src/sandbox/index.js';
import { ensureBuilt } from '../../lib/build.js';
import { lbStatus } from '../lib/daemon.js';
import { EXPECTATIONS } from './expectations.js';
import {
  ExampleRun, POLL_MS, SEEDS, answerProblems, counts, groupLabel, sameKeys, sameMap, shareProblems, type Group,
} from './example-run.js';
import { makeCertificate } from './scripts.js';

if (process.getuid?.() !== 0) throw new Error('examples.test.ts must run as root: it loads BPF programs and creates network namespaces');

/** Bound of each test without waits of its own (CLI calls and client batches, slower when the machine is busy). */
const TEST_MS = 120_000;
/** New connections per listener, route and interface in the reachability tests. */
const PROBES = 12;
/** New connections per group of several backends in the share tests. */
const SHARE_CONNECTIONS = 800;
/**
 * A backend's share of new connections may differ from its share of the weight by this many
 * standard deviations of a binomial share: over 800 connections +-7.1 points at 50 %, +-5.7 at
 * 20 %, +-4.2 at 10 %. The flow hash is deterministic and the source ports are fixed, so a file
 * that passes keeps passing; 4 sigmas keep a new file's odds of an unlucky set of ports small.
 */
const SIGMAS = 4;

ensureBuilt();
const root = mkdtempSync(join(tmpdir(), 'lb-examples-'));
const tls = makeCertificate(root);
const FILES = readdirSync(SEEDS).filter((f) => f.endsWith('.edn')).sort();
const runs = new Map<string, ExampleRun | Error>();
for (const [slot, file] of FILES.entries()) {
  const ex = EXPECTATIONS[file];
  if (!ex) { runs.set(file, new Error(`${file} has no entry in test/e2e/examples/expectations.ts: add what its comments promise`)); continue; }
  runs.set(file, await ExampleRun.load(file, slot, ex, join(root, file.replace(/\.edn$/, '')), tls).catch((e: unknown) => e as Error));
}
// The daemon files first (stable otherwise): they spend most of their time waiting.
const ORDER = [...FILES].sort((a, b) => Number(isDaemon(b)) - Number(isDaemon(a)));
function isDaemon(file: string): boolean {
  const r = runs.get(file);
  return r instanceof ExampleRun && r.mode === 'daemon';
}

afterAll(() => rmSync(root, { recursive: true, force: true }));

const ip = (backend: string): string => backend.split(':')[0]!;
const addressesOf = (run: ExampleRun, t: Target): string[] => (t.kind === 'ip' ? [t.ip] : run.answers[t.host] ?? []);

for (const file of ORDER) {
  const loaded = runs.get(file)!;
  describe.concurrent(file, () => {
    if (loaded instanceof Error) {
      it('loads', () => { throw loaded; });
      return;
    }
    const run = loaded;
    const { config, ex } = run;
    const hasRoutes = config.proxies.some((p) => p.sourceRoutes.length > 0);
    const checked = run.allTargets().some((t) => t.healthCheck !== null);

    beforeAll(() => run.setUp(), 300_000);
    afterAll(() => run.tearDown(), 60_000);

    it.sequential(`${ex.promise}: lb ${run.mode === 'apply' ? 'applies' : 'daemon serves'} the file ${ex.change ? 'with one change' : 'unchanged'}; its plan warns about what lb does not act on`, async () => {
      if (ex.change) {
        // The file as it is: rejected, with the reason.
        const original = await run.lb(['validate', '--config', join(SEEDS, file)]);
        console.log(`${file} as it is: exit ${original.code}\n${original.stderr.trim()}`);
        expect(original.code).toBe(1);
        expect(original.stderr).toMatch(/conflicts with proxy/);
        // The change only adds an address to each listen block: the rest is the fixture, byte for byte.
        console.log(`${file}: changed for lb: ${ex.change.why}`);
        expect(readFileSync(run.configPath, 'utf8').replace(/:address "[^"]*" /g, '')).toBe(readFileSync(join(SEEDS, file), 'utf8'));
        expect(config.proxies.every((p) => p.listen.address !== null)).toBe(true);
      }
      console.log(`${file}: plan warnings:\n  ${run.planWarnings.join('\n  ') || '(none)'}`);
      expect(run.planWarnings).toEqual(ex.planWarnings);
      const ifaces = [...new Set(config.proxies.flatMap((p) => p.listen.interfaces))].sort();
      if (run.mode === 'apply') {
        const a = run.applied!;
        expect(a.code, a.stderr).toBe(0);
        expect(a.stdout).toMatch(/Apply complete! Resources: \d+ added, 0 changed, 0 destroyed\./);
        for (const i of ifaces) expect(a.stdout).toMatch(new RegExp(`^  \\+ interface ${i}  \\(attach the tc data path: ${i} is a virtual interface \\(veth\\)`, 'm'));
      } else {
        const s = (await lbStatus(run.instance)).status!;
        expect(s.result, JSON.stringify(s.conditions)).toMatch(/^(applied|unchanged)$/);
        expect(s.errors ?? []).toEqual([]);
        expect(s.dataPlane?.interfaces).toEqual(ifaces);
      }
      // Every interface of the file carries lb's data path (read back from the kernel).
      expect(run.liveState()?.interfaces).toEqual(ifaces);
    }, TEST_MS);

    it.sequential('every listener (interface x port x protocol) serves a client outside its source routes from its default target', async () => {
      const jobs = run.groups().filter((g) => g.name === 'default').flatMap((g) => g.ifaces.flatMap((iface) => run.protocols(g.proxy).map((proto) => ({ g, iface, proto }))));
      const results = await Promise.all(jobs.map(async ({ g, iface, proto }) => {
        const r = await run.connect(g, iface, PROBES, { proto });
        const allowed = new Set(run.expectedWeights(g).keys());
        return { label: `${g.proxy.name} on ${iface}:${g.proxy.listen.port}/${proto} from ${r.source}`, c: counts(r.answers),
          problems: answerProblems(r.answers, allowed, r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice') };
      }));
      for (const r of results) console.log(`${file}: ${r.label}: ${JSON.stringify(r.c)}`);
      expect(results.filter((r) => r.problems.length > 0).map((r) => `${r.label}: ${r.problems.join('; ')}`)).toEqual([]);
    }, TEST_MS);

    if (config.proxies.some((p) => p.sniRoutes.length > 0)) {
      it.sequential('every SNI name, in its own case and upper case, reaches its route\'s targets over TLS; a name no route has reaches the default target', async () => {
        const results = await Promise.all(run.sniGroups().flatMap((g) => [g.hostname, g.hostname.toUpperCase()].map(async (servername) => {
          const r = await run.connect(g, g.ifaces[0]!, 4, { servername });
          return { label: `${g.proxy.name} ${servername}`, c: counts(r.answers),
            problems: answerProblems(r.answers, new Set(run.expectedWeights(g).keys()), r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice') };
        })));
        const unknown = await Promise.all(run.groups().filter((g) => g.name === 'default' && g.proxy.sniRoutes.length > 0).map(async (g) => {
          const r = await run.connect(g, g.ifaces[0]!, 4, { servername: 'no-route.invalid' });
          return { label: `${g.proxy.name} no-route.invalid`, c: counts(r.answers),
            problems: answerProblems(r.answers, new Set(run.expectedWeights(g).keys()), r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice') };
        }));
        for (const r of [...results, ...unknown]) console.log(`${file}: TLS name ${r.label}: ${JSON.stringify(r.c)}`);
        expect([...results, ...unknown].filter((r) => r.problems.length > 0).map((r) => `${r.label}: ${r.problems.join('; ')}`)).toEqual([]);
      }, TEST_MS);
    }

    if (hasRoutes) {
      it.sequential('every source route sends a client inside its prefix to the route\'s targets, from every interface that can route the replies', async () => {
        const jobs = run.groups().filter((g) => g.name !== 'default').flatMap((g) => g.ifaces.map((iface) => ({ g, iface })));
        const results = await Promise.all(jobs.map(async ({ g, iface }) => {
          const r = await run.connect(g, iface, PROBES);
          return { label: `${groupLabel(g)} on ${iface} from ${r.source}`, c: counts(r.answers),
            problems: answerProblems(r.answers, new Set(run.expectedWeights(g).keys()), r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice') };
        }));
        for (const r of results) console.log(`${file}: ${r.label}: ${JSON.stringify(r.c)}`);
        expect(results.filter((r) => r.problems.length > 0).map((r) => `${r.label}: ${r.problems.join('; ')}`)).toEqual([]);
      }, TEST_MS);
    }

    // Groups of several backends: several targets, or a name with several A records.
    const backendsOf = (t: Target): number => (t.kind === 'ip' ? 1 : ex.dnsRecords?.[t.host] ?? 1);
    const severalBackends = config.proxies.flatMap((p) => [p.defaultTarget, ...p.sourceRoutes.map((r) => r.targets)])
      .filter((g) => g.targets.reduce((n, t) => n + backendsOf(t), 0) > 1).length;
    if (severalBackends > 0) {
      it.sequential(`every group of several backends splits ${SHARE_CONNECTIONS} new connections by its weights (within ${SIGMAS} standard deviations)`, async () => {
        const weighted = run.groups().filter((g) => run.expectedWeights(g).size > 1);
        expect(weighted).toHaveLength(severalBackends);
        const results = await Promise.all(weighted.map(async (g) => {
          const weights = run.expectedWeights(g);
          const r = await run.connect(g, g.ifaces[0]!, SHARE_CONNECTIONS);
          const c = counts(r.answers);
          return { label: groupLabel(g), weights, c, problems: [...answerProblems(r.answers, new Set(weights.keys()), r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice'), ...shareProblems(c, weights, SIGMAS)] };
        }));
        for (const r of results) console.log(`${file}: ${r.label}: weights ${JSON.stringify(Object.fromEntries(r.weights))}, answers ${JSON.stringify(r.c)}`);
        expect(results.filter((r) => r.problems.length > 0).map((r) => `${r.label}: ${r.problems.join('; ')}`)).toEqual([]);
      }, TEST_MS);
    }

    it.sequential('settings lb acts on: the connection table\'s idle timeouts; per-backend counters agree with what the clients saw', async () => {
      // The idle timeouts of the connection table, as the kernel holds them.
      expect(run.liveState()?.settings).toMatchObject({ tcpIdleSec: config.settings.connectionTimeoutSec, udpIdleSec: config.settings.udpTimeoutSec });
      const shown = JSON.parse((await run.lb(['show', 'targets', '--format', 'json'])).stdout) as { targets: Array<{ target: string; new_flows: number }> };
      const flows = Object.fromEntries(shown.targets.map((x) => [x.target, x.new_flows]));
      console.log(`${file}: new flows per backend (lb show targets): ${JSON.stringify(flows)}`);
      // Every answered connection is a new flow of its backend. A few more are allowed: a segment
      // of a connection that arrives after its flow ended (an RST removes the entry at once) starts
      // a flow again, to the same backend (seen: 201 flows for 200 connections, once in thousands).
      const fewer = [...run.tally].filter(([b, n]) => (flows[b] ?? 0) < n).map(([b, n]) => `${b}: ${flows[b] ?? 0} flows for ${n} answered connections`);
      expect(fewer).toEqual([]);
      const answered = [...run.tally.values()].reduce((a, b) => a + b, 0);
      const counted = [...run.tally.keys()].reduce((a, b) => a + (flows[b] ?? 0), 0);
      expect(counted - answered).toBeLessThanOrEqual(Math.max(2, Math.ceil(answered / 100)));
    }, TEST_MS);

    if (checked) {
      it.sequential('every health check: a killed backend leaves (no new connection reaches it), the rest share its traffic by weight, and after a restart it comes back', async () => {
        await healthTest(run);
      }, 300_000);
    }

    if (run.hosts.length > 0) {
      it.sequential('DNS: a name whose server fails keeps its last known addresses (stale), and serves them', async () => {
        // The name refreshed most often: it notices the failure first.
        const h = run.allTargets().filter((t): t is HostTarget => t.kind === 'host').sort((a, b) => a.dnsRefreshSeconds - b.dnsRefreshSeconds)[0]!;
        run.dns!.set(run.answers, 'servfail');
        try {
          const stale = await waitUntil(async () => (await run.runtime()).dns.find((d) => d.host === h.host && d.status === 'stale'),
            { timeoutMs: h.dnsRefreshSeconds * 1100 + 10_000, intervalMs: POLL_MS, what: `${h.host} stale` });
          console.log(`${file}: ${h.host} after SERVFAIL: ${stale.status}, keeping ${stale.addresses.join(', ')} (${stale.lastError})`);
          expect([...stale.addresses].sort()).toEqual([...run.answers[h.host]!].sort());
          const users = run.groups().filter((g) => g.targets.targets.some((t) => t.kind === 'host' && t.host === h.host));
          for (const g of users) {
            expect(sameKeys(run.liveWeights(g), run.expectedWeights(g))).toBe(true);
            const r = await run.connect(g, g.ifaces[0]!, PROBES);
            expect(answerProblems(r.answers, new Set(run.expectedWeights(g).keys()), r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice')).toEqual([]);
          }
        } finally {
          run.dns!.set(run.answers);
        }
        await run.waitResolved(30_000);
      }, 120_000);

      it.sequential('DNS: a changed answer (one address replaced) is picked up within dns-refresh-seconds: the new address gets connections, the old none', async () => {
        const before = { ...run.answers };
        for (const h of run.t.plan.hosts) run.answers[h.host] = [h.spares[0]!, ...before[h.host]!.slice(1)];
        run.dns!.set(run.answers);
        const slowest = Math.max(...run.allTargets().flatMap((t) => (t.kind === 'host' ? [t.dnsRefreshSeconds] : [])));
        await run.waitResolved(slowest * 1100 + 15_000);
        const results = await Promise.all(run.groups().filter((g) => g.targets.targets.some((t) => t.kind === 'host')).map(async (g) => {
          const weights = run.expectedWeights(g);
          const r = await run.connect(g, g.ifaces[0]!, weights.size > 1 ? SHARE_CONNECTIONS : PROBES);
          const c = counts(r.answers);
          const fresh = g.targets.targets.flatMap((t) => (t.kind === 'host' ? [`${run.answers[t.host]![0]}:${t.port}`] : []));
          return { label: groupLabel(g), c, problems: [
            ...answerProblems(r.answers, new Set(weights.keys()), r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice'),
            ...(weights.size > 1 ? shareProblems(c, weights, SIGMAS) : []),
            ...fresh.filter((b) => !c[b]).map((b) => `${b} (new in the answer) got no connection`),
          ] };
        }));
        for (const r of results) console.log(`${file}: after the DNS change: ${r.label}: ${JSON.stringify(r.c)}`);
        expect(results.filter((r) => r.problems.length > 0).map((r) => `${r.label}: ${r.problems.join('; ')}`)).toEqual([]);
      }, 120_000);
    }
  });
}

/** Per target of a group: its status row in the daemon's runtime section. */
function statusOf(rt: RuntimeStatus, g: Group, t: Target): TargetStatus | undefined {
  return rt.targets.find((x) => x.proxy === g.proxy.name && x.group === g.name && x.targetId === t.id);
}

/** Milliseconds a check needs at most to see `n` results in a row (first run jittered over an interval, intervals x 1.05). */
const checkBound = (hc: HealthCheck, n: number): number => hc.intervalMs * 1.1 * (n + 1) + hc.timeoutMs + 10_000;

/**
 * Kills one backend per distinct health check of every group (the table may name them), never
 * every backend of a group that has several; watches each group lose them (or fail open, a group of
 * one), checks the traffic, restarts them and watches them come back.
 */
async function healthTest(run: ExampleRun): Promise<void> {
  const file = run.file;
  const groups = run.groups();
  const down = new Set((run.ex.healthVictims ?? []).map(ip));
  for (const g of groups) {
    const checkedTargets = g.targets.targets.filter((t) => t.healthCheck !== null);
    if (checkedTargets.length === 0 || checkedTargets.some((t) => addressesOf(run, t).some((a) => down.has(a)))) continue;
    const bySpec = new Map<string, Target>();
    for (const t of checkedTargets) if (!bySpec.has(JSON.stringify(t.healthCheck))) bySpec.set(JSON.stringify(t.healthCheck), t);
    const picks = [...bySpec.values()].map((t) => addressesOf(run, t)[0]!);
    const all = [...run.expectedWeights(g).keys()].map(ip);
    if (all.length > 1 && all.every((a) => picks.includes(a))) picks.pop();
    for (const p of picks) down.add(p);
  }
  const affected = groups.filter((g) => !sameMap(run.expectedWeights(g), run.expectedWeights(g, down)) || failsOpen(run, g, down));
  console.log(`${file}: killing ${[...down].join(', ')}; groups affected: ${affected.map(groupLabel).join('; ')}`);

  await Promise.all([...down].map((a) => run.stopBackend(a)));
  try {
    await leaveAndComeBack(run, affected, down);
  } finally {
    // Also after a failure: the tests after this one need every backend.
    await Promise.all([...down].map((a) => run.startBackend(a)));
  }
}

/** The killed backends leave every affected group (or it fails open), then, restarted, come back. */
async function leaveAndComeBack(run: ExampleRun, affected: Group[], down: ReadonlySet<string>): Promise<void> {
  const file = run.file;
  const checkOf = (g: Group): HealthCheck[] => g.targets.targets.filter((t) => t.healthCheck && addressesOf(run, t).some((a) => down.has(a))).map((t) => t.healthCheck!);
  const left = await Promise.all(affected.map(async (g) => {
    const bound = Math.max(...checkOf(g).map((hc) => checkBound(hc, hc.unhealthyThreshold)));
    const label = groupLabel(g);
    if (failsOpen(run, g, down)) {
      // Every backend of the group is down: lb keeps sending it new flows (fail open), says so.
      const rt = await waitUntil(async () => {
        const r = await run.runtime();
        return g.targets.targets.every((t) => statusOf(r, g, t)?.failOpen && statusOf(r, g, t)!.backends.every((b) => b.health === 'unhealthy')) ? r : undefined;
      }, { timeoutMs: bound, intervalMs: POLL_MS, what: `${label}: unhealthy and failing open` });
      return { label, note: `fails open: ${JSON.stringify(g.targets.targets.map((t) => statusOf(rt, g, t)))}`, problems: sameMap(run.liveWeights(g), run.expectedWeights(g)) ? [] : ['live weights changed while failing open'] };
    }
    const want = run.expectedWeights(g, down);
    await waitUntil(() => sameMap(run.liveWeights(g), want), { timeoutMs: bound, intervalMs: POLL_MS, what: `${label}: live weights ${JSON.stringify(Object.fromEntries(want))}` });
    const rt = await run.runtime();
    const problems: string[] = [];
    for (const t of g.targets.targets) {
      for (const b of statusOf(rt, g, t)?.backends ?? []) {
        const expected = !t.healthCheck ? 'unchecked' : down.has(ip(b.backend)) ? 'unhealthy' : 'healthy';
        if (b.health !== expected) problems.push(`${b.backend} is ${b.health}, expected ${expected}`);
      }
    }
    const r = await run.connect(g, g.ifaces[0]!, want.size > 1 ? SHARE_CONNECTIONS : PROBES);
    const c = counts(r.answers);
    problems.push(...answerProblems(r.answers, new Set(want.keys()), r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice'));
    if (want.size > 1) problems.push(...shareProblems(c, want, SIGMAS));
    return { label, note: `weights ${JSON.stringify(Object.fromEntries(want))}, answers ${JSON.stringify(c)}`, problems };
  }));
  const downIn = (g: Group): string => [...run.expectedWeights(g).keys()].filter((b) => down.has(ip(b))).join(', ');
  for (const [k, l] of left.entries()) console.log(`${file}: ${l.label} with ${downIn(affected[k]!)} down: ${l.note}`);
  expect(left.filter((l) => l.problems.length > 0).map((l) => `${l.label}: ${l.problems.join('; ')}`)).toEqual([]);

  // Restarted: every group takes them back; where the table says so, step by step to full weight.
  await Promise.all([...down].map((a) => run.startBackend(a)));
  const back = await Promise.all(affected.map(async (g) => {
    const label = groupLabel(g);
    const bound = Math.max(...checkOf(g).map((hc) => checkBound(hc, hc.healthyThreshold)));
    const victims = g.targets.targets.filter((t) => t.kind === 'ip' && t.healthCheck && down.has(t.ip));
    if (failsOpen(run, g, down)) {
      await waitUntil(async () => {
        const r = await run.runtime();
        return g.targets.targets.every((t) => !statusOf(r, g, t)?.failOpen && statusOf(r, g, t)!.backends.every((b) => b.health !== 'unhealthy'));
      }, { timeoutMs: bound, intervalMs: POLL_MS, what: `${label}: healthy again` });
    }
    if (run.ex.healthRamp?.includes(g.proxy.name)) {
      // The comments' gradual recovery: 25 %, 50 %, 75 %, 100 % of the configured weight.
      const steps = await Promise.all(victims.map(async (t) => {
        const key = `${addressesOf(run, t)[0]}:${t.port}`;
        const seen: number[] = [];
        await waitUntil(() => {
          const w = run.liveWeights(g).get(key) ?? 0;
          if (seen.at(-1) !== w) seen.push(w);
          return w === t.weight;
        }, { timeoutMs: checkBound(t.healthCheck!, t.healthCheck!.healthyThreshold + 3), intervalMs: POLL_MS, what: `${label}: ${key} back to weight ${t.weight}` });
        // The health state machine's steps since the kill, from the daemon's log (every change is
        // logged). The live maps are sampled: a poll that came late on a busy machine missed a
        // step (0 -> 8 -> 23 -> 30) though the daemon applied each.
        const rampOf = (): string[] => {
          const lines = run.daemon?.logs() ?? [];
          let killed = -1;
          lines.forEach((l, i) => { if (l['backend'] === key && l['to'] === 'unhealthy') killed = i; });
          return lines.slice(killed + 1).filter((l) => l['backend'] === key && (l['to'] === 'recovering' || l['to'] === 'healthy'))
            .map((l) => (l['to'] === 'healthy' ? 'healthy' : `recovering ${String(l['recoveryStep'])}`));
        };
        // The maps can show the full weight before the log line of the change that wrote it has
        // come through the daemon's stdout pipe: wait for that line (the assertion below shows
        // what came, should it never).
        const ramp = await waitUntil(() => { const r = rampOf(); return r.includes('healthy') ? r : undefined; },
          { timeoutMs: 10_000, intervalMs: POLL_MS, what: `${label}: ${key}'s healthy line in the daemon's log` }).catch(() => rampOf());
        return { key, seen, ramp, want: [0, ...[0.25, 0.5, 0.75, 1].map((f) => Math.max(1, Math.round(t.weight * f)))] };
      }));
      for (const s of steps) console.log(`${file}: ${label}: ${s.key} recovers through ${s.ramp.join(', ')}; live weights seen ${s.seen.join(' -> ')}`);
      expect(steps.map((s) => [s.key, s.ramp])).toEqual(steps.map((s) => [s.key, ['recovering 1', 'recovering 2', 'recovering 3', 'healthy']]));
      // Each weight seen in the maps is one of the ramp's, in order, ending at the full weight.
      for (const s of steps) {
        expect(s.seen.every((w, i) => s.want.includes(w) && (i === 0 || w > s.seen[i - 1]!)), `${s.key}: ${s.seen.join(' -> ')}`).toBe(true);
        expect(s.seen.at(-1)).toBe(s.want.at(-1));
      }
    }
    const returning = [...run.expectedWeights(g).keys()].filter((b) => down.has(ip(b)));
    await waitUntil(() => returning.every((b) => (run.liveWeights(g).get(b) ?? 0) > 0), { timeoutMs: bound, intervalMs: POLL_MS, what: `${label}: ${returning.join(', ')} back in the live weights` });
    const r = await run.connect(g, g.ifaces[0]!, 100);
    const c = counts(r.answers);
    const problems = [
      ...answerProblems(r.answers, new Set(run.expectedWeights(g).keys()), r.source, r.destination, g.proxy.listen.port, g.proxy.dataPath === 'splice'),
      ...returning.filter((b) => !c[b]).map((b) => `${b} got no connection after its restart`),
    ];
    return { label, note: `live weights ${JSON.stringify(Object.fromEntries(run.liveWeights(g)))}, answers ${JSON.stringify(c)}`, problems };
  }));
  for (const b of back) console.log(`${file}: ${b.label} after the restart: ${b.note}`);
  expect(back.filter((b) => b.problems.length > 0).map((b) => `${b.label}: ${b.problems.join('; ')}`)).toEqual([]);
}

function failsOpen(run: ExampleRun, g: Group, down: ReadonlySet<string>): boolean {
  const all = [...run.expectedWeights(g).keys()].map(ip);
  const checked = g.targets.targets.filter((t) => t.healthCheck).flatMap((t) => addressesOf(run, t));
  return all.length > 0 && all.every((a) => down.has(a) && checked.includes(a));
}
