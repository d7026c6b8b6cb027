// The demo, step by step: a sandbox of network namespaces, a config repo served over smart HTTP,
// `lb daemon` following it, traffic through the VIP; then a commit that shifts the weights, a
// signed webhook, the new plan, the status commit and the shifted traffic; then cleanup.
// Every wait is bounded; every failure ends the run with a message (and cleanup, unless --keep).
// Traffic goes only to hosts in the namespaces created here, and to 127.0.0.1 inside them.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatusReport } from '../report/types.js';
import { liveWeights } from '../runtime/live-weights.js';
import { backendServerScript, createTopology, nsenterArgs, DEFAULT_HTTP_PORT, DEFAULT_UDP_PORT, SandboxError, VIP, type Topology } from '../sandbox/index.js';
import { cleanUp, type CleanupReport } from './cleanup.js';
import { ConfigRepo } from './config-repo.js';
import { DemoDaemon, daemonArgs } from './daemon.js';
import { artefacts, demoLayout, type Artefacts, type DemoLayout } from './layout.js';
import { LbCli } from './lb-cli.js';
import { wrapCommand, type Narrator } from './narrative.js';
import { DemoProcess, logExcerpt, tail } from './processes.js';
import { renderTraffic, sendTraffic, shares, type Backend, type TrafficSample } from './traffic.js';
import { postGithubPush, type WebhookDelivery } from './webhook.js';

export interface DemoOptions {
  /** Leave everything running at the end (and after a failure) for a look around. */
  keep: boolean;
  /** Per-run names (namespaces, instance, work directory): a run for tests and CI. */
  ci: boolean;
  /** HTTP requests per traffic sample. */
  requests: number;
}

export const INITIAL_WEIGHTS = [50, 30, 20] as const;
export const SHIFTED_WEIGHTS = [10, 20, 70] as const;
/** Inside the LB namespace: its own loopback, so fixed ports cannot collide with anything. */
export const GIT_PORT = 3000;
export const WEBHOOK_LISTEN = '127.0.0.1:9091';
const POLL = '5s';
const APPLY_TIMEOUT_MS = 60_000;

export interface DemoResult {
  prefix: string;
  instance: string;
  workDir: string;
  repoUrl: string;
  /** Client c1's address: the source of every traffic sample's connections. */
  clientAddress: string;
  revisions: { initial: string; shifted: string };
  plans: { initial: string; shifted: string };
  status: { initial: StatusReport; shifted: StatusReport };
  traffic: {
    before: LiveSample;
    after: LiveSample;
  };
  webhook: WebhookDelivery & { appliedAfterMs: number };
  statusCommit: { sha: string; subject: string; files: string[]; markdown: string };
  kept: boolean;
  durationMs: number;
}

/** A traffic sample, the answers' shares, and the weights the data plane held when it began (by backend name). */
type LiveSample = TrafficSample & { shares: Record<string, number>; liveWeights: Record<string, number> };

export class DemoRun {
  readonly opts: DemoOptions;
  readonly layout: DemoLayout;
  readonly art: Artefacts;
  private readonly say: Narrator;
  private topology: Topology | undefined;
  private daemon: DemoDaemon | undefined;
  private readonly processes: DemoProcess[] = [];
  private cleaning: Promise<CleanupReport> | undefined;
  private readonly started = Date.now();

  constructor(opts: DemoOptions, narrator: Narrator, layout: DemoLayout = demoLayout(opts.ci)) {
    this.opts = opts;
    this.layout = layout;
    this.art = artefacts();
    this.say = narrator;
  }

  private get lbNs(): string {
    return `${this.layout.prefix}-lb`;
  }

