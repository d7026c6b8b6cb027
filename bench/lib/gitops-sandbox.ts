// The gitops benchmark's sandbox, built from the demo's parts (src/demo): a namespace topology
// (client c1, the LB namespace, three backends; no servers: nothing sends traffic), the config
// repository served over smart HTTP by git-server-main.js inside the LB namespace, the operator's
// clone, and `lb daemon` started and stopped in the LB namespace (DemoDaemon). Names are per run:
// namespaces lbbgo<pid><abc>-*, instance bench-gitops-<pid>, work directory
// $TMPDIR/lb-bench-gitops-<pid>-XXXXXX; what a killed run left is recognised by its dead pid and
// removed before the next one.
//
// Teardown: stop() (async: daemon SIGTERM, the demo's cleanUp: processes in the LB namespace,
// `lb down`, namespaces, work directory) at the end and after a failure; stopSync() (SIGKILL,
// `lb down`, namespaces, work directory) from an exit or signal handler.
// Traffic: git and curl to 127.0.0.1 inside the LB namespace, nothing else.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LB_PIN_ROOT, instanceDir } from '../../src/dataplane/bpffs.js';
import { cleanUp, lbDown } from '../../src/demo/cleanup.js';
import { ConfigRepo } from '../../src/demo/config-repo.js';
import { DemoDaemon } from '../../src/demo/daemon.js';
import { artefacts, type Artefacts, type DemoLayout } from '../../src/demo/layout.js';
import { LbCli } from '../../src/demo/lb-cli.js';
import { DemoProcess, logExcerpt } from '../../src/demo/processes.js';
import { createTopology, destroyStale, isAlive, killGroup, makeRunPrefix, nsenterArgs, type Topology } from '../../src/sandbox/index.js';
import { LB_RUN_ROOT, runDir } from '../../src/state/run-dir.js';
import { BenchError } from './errors.js';

export const GITOPS_PREFIX_FAMILY = 'lbbgo';
const INSTANCE_RE = /^bench-gitops-(\d+)$/;
const WORKDIR_RE = /^lb-bench-gitops-(\d+)-/;
/** Inside the LB namespace: its own loopback. */
const GIT_PORT = 3000;
export const WEBHOOK_LISTEN = '127.0.0.1:9091';
export const OPS_LISTEN = '127.0.0.1:9180';

export interface DaemonMode {
  /** `--poll` value. */
  poll: string;
  webhook: boolean;
  /** Log file name in the log directory. */
  logName: string;
}

export class GitopsSandbox {
  readonly layout: DemoLayout;
  readonly art: Artefacts;
  readonly lb: LbCli;
  readonly repo: ConfigRepo;
  readonly secret = randomBytes(24).toString('hex');
  repoUrl = '';
  initialRevision = '';
  private topology: Topology | undefined;
  private gitServer: DemoProcess | undefined;
  private daemonValue: DemoDaemon | undefined;
  private stopping: Promise<string[]> | undefined;
  private stoppedSync = false;
  private readonly log: (m: string) => void;

  private constructor(layout: DemoLayout, art: Artefacts, log: (m: string) => void) {
    this.layout = layout;
    this.art = art;
    this.log = log;
    this.lb = new LbCli({ cli: art.cli, ns: `${layout.prefix}-lb`, instance: layout.instance });
    this.repo = new ConfigRepo({ bareRepo: layout.bareRepo, clone: layout.clone, branch: layout.branch });
  }

  get lbNs(): string {
    return `${this.layout.prefix}-lb`;
  }

  get daemon(): DemoDaemon {
    if (!this.daemonValue?.process.running) throw new BenchError('the daemon is not running');
    return this.daemonValue;
  }

  /** Layout only; create() builds it. Register stopSync() before calling create(). */
  static prepare(log: (m: string) => void): GitopsSandbox {
    const art = artefacts();
    for (const f of [art.cli, art.gitServer, join(art.root, 'build', 'bpf', 'lb_xdp.bpf.o'), join(art.examplesRepo, 'lb.yaml')]) {
      if (!existsSync(f)) throw new BenchError(`${f} is missing: run \`make build\` first`);
    }
    const workDir = mkdtempSync(join(tmpdir(), `lb-bench-gitops-${process.pid}-`));
    const gitRoot = join(workDir, 'git');
    const layout: DemoLayout = {
      prefix: makeRunPrefix(GITOPS_PREFIX_FAMILY),
      staleFamily: GITOPS_PREFIX_FAMILY,
      instance: `bench-gitops-${process.pid}`,
      node: 'bench-node',
      statusBranch: 'lb-status',
      branch: 'main',
      workDir,
      gitRoot,
      repoName: 'config.git',
      bareRepo: join(gitRoot, 'config.git'),
      clone: join(workDir, 'clone'),
      secretFile: join(workDir, 'webhook-secret'),
      daemonWorkDir: join(workDir, 'daemon'),
      logDir: join(workDir, 'logs'),
      stateFile: join(workDir, 'state.json'),
    };
    mkdirSync(layout.logDir, { recursive: true });
    return new GitopsSandbox(layout, art, log);
  }

