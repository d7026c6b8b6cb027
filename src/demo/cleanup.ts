// Taking a demo down, in the order that loses nothing and leaves nothing: stop the processes in
// the LB namespace (the daemon first, with SIGTERM, so it finishes what it does), `lb down` the
// instance inside the namespace (detach the programs, unpin the maps, remove /run/lb/<instance>),
// delete the namespaces (which ends the backend servers and the git server), remove the work
// directory. The same code cleans a demo left up with --keep (`--clean`), the leftovers of an
// earlier run that crashed (before every run), and this run at its end.

import { existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LB_PIN_ROOT, instanceDir } from '../dataplane/bpffs.js';
import { destroyStale, isAlive, listNamespaces, run, type Topology } from '../sandbox/index.js';
import { runDir } from '../state/run-dir.js';
import { CI_INSTANCE_RE, CI_PREFIX_FAMILY, CI_WORKDIR_RE, type Artefacts, type DemoLayout } from './layout.js';

export interface CleanupReport {
  stoppedProcesses: number;
  downed: string[];
  namespaces: string[];
  removedWorkDir: boolean;
  problems: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function namespacePids(ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns], { timeoutMs: 10_000, allowFailure: true });
  return r.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number).filter((p) => p !== process.pid);
}

/** SIGTERM to every process in the namespace, SIGKILL to those left after `graceMs`. */
export async function stopNamespaceProcesses(ns: string, graceMs: number): Promise<number> {
  if (!existsSync(`/run/netns/${ns}`)) return 0;
  const pids = await namespacePids(ns);
  for (const p of pids) { try { process.kill(p, 'SIGTERM'); } catch { /* gone */ } }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && pids.some(isAlive)) await sleep(100);
  for (const p of pids.filter(isAlive)) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  return pids.length;
}

/** `lb down --instance I`, inside `ns` when it still exists (its interfaces are there), else here. */
export async function lbDown(art: Artefacts, instance: string, ns: string | undefined): Promise<string | undefined> {
  if (!existsSync(instanceDir(instance)) && !existsSync(runDir(instance))) return undefined;
  const inNs = ns !== undefined && existsSync(`/run/netns/${ns}`);
  const argv = [process.execPath, art.cli, '--instance', instance, 'down'];
  const r = await run(inNs ? ['nsenter', `--net=/run/netns/${ns}`, ...argv] : argv, { timeoutMs: 60_000, allowFailure: true });
  if (r.code !== 0) throw new Error(`lb --instance ${instance} down failed (exit ${r.code ?? r.signal}): ${r.stderr.trim()}`);
  return instance;
}

interface Run {
  lbNs: string | undefined;
  instance: string;
}

/**
 * The runs to take down: this layout's, and for the --ci family those of runs whose demo process
 * is gone (crashed or killed): their namespaces `lbdemoci<pid><abc>-lb` and their instances
 * `demo-ci-<pid>`, with or without a namespace left.
 */
async function runsOf(layout: DemoLayout, includeStale: boolean): Promise<Run[]> {
  const runs: Run[] = [{ lbNs: `${layout.prefix}-lb`, instance: layout.instance }];
  if (!includeStale || layout.staleFamily !== CI_PREFIX_FAMILY) return runs;
  const seen = new Set([layout.instance]);
  for (const ns of await listNamespaces()) {
    const m = new RegExp(`^${CI_PREFIX_FAMILY}(\\d+)[a-z]+-lb$`).exec(ns);
    if (!m || isAlive(Number(m[1]))) continue;
    const instance = `demo-ci-${m[1]}`;
    seen.add(instance);
    runs.push({ lbNs: ns, instance });
  }
  if (existsSync(LB_PIN_ROOT)) {
    for (const name of readdirSync(LB_PIN_ROOT)) {
      const m = CI_INSTANCE_RE.exec(name);
      if (m && !isAlive(Number(m[1])) && !seen.has(name)) runs.push({ lbNs: undefined, instance: name });
    }
  }
  return runs;
}

export interface CleanupOptions {
  /** This run's topology (its namespaces go with it); without it, the stale ones of the family go. */
  topology?: Topology;
  /** Keep the work directory (the demo's logs after a failure in CI). */
  keepWorkDir?: boolean;
}

/** Takes down everything of `layout` (see the top of this file). Never throws; problems are reported. */
export async function cleanUp(layout: DemoLayout, art: Artefacts, opts: CleanupOptions = {}): Promise<CleanupReport> {
  const report: CleanupReport = { stoppedProcesses: 0, downed: [], namespaces: [], removedWorkDir: false, problems: [] };
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try { await fn(); } catch (err) { report.problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`); }
  };
  for (const run of await runsOf(layout, !opts.topology)) {
    // The daemon first: it must not re-apply (self-heal) what `lb down` removes.
    if (run.lbNs) {
      const ns = run.lbNs;
      await attempt(`stopping the processes in ${ns}`, async () => {
        report.stoppedProcesses += await stopNamespaceProcesses(ns, 10_000);
      });
    }
    await attempt(`lb down ${run.instance}`, async () => {
      const d = await lbDown(art, run.instance, run.lbNs);
      if (d) report.downed.push(d);
    });
  }
  await attempt('deleting the namespaces', async () => {
    if (opts.topology) {
      report.namespaces = [...opts.topology.namespaceNames];
      await opts.topology.destroy();
    } else {
      report.namespaces = await destroyStale(layout.staleFamily);
    }
  });
  if (!opts.topology && layout.staleFamily === CI_PREFIX_FAMILY) {
    for (const name of readdirSync(tmpdir())) {
      const m = CI_WORKDIR_RE.exec(name);
      if (m && !isAlive(Number(m[1]))) await attempt(`removing ${name}`, async () => { rmSync(join(tmpdir(), name), { recursive: true, force: true }); });
    }
  }
  if (!opts.keepWorkDir && existsSync(layout.workDir)) {
    await attempt(`removing ${layout.workDir}`, async () => {
      rmSync(layout.workDir, { recursive: true, force: true });
      report.removedWorkDir = true;
    });
  }
  return report;
}