  async run(): Promise<DemoResult> {
    this.preflight();
    const { say, layout } = this;

    // ---- 1 ----
    say.header('A sandbox: one client, the load balancer, three backends');
    // A --ci run's work directory is fresh (mkdtemp); the fixed one of the demo may be a leftover.
    const stale = await cleanUp(layout, this.art, { keepWorkDir: this.opts.ci });
    if (stale.namespaces.length > 0 || stale.downed.length > 0 || stale.removedWorkDir) {
      say.step(`Removed what an earlier demo left: ${[...stale.namespaces, ...stale.downed.map((i) => `instance ${i}`), ...(stale.removedWorkDir ? [layout.workDir] : [])].join(', ')}`);
    }
    for (const p of stale.problems) say.warn(p);
    mkdirSync(layout.logDir, { recursive: true });
    say.step(`Creating network namespaces ${layout.prefix}-{c1,lb,b1,b2,b3} (veth pairs; nothing leaves them)`);
    const topo = this.topology = await createTopology({ prefix: layout.prefix, backends: 3, clients: 1, cleanupOnSignal: false });
    const client = topo.clients[0]!;
    say.block([
      `client   c1  ${client.address.padEnd(11)} --> VIP ${VIP}:80`,
      `balancer lb  ${topo.lbClientIfaces.map((i) => `${i.name} ${i.address}`).join(', ')}  (lb daemon, XDP on veth-c1)`,
      ...topo.backends.map((b) => `backend  ${b.name}  ${b.address.padEnd(11)} HTTP :${DEFAULT_HTTP_PORT}, answers "${b.name}"`),
    ].join('\n'));
    await this.startBackends(topo);
    say.ok('3 backend servers listen');

    // ---- 2 ----
    say.header('The config repository, served over smart HTTP');
    const repo = new ConfigRepo({ bareRepo: layout.bareRepo, clone: layout.clone, branch: layout.branch });
    const initial = await repo.create(this.art.examplesRepo);
    say.step(`examples/repo committed as "Initial config" (${initial.slice(0, 12)}) on ${layout.branch}; bare repository ${layout.bareRepo}`);
    const gitServer = this.startProcess(this.lbNs, [process.execPath, this.art.gitServer, '--root', layout.gitRoot, '--port', String(GIT_PORT)], 'git-server', 'git server');
    await gitServer.waitForLog(/"ready":true/, 15_000, 'its ready line');
    const repoUrl = `http://127.0.0.1:${GIT_PORT}/${layout.repoName}`;
    await repo.setOrigin(repoUrl);
    say.ok(`git http-backend serves ${repoUrl} inside ${this.lbNs}`);
    say.step('lb.yaml:');
    say.block(configExcerpt(repo.configFile));

    // ---- 3 ----
    say.header('lb daemon follows the repository');
    const lb = new LbCli({ cli: this.art.cli, ns: this.lbNs, instance: layout.instance });
    say.step('What an apply of this commit would change (`lb plan`, as a pull-request check would run it):');
    say.command(`${lb.display(['plan', '--config', repo.configFile])}`);
    const initialPlan = await this.plan(lb, repo.configFile);
    say.block(initialPlan, { plan: true });
    const secret = randomBytes(24).toString('hex');
    writeFileSync(layout.secretFile, `${secret}\n`, { mode: 0o600 });
    const daemon = this.daemon = DemoDaemon.start({
      lb, repoUrl, branch: layout.branch, poll: POLL, webhookListen: WEBHOOK_LISTEN, webhookSecretFile: layout.secretFile,
      statusBranch: layout.statusBranch, node: layout.node, workDir: layout.daemonWorkDir, logFile: join(layout.logDir, 'daemon.log'),
    });
    this.processes.push(daemon.process);
    say.step(`Starting the daemon in ${this.lbNs}:`);
    say.command(wrapCommand([...nsenterArgs(this.lbNs), 'lb', '--instance', layout.instance, ...daemonArgs(daemon.opts)]));
    const firstApplied = await daemon.waitForApplied(initial, APPLY_TIMEOUT_MS);
    say.ok(`applied ${initial.slice(0, 12)}: ${describeStatus(firstApplied)}`);
    this.showLog('Daemon log (first lines):', 10);

    // ---- 4 ----
    say.header(`Traffic: ${this.opts.requests} HTTP requests from c1 to http://${VIP}/`);
    const backends = (weights: readonly number[]): Backend[] => topo.backends.map((b, i) => ({ name: b.name, address: b.address, weight: weights[i] ?? 0 }));
    const before = await this.traffic(client.ns, backends(INITIAL_WEIGHTS));

    // ---- 5 ----
    say.header(`A commit shifts the weights to ${SHIFTED_WEIGHTS.join('/')}`);
    repo.setWeights(SHIFTED_WEIGHTS);
    say.step('The change, in the operator\'s clone:');
    say.block(await repo.diff(), { plan: true });
    say.step('Its plan against the live data plane:');
    say.command(`${lb.display(['plan', '--config', repo.configFile])}`);
    const shiftedPlan = await this.plan(lb, repo.configFile);
    say.block(shiftedPlan, { plan: true });
    const shifted = await repo.commitAll(`Shift traffic to b3: weights ${SHIFTED_WEIGHTS.join('/')}`);
    say.step(`Committed ${shifted.slice(0, 12)}; pushing it:`);
    say.command(`nsenter --net=/run/netns/${this.lbNs} git push origin ${layout.branch}`);
    say.block(await repo.push(this.lbNs));
    say.step(`GitHub-style push webhook (X-Hub-Signature-256) to http://${WEBHOOK_LISTEN}/hooks/github:`);
    const posted = Date.now();
    const hook = await postGithubPush(this.lbNs, WEBHOOK_LISTEN, secret, { ref: `refs/heads/${layout.branch}`, before: initial, after: shifted, repositoryUrl: repoUrl });
    say.block(`HTTP ${hook.status}${hook.body ? ` ${hook.body.split('\n')[0]}` : ''}`);
    if (hook.status < 200 || hook.status > 299) throw new SandboxError(`the daemon answered the webhook with HTTP ${hook.status}: ${hook.body}`);
    const secondApplied = await daemon.waitForApplied(shifted, APPLY_TIMEOUT_MS);
    const appliedAfterMs = Date.now() - posted;
    say.ok(`applied ${shifted.slice(0, 12)} ${(appliedAfterMs / 1000).toFixed(1)} s after the webhook: ${describeStatus(secondApplied)}`);
    this.showLog('Daemon log since then:', 12);
    const statusCommit = await this.waitForStatusCommit(repo, shifted);
    say.step(`The status commit on ${layout.statusBranch}: ${statusCommit.sha.slice(0, 12)} "${statusCommit.subject}" (${statusCommit.files.join(', ')})`);
    say.command(`git --git-dir ${layout.bareRepo} show ${layout.statusBranch}:${layout.node}/status.md`);
    say.block(statusCommit.markdown);
    say.step(`Traffic again, ${this.opts.requests} requests:`);
    const after = await this.traffic(client.ns, backends(SHIFTED_WEIGHTS));

    const result: DemoResult = {
      prefix: layout.prefix, instance: layout.instance, workDir: layout.workDir, repoUrl, clientAddress: client.address,
      revisions: { initial, shifted },
      plans: { initial: initialPlan, shifted: shiftedPlan },
      status: { initial: firstApplied, shifted: secondApplied },
      traffic: { before: { ...before, shares: shares(before) }, after: { ...after, shares: shares(after) } },
      webhook: { ...hook, appliedAfterMs },
      statusCommit,
      kept: this.opts.keep,
      durationMs: 0,
    };

    // ---- 6 ----
    if (this.opts.keep) {
      say.header('Left running (--keep)');
      this.keepRunning();
    } else {
      say.header('Cleaning up');
      await this.cleanup();
    }
    result.durationMs = Date.now() - this.started;
    say.line();
    say.ok(`demo complete in ${(result.durationMs / 1000).toFixed(1)} s`);
    return result;
  }