  /** Removes what killed earlier runs of this suite left: namespaces, pins, run and work directories. */
  static async removeStale(log: (m: string) => void): Promise<void> {
    const removed = await destroyStale(GITOPS_PREFIX_FAMILY);
    if (removed.length > 0) log(`removed namespaces of an earlier, interrupted run: ${removed.join(', ')}`);
    const art = artefacts();
    const instances = new Set<string>();
    for (const root of [LB_PIN_ROOT, LB_RUN_ROOT]) {
      if (!existsSync(root)) continue;
      for (const name of readdirSync(root)) {
        const m = INSTANCE_RE.exec(name);
        if (m && !isAlive(Number(m[1]))) instances.add(name);
      }
    }
    for (const name of instances) {
      await lbDown(art, name, undefined);
      rmSync(runDir(name), { recursive: true, force: true });
      log(`removed instance ${name} of an earlier, interrupted run`);
    }
    for (const name of readdirSync(tmpdir())) {
      const m = WORKDIR_RE.exec(name);
      if (m && !isAlive(Number(m[1]))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }

  async create(): Promise<void> {
    const { layout } = this;
    this.log(`creating namespaces ${layout.prefix}-{c1,lb,b1,b2,b3}`);
    this.topology = await createTopology({ prefix: layout.prefix, backends: 3, clients: 1, cleanupOnSignal: false });
    this.initialRevision = await this.repo.create(this.art.examplesRepo);
    this.gitServer = DemoProcess.start({
      ns: this.lbNs, argv: [process.execPath, this.art.gitServer, '--root', layout.gitRoot, '--port', String(GIT_PORT)],
      logFile: join(layout.logDir, 'git-server.log'), label: 'git server',
    });
    await this.gitServer.waitForLog(/"ready":true/, 15_000, 'its ready line');
    this.repoUrl = `http://127.0.0.1:${GIT_PORT}/${layout.repoName}`;
    await this.repo.setOrigin(this.repoUrl);
    writeFileSync(layout.secretFile, `${this.secret}\n`, { mode: 0o600 });
  }

  /** Starts `lb daemon` in the LB namespace: webhook receiver or not, the given poll interval. */
  startDaemon(mode: DaemonMode): DemoDaemon {
    if (this.daemonValue?.process.running) throw new BenchError('a daemon is running already');
    const { layout } = this;
    this.daemonValue = DemoDaemon.start({
      lb: this.lb, repoUrl: this.repoUrl, branch: layout.branch, poll: mode.poll,
      ...(mode.webhook ? { webhookListen: WEBHOOK_LISTEN, webhookSecretFile: layout.secretFile } : {}),
      node: layout.node, workDir: layout.daemonWorkDir, logFile: join(layout.logDir, mode.logName),
      extraArgs: ['--ops-listen', OPS_LISTEN],
    });
    return this.daemonValue;
  }

  async stopDaemon(): Promise<void> {
    const d = this.daemonValue;
    if (!d?.process.running) return;
    const how = await d.stop();
    if (how !== 'exited') throw new BenchError(`lb daemon did not stop within 10 s of SIGTERM (killed); log: ${d.process.logFile}`);
  }

  /** The daemon's log, shortened to what explains a failure. */
  daemonLogExcerpt(): string {
    const d = this.daemonValue;
    return d ? logExcerpt(d.process.log()) : '';
  }

  /** Everything down, in order; never throws. Returns the problems. */
  stop(): Promise<string[]> {
    this.stopping ??= (async () => {
      const problems: string[] = [];
      try {
        await this.stopDaemon();
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
      const report = await cleanUp(this.layout, this.art, this.topology ? { topology: this.topology } : {});
      if (this.gitServer?.running) await this.gitServer.stop(2000);
      problems.push(...report.problems);
      return problems;
    })();
    return this.stopping;
  }

  /** For exit and signal handlers: SIGKILL our processes, `lb down`, namespaces, work directory. */
  stopSync(): void {
    if (this.stoppedSync) return;
    this.stoppedSync = true;
    for (const p of [this.daemonValue?.process, this.gitServer]) if (p?.running) killGroup(p.pid, 'SIGKILL');
    const { instance } = this.layout;
    if (existsSync(instanceDir(instance)) || existsSync(runDir(instance))) {
      const argv = [process.execPath, this.art.cli, '--instance', instance, 'down'];
      const cmd = existsSync(`/run/netns/${this.lbNs}`) ? [...nsenterArgs(this.lbNs), ...argv] : argv;
      spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore', timeout: 30_000 });
    }
    this.topology?.destroySync();
    rmSync(this.layout.workDir, { recursive: true, force: true });
  }
}