  /** Stops the daemon with SIGTERM, then takes everything down. Idempotent; never throws. */
  cleanup(): Promise<CleanupReport> {
    this.cleaning ??= (async () => {
      if (this.daemon?.process.running) {
        const how = await this.daemon.stop();
        this.say.step(`lb daemon ${how === 'exited' ? 'stopped (SIGTERM)' : 'did not stop within 10 s: killed'}`);
      }
      const report = await cleanUp(this.layout, this.art, { ...(this.topology ? { topology: this.topology } : {}) });
      for (const p of this.processes) if (p.running) await p.stop(2000);
      if (report.downed.length > 0) this.say.step(`lb down: instance ${report.downed.join(', ')} detached and unpinned`);
      if (report.namespaces.length > 0) this.say.step(`deleted namespaces ${report.namespaces.join(', ')}`);
      if (report.removedWorkDir) this.say.step(`removed ${this.layout.workDir}`);
      for (const p of report.problems) this.say.warn(`cleanup: ${p}`);
      return report;
    })();
    return this.cleaning;
  }

  /** Lets the demo exit with everything running, and says how to look around and clean up. */
  keepRunning(): void {
    for (const p of this.processes) p.detach();
    const { layout } = this;
    writeFileSync(layout.stateFile, `${JSON.stringify({ prefix: layout.prefix, instance: layout.instance, pids: this.processes.map((p) => ({ label: p.label, pid: p.pid })) }, null, 2)}\n`);
    const enter = `nsenter --net=/run/netns/${this.lbNs}`;
    this.say.block([
      'Everything still runs. Look around:',
      `  ${enter} bin/lb --instance ${layout.instance} status`,
      `  ${enter} bin/lb --instance ${layout.instance} show targets`,
      `  ip netns exec ${layout.prefix}-c1 curl -s http://${VIP}/`,
      `  ip netns exec ${layout.prefix}-lb curl -s http://127.0.0.1:9180/metrics   # the daemon's ops endpoints`,
      `  tail -f ${join(layout.logDir, 'daemon.log')}`,
      `  git --git-dir ${layout.bareRepo} log --oneline --all`,
      'Change the config like an operator would:',
      `  cd ${layout.clone} && $EDITOR lb.yaml && git commit -am "my change"`,
      `  ip netns exec ${layout.prefix}-lb git push origin ${layout.branch}   # the daemon polls every ${POLL}`,
      'Clean up:',
      '  make demo-clean',
    ].join('\n'));
  }

  /** After a failure: the daemon's log and those of processes that exited (they go with the work directory). */
  showLogTails(): void {
    for (const p of this.processes) {
      const log = p.log().trim();
      if (log === '' || (p.running && p !== this.daemon?.process)) continue;
      this.say.step(`${p.label} (${p.running ? 'running' : 'exited'}), from ${p.logFile}:`);
      this.say.block(logExcerpt(log).split('\n').map((l) => (l.length > 240 ? `${l.slice(0, 237)}...` : l)).join('\n'));
    }
  }

  private preflight(): void {
    if (process.getuid?.() !== 0) throw new SandboxError('the demo needs root (network namespaces, BPF): run `sudo make demo`');
    const missing = [this.art.cli, this.art.gitServer, join(this.art.root, 'build', 'bpf', 'lb_xdp.bpf.o'), join(this.art.root, 'build', 'bpf', 'lb_tc.bpf.o'), join(this.art.root, 'build', 'bpf', 'lb_apply.bpf.o')]
      .filter((f) => !existsSync(f));
    try { backendServerScript(); } catch (err) { missing.push(err instanceof Error ? err.message : String(err)); }
    if (missing.length > 0) throw new SandboxError(`not built: ${missing.join(', ')}; run \`make build\` (make demo does)`);
    if (!existsSync(join(this.art.examplesRepo, 'lb.yaml'))) throw new SandboxError(`${this.art.examplesRepo}/lb.yaml is missing`);
  }

  private startProcess(ns: string, argv: string[], logName: string, label: string): DemoProcess {
    const p = DemoProcess.start({ ns, argv, logFile: join(this.layout.logDir, `${logName}.log`), label });
    this.processes.push(p);
    return p;
  }

  /** backend-server in each backend namespace, detached (no --exit-with-parent: --keep must outlive the demo). */
  private async startBackends(topo: Topology): Promise<void> {
    const script = backendServerScript();
    await Promise.all(topo.backends.map((b) => this.startProcess(b.ns,
      [process.execPath, script, '--name', b.name, '--http', String(DEFAULT_HTTP_PORT), '--udp', String(DEFAULT_UDP_PORT)],
      `backend-${b.name}`, `backend-server ${b.name}`).waitForLog(/"ready":true/, 15_000, 'its ready line')));
  }

  private async plan(lb: LbCli, config: string): Promise<string> {
    const r = await lb.run(['plan', '--config', config]);
    if (r.code !== 0) throw new SandboxError(`lb plan failed (exit ${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  private async traffic(clientNs: string, backends: Backend[]): Promise<TrafficSample & { liveWeights: Record<string, number> }> {
    // What the maps hold as the requests start: the weights the sample is to follow.
    const live = liveWeights(this.layout.instance);
    const weights = Object.fromEntries(backends.map((b) => [b.name, Object.entries(live).find(([target]) => target.split(':')[0] === b.address)?.[1] ?? 0]));
    this.say.step(`Weights in the data plane now: ${backends.map((b) => `${b.name} ${weights[b.name]}`).join(', ')}`);
    const sample = { ...await sendTraffic(clientNs, `http://${VIP}/`, this.opts.requests), liveWeights: weights };
    this.say.block(renderTraffic(sample, backends).join('\n'));
    if (sample.failures > 0) throw new SandboxError(`${sample.failures} of ${sample.requests} requests through the VIP failed: ${sample.errors.join('; ')}`);
    return sample;
  }

  private showLog(title: string, max: number): void {
    const lines = this.daemon?.newLogLines() ?? [];
    if (lines.length === 0) return;
    this.say.step(title);
    const shown = lines.slice(0, max);
    this.say.block(shown.map((l) => (l.length > 160 ? `${l.slice(0, 157)}...` : l)).join('\n'), { plan: true });
    if (lines.length > shown.length) this.say.note(`... ${lines.length - shown.length} more in ${this.daemon!.process.logFile}`);
  }

  /**
   * The daemon publishes its report asynchronously, and may publish more after it (a later no-op
   * or runtime report): wait (bounded) for the commit that reports `revision` applied.
   */
  private async waitForStatusCommit(repo: ConfigRepo, revision: string): Promise<DemoResult['statusCommit']> {
    const { statusBranch, node } = this.layout;
    const subject = `status(${node}): applied ${revision.slice(0, 12)}`;
    const deadline = Date.now() + 30_000;
    let last = '';
    for (;;) {
      const commit = await repo.findCommit(statusBranch, subject);
      if (commit) {
        const json = await repo.show(commit.sha, `${node}/status.json`);
        const report = JSON.parse(json) as StatusReport;
        if (report.lastAppliedRevision === revision) {
          return { sha: commit.sha, subject: commit.subject, files: await repo.changedFiles(commit.sha), markdown: await repo.show(commit.sha, `${node}/status.md`) };
        }
      }
      if (await repo.branchTip(statusBranch)) last = await repo.show(statusBranch, `${node}/status.json`).catch(() => '');
      if (Date.now() >= deadline) {
        throw new SandboxError(`no status commit for ${revision.slice(0, 12)} on ${statusBranch} within 30 s${last ? `; ${node}/status.json there says:\n${tail(last, 20)}` : ' (the branch does not exist)'}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function describeStatus(r: StatusReport): string {
  const ready = r.conditions.find((c) => c.type === 'Ready');
  const plan = r.plan ? `plan +${r.plan.add} ~${r.plan.change} -${r.plan.destroy}` : 'no plan';
  return `result ${r.result}, ${plan}${ready ? `, Ready=${ready.status} (${ready.reason})` : ''}`;
}

/** lb.yaml without its leading comment block. */
function configExcerpt(file: string): string {
  const lines = readFileSync(file, 'utf8').split('\n');
  let i = 0;
  while (i < lines.length && lines[i]!.startsWith('#')) i++;
  return lines.slice(i).join('\n');
}
