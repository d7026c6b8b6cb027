// `lb daemon`: the process that keeps one instance's data plane equal to a Git branch (or a config
// path). It wires the building blocks together and owns their lifecycle:
//
//   source       GitSource (--repo/--ref/--path, --auth-token-file, --verify-signatures) or FileSource (--config)
//   triggers     startup, poll (--poll), webhook (--webhook-listen), file watch (--config), SIGHUP
//                (the CLI wires it), the control socket, retries, the drift timer (--drift-interval)
//   reconciler   src/reconcile (single flight, steps, dispositions, drift, self-heal)
//   report       /run/lb/<instance>/status.json always; the status branch with --status-branch
//   observe      ops endpoints (--ops-listen: /healthz /readyz /metrics), pino JSON logs
//   runtime      health checks, drain, circuit breaker, least-connections, DNS (src/runtime/service.ts):
//                effective weights for every compile, a reconcile when they change, state in the
//                status report and /metrics, commands drain / undrain / breaker / runtime-status
//   control      /run/lb/<instance>/control.sock (status, reconcile, drift, the runtime's commands)
//
// Stopping (SIGTERM/SIGINT) ends the process and nothing else: programs, maps, attachments and
// flows stay pinned, so the next start adopts them and its first plan is a no-op (zero-drop
// restart). `lb down` is what takes the data plane away.

import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { acquireLock, type InstanceLock } from '../apply/index.js';
import { isLbError, LbError } from '../core/errors.js';
import { createLogger, LOG_LEVELS, type DaemonLogger } from '../observe/logger.js';
import { DaemonMetrics } from '../observe/metrics.js';
import { Observability } from '../observe/observability.js';
import { withConfigHook } from './config-hook.js';
import { OpsServer } from '../observe/ops-server.js';
import { healthLatencyObservations } from '../runtime/metrics.js';
import { RuntimeService } from '../runtime/service.js';
import { FrontDoor, relayMode } from '../acceptor/front-door.js';
import { frontDoorHook } from '../acceptor/daemon-hook.js';
import { acceptorConnEvents } from '../acceptor/conn-events.js';
import { withAcceptorLoad } from '../acceptor/runtime-sampler.js';
import { registerAcceptorMetrics } from '../acceptor/metrics.js';
import { kernelEngine, Reconciler, type ReconcileEngine, type ReconcileOutcome, type RuntimeProvider } from '../reconcile/index.js';
import { dataPlaneSummary } from '../reconcile/status.js';
import { yieldToEventLoop } from '../reconcile/transfer.js';
import { StatusBranchReporter } from '../report/status-branch.js';
import { reportStatusesFor, type CommitStatusOptions, type ReportStatuses } from '../forge/report-statuses.js';
import type { StatusReport } from '../report/types.js';
import { DEFAULT_SELECTION, pageReport, statusSelection, STATUS_DEFAULT_LIMIT, STATUS_MAX_LIMIT, type StatusPage, type StatusSelection } from '../report/status-page.js';
import {
  credentialsFrom, sendsCredentialsInClear, FileSource, GitSource, loadKeyring, parseDuration, parsePollSchedule, startPoller,
  type FileWatch, type Poller, type Source,
} from '../source/index.js';
import { errFields } from '../log.js';
import { readLive, type LiveState } from '../state/live.js';
import { runDir } from '../state/run-dir.js';
import { loadSecretFiles, parseSecretFileFlags, WebhookReceiver, type Provider } from '../webhook/index.js';
import { ControlServer, controlSocketPath } from './control-socket.js';
import { statusBranchLoop } from './status-branch-check.js';
import { DataPlaneMetricsReader } from './dataplane-sample.js';
import { pinnedDataPlane } from '../dataplane/index.js';
import { KernelSampler } from '../runtime/dataplane-sampler.js';
import { LinkWatch } from './link-watch.js';
import { formatListenAddress, parseListenAddress, type ListenAddress } from './listen-address.js';
import { registerRuntimeCommands } from './runtime-commands.js';
import { StatusFileWriter } from './status-file.js';
import { lbVersion } from '../version.js';

export interface DaemonOptions {
  instance: string;
  /** A git remote (http/https) or a local repository path. */
  repo?: string;
  ref?: string;
  path?: string;
  /** A config file or directory (instead of a repository). */
  config?: string;
  /** Duration or cron schedule (default 30s). */
  poll?: string;
  webhookListen?: string;
  /** Repeatable: PROVIDER=FILE (that provider's own secret), or a bare FILE (github and gitea). */
  webhookSecretFile?: string | readonly string[];
  /** The status branch to report to (git sources only); undefined: no status branch. */
  statusBranch?: string;
  /** Default: the host name. */
  node?: string;
  /** Set a commit status `lb/<node>` on each applied, stalled or failed revision (git http sources; src/forge). */
  commitStatus?: CommitStatusOptions;
  /** Default true. */
  selfHeal?: boolean;
  /** Default 30s. */
  driftInterval?: string;
  /** Default 127.0.0.1:9180. */
  opsListen?: string;
  /** Keyring of the OpenPGP keys allowed to sign followed commits. */
  verifySignatures?: string;
  authTokenFile?: string;
  /** First retry delay after a transient failure (default 1s; doubles up to 5m). */
  retryInterval?: string;
  /** Where the clone, the checkouts and the status clone live (default /var/lib/lb/<instance>). */
  workDir?: string;
  logLevel?: string;
  /** A logger to use instead of a new one (tests). */
  logger?: DaemonLogger;
  /** Where the BPF objects are (default build/bpf of the package). */
  objectDir?: string;
  /** The DNS server host targets are resolved with, ADDR:PORT (default: the system's resolv.conf). */
  dnsServer?: string;
  /** Replaces the runtime services (tests); default RuntimeService (health, drain, breaker, least-connections, DNS). */
  runtime?: RuntimeProvider;
  /** Replaces the kernel engine (tests). */
  engine?: ReconcileEngine;
  /**
   * Check and plan in a worker thread, off the event loop (default true; $LB_PREPARE_WORKER=0
   * turns it off). Off: in-process, as `lb plan` does; the ops endpoints then wait for a plan.
   */
  prepareWorker?: boolean;
  /** How long one step of the prepare worker may take (default 30s, or $LB_PREPARE_TIMEOUT). */
  prepareTimeout?: string;
}

export const DEFAULT_OPS_LISTEN = '127.0.0.1:9180';
export const DEFAULT_POLL = '30s';
export const DEFAULT_DRIFT_INTERVAL = '30s';
export const DEFAULT_RETRY_INTERVAL = '1s';
export const DEFAULT_PREPARE_TIMEOUT = '30s';

/** What `lb status` gets from a running daemon. */
export interface DaemonStatus {
  daemon: {
    pid: number;
    version: string;
    instance: string;
    node: string;
    startedAt: string;
    ready: boolean;
    readyReason: string;
    reconciles: number;
    /** No trigger settling, no reconcile running or due. */
    idle: boolean;
    source: string;
    poll: string | null;
    selfHeal: boolean;
    driftIntervalMs: number;
    opsAddress: string | null;
    webhookAddress: string | null;
    statusBranch: string | null;
    commands: string[];
  };
  /** The report's per-target and per-backend lists hold one page: which, of how many, and a summary of all. */
  report: StatusReport;
  page: StatusPage;
}

/** A valid --node from the host name: invalid characters become '-', at most 64. */
export function defaultNodeName(): string {
  const name = hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^\.+/, '').slice(0, 64);
  return name === '' ? 'lb' : name;
}

function usage(message: string): never {
  throw new LbError('LB_DAEMON_USAGE', message);
}

function durationOf(text: string, flag: string, minMs: number): number {
  const ms = parseDuration(text);
  if (ms < minMs) usage(`${flag} ${text} is below the minimum of ${minMs} ms`);
  return ms;
}

export class Daemon {
  readonly instance: string;
  readonly log: DaemonLogger;
  readonly metrics: DaemonMetrics;
  readonly reconciler: Reconciler;
  readonly control: ControlServer;
  readonly startedAt = new Date().toISOString();
  opsAddress: string | null = null;
  webhookAddress: string | null = null;
  private readonly opts: DaemonOptions;
  private readonly node: string;
  private readonly driftIntervalMs: number;
  private readonly source: Source;
  private readonly ops: OpsServer;
  private readonly reporter: StatusBranchReporter | undefined;
  private readonly statusFile: StatusFileWriter;
  private readonly statuses: ReportStatuses | undefined;
  /** The runtime services, unless a RuntimeProvider was passed in. */
  readonly runtime: RuntimeService | undefined;
  /** Connection events, access log, traffic metrics (src/observe/observability.ts). */
  readonly observability: Observability;
  /** The SNI acceptor (src/acceptor), with the kernel engine. */
  readonly frontDoor: FrontDoor | undefined;
  private webhook: WebhookReceiver | undefined;
  private poller: Poller | undefined;
  private watch: FileWatch | undefined;
  private driftTimer: NodeJS.Timeout | undefined;
  private links: LinkWatch | undefined;
  private lock: InstanceLock | undefined;
  private stopping: Promise<void> | undefined;
  private stoppedResolve!: () => void;
  /** Resolves once stop() has finished. */
  readonly stopped: Promise<void>;

  private constructor(opts: DaemonOptions, parts: {
    log: DaemonLogger; node: string; source: Source; metrics: DaemonMetrics; reconciler: Reconciler;
    reporter: StatusBranchReporter | undefined; driftIntervalMs: number; runtime: RuntimeService | undefined; statuses?: ReportStatuses | undefined;
    observability: Observability; frontDoor: FrontDoor | undefined; statusFile: StatusFileWriter;
  }) {
    this.opts = opts;
    this.instance = opts.instance;
    this.log = parts.log;
    this.node = parts.node;
    this.source = parts.source;
    this.metrics = parts.metrics;
    this.reconciler = parts.reconciler;
    this.reporter = parts.reporter;
    this.statuses = parts.statuses;
    this.driftIntervalMs = parts.driftIntervalMs;
    this.statusFile = parts.statusFile;
    this.runtime = parts.runtime;
    this.observability = parts.observability;
    this.frontDoor = parts.frontDoor;
    this.control = new ControlServer({ path: controlSocketPath(opts.instance), log: parts.log });
    this.ops = new OpsServer({ metrics: parts.metrics, readiness: () => parts.reconciler.readiness(), log: parts.log });
    this.stopped = new Promise((r) => { this.stoppedResolve = r; });
  }

  /** Checks the options, takes the instance's daemon lock, starts everything, triggers the first reconcile. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    if ((opts.repo === undefined) === (opts.config === undefined)) usage('give either --repo URL|PATH or --config PATH (exactly one)');
    if (opts.config !== undefined) {
      for (const [flag, v] of [['--ref', opts.ref], ['--path', opts.path], ['--webhook-listen', opts.webhookListen], ['--status-branch', opts.statusBranch],
        ['--verify-signatures', opts.verifySignatures], ['--auth-token-file', opts.authTokenFile], ['--commit-status', opts.commitStatus?.forge]] as const) {
        if (v !== undefined) usage(`${flag} needs a git source (--repo); --config follows a plain file or directory`);
      }
    }
    const statusLoop = opts.statusBranch !== undefined ? statusBranchLoop(opts.ref, opts.statusBranch) : undefined;
    if (statusLoop !== undefined) usage(statusLoop);
    const hookSecretFlags = [opts.webhookSecretFile ?? []].flat();
    if (opts.webhookListen !== undefined && hookSecretFlags.length === 0) usage('--webhook-listen needs --webhook-secret-file (an unauthenticated webhook would let anyone trigger reconciles)');
    if (hookSecretFlags.length > 0 && opts.webhookListen === undefined) usage('--webhook-secret-file is only used with --webhook-listen');
    const opsAt = parseListenAddress(opts.opsListen ?? DEFAULT_OPS_LISTEN, '--ops-listen');
    const hookAt = opts.webhookListen !== undefined ? parseListenAddress(opts.webhookListen, '--webhook-listen') : undefined;
    const pollText = opts.poll ?? DEFAULT_POLL;
    const schedule = parsePollSchedule(pollText);
    const driftIntervalMs = durationOf(opts.driftInterval ?? DEFAULT_DRIFT_INTERVAL, '--drift-interval', 100);
    const retryMs = durationOf(opts.retryInterval ?? DEFAULT_RETRY_INTERVAL, '--retry-interval', 10);
    const prepareWorker = opts.prepareWorker ?? process.env['LB_PREPARE_WORKER'] !== '0';
    const prepareTimeoutMs = durationOf(opts.prepareTimeout ?? process.env['LB_PREPARE_TIMEOUT'] ?? DEFAULT_PREPARE_TIMEOUT, 'the prepare timeout', 100);
    const dnsAt = opts.dnsServer !== undefined ? parseListenAddress(opts.dnsServer, '--dns-server') : undefined;
    if (dnsAt && isIP(dnsAt.host) === 0) usage(`--dns-server ${opts.dnsServer ?? ''} needs an IP address, not a name (it is what resolves names)`);
    const node = opts.node ?? defaultNodeName();
    const workDir = resolve(opts.workDir ?? join('/var/lib/lb', opts.instance));
    const level = LOG_LEVELS.find((l) => l === (opts.logLevel ?? 'info'));
    if (level === undefined) usage(`--log-level ${opts.logLevel ?? ''} is not one of ${LOG_LEVELS.join(', ')}`);
    const log = opts.logger ?? createLogger({ level, base: { instance: opts.instance, node } });
    const webhookSecrets = hookSecretFlags.length > 0 ? await loadSecretFiles(parseSecretFileFlags(hookSecretFlags)) : undefined;
    const keyring = opts.verifySignatures !== undefined ? await loadKeyring(opts.verifySignatures) : undefined;

    let lock: InstanceLock;
    try {
      lock = acquireLock(join(runDir(opts.instance), 'daemon'), opts.instance);
    } catch (err) {
      if (isLbError(err, 'LB_APPLY_LOCKED')) {
        throw new LbError('LB_DAEMON_RUNNING', `another lb daemon runs for instance ${opts.instance} (${String(err.data['holder'] ?? '')}); stop it first`, { instance: opts.instance });
      }
      throw err;
    }

    let daemon: Daemon | undefined;
    try {
      let source: Source;
      let sourceInfo: StatusReport['source'];
      let reporter: StatusBranchReporter | undefined;
      let statuses: ReportStatuses | undefined;
      const metrics = new DaemonMetrics({ readDataPlane: ((reader) => () => reader.read())(new DataPlaneMetricsReader(opts.instance)), info: { version: lbVersion(), instance: opts.instance, node } });
      const observability = new Observability({ instance: opts.instance, metrics, log: { warn: (o, m) => log.warn({ component: 'events', ...o }, m) } });
      if (opts.repo !== undefined) {
        const git = new GitSource({
          url: opts.repo, ...(opts.ref !== undefined ? { ref: opts.ref } : {}), ...(opts.path !== undefined ? { path: opts.path } : {}),
          workDir: join(workDir, 'source'), auth: opts.authTokenFile !== undefined ? { tokenFile: opts.authTokenFile } : {},
          ...(keyring ? { keyring } : {}), log,
        });
        const credentials = credentialsFrom(opts.authTokenFile !== undefined ? { tokenFile: opts.authTokenFile } : {},
          git.location.kind === 'http' ? git.location.urlCredentials : undefined);
        source = git;
        sourceInfo = { kind: 'git', url: git.location.kind === 'local' ? git.location.path : git.location.url, ref: git.ref, path: git.subPath };
        if (git.location.kind === 'http') {
          // The fetches and the status pushes would carry the token or password in clear text.
          const url = git.location.url;
          void credentials().then((c) => {
            if (sendsCredentialsInClear(url, c)) log.warn({ component: 'source', url }, 'credentials are sent in clear text to an http:// remote; use https');
          }, () => undefined);
        }
        if (opts.statusBranch !== undefined) {
          reporter = new StatusBranchReporter({
            url: opts.repo, node, branch: opts.statusBranch, workDir: join(workDir, 'status'), credentials, log,
            onPublished: (o) => {
              metrics.statusPublished(o.result);
              if (o.result === 'committed') log.info({ component: 'report', commit: o.commit, attempts: o.attempts }, 'status committed to the status branch');
            },
          });
        }
        if (opts.commitStatus !== undefined) {
          statuses = reportStatusesFor(opts.commitStatus, { repo: git.location.kind === 'http' ? git.location.url : opts.repo, node, log, ...(opts.statusBranch !== undefined ? { statusBranch: opts.statusBranch } : {}) });
        }
      } else {
        const file = new FileSource({ path: opts.config!, log });
        source = file;
        sourceInfo = { kind: 'file', url: file.path, ref: '', path: '' };
      }

      const adopted = adoptedState(opts.instance, log);
      const initial = adopted?.initial;
      if (adopted) observability.hub.useLive(adopted.live);
      // LB_SNI_RELAY: native (default: the native front door), splice (Node's acceptor and the pair keeper), kernel (the sockmap relay, experimental) or node (docs/sni.md).
      const relay = relayMode(process.env['LB_SNI_RELAY']);
      // The SNI front door runs with the kernel engine only (a test's engine has no kernel to steer).
      const frontDoor = opts.engine ? undefined : new FrontDoor({
        instance: opts.instance, ...(opts.objectDir !== undefined ? { objectDir: opts.objectDir } : {}),
        events: acceptorConnEvents(observability.hub),
        onHandover: (h) => log.info({ component: 'acceptor', ...h }, h.adopted ? 'SNI acceptor socket taken over from its holder' : 'SNI acceptor socket made anew'),
        onPairs: (p) => ('error' in p
          ? log.warn({ component: 'acceptor', error: p.error }, 'SNI pair keeper not used: spliced connections end with the daemon')
          : log.info({ component: 'acceptor', ...p }, 'SNI spliced pairs taken back from the pair keeper')),
        onDoor: (e) => ('error' in e ? log.error({ component: 'acceptor', error: e.error }, 'the native SNI front door cannot serve')
          : 'lost' in e ? log.warn({ component: 'acceptor', why: e.lost }, 'lost the native SNI front door\'s connection: reconnecting')
          : log.info({ component: 'acceptor', door: e.pid, started: e.started }, e.started ? 'native SNI front door started' : 'native SNI front door connected again')),
        ...(relay ? { relay } : {}),
      });
      // The breaker and least-connections see the acceptor's connections too (no lb_tstats counts them).
      const runtime = opts.runtime ? undefined : new RuntimeService({
        instance: opts.instance, log, ...(dnsAt ? { dnsServers: [formatListenAddress(dnsAt)] } : {}),
        ...(frontDoor ? { sampler: withAcceptorLoad(new KernelSampler(opts.instance), () => frontDoor.backendLoad) } : {}),
      });
      if (frontDoor) registerAcceptorMetrics(metrics.registry, frontDoor);
      const provider = withConfigHook(opts.runtime ?? runtime!, (c) => observability.configure(c.settings));
      const hook = frontDoor
        ? frontDoorHook(provider, frontDoor, {
          error: (err) => log.error({ component: 'acceptor', ...errFields(err) }, 'the SNI acceptor could not take the applied config'),
          applied: (revision, listeners) => log.info({
            component: 'acceptor', revision, listeners, relay: frontDoor.relay, ...(frontDoor.relayError ? { relayError: frontDoor.relayError } : {}),
          }, 'SNI acceptor serving'),
        })
        : undefined;
      const statusFile = new StatusFileWriter(opts.instance, (err) => log.error({ component: 'report', ...errFields(err) }, 'cannot write the status file'));
      const reconciler: Reconciler = new Reconciler({
        instance: opts.instance, node, source, sourceInfo,
        engine: opts.engine ?? kernelEngine(opts.instance, {
          ...(opts.objectDir !== undefined ? { objectDir: opts.objectDir } : {}),
          ...(prepareWorker ? { worker: { timeoutMs: prepareTimeoutMs } } : {}),
        }),
        // Each validated config's settings also configure the access log and settings.metrics
        // (provider is wrapped with that hook above); the SNI front door hooks in after it.
        runtime: hook?.provider ?? provider,
        selfHeal: opts.selfHeal ?? true,
        retry: { initialMs: retryMs, maxMs: Math.max(retryMs, 300_000) },
        log, metrics, version: lbVersion(),
        ...(initial ? { initial } : {}),
        onReport: (report, significant) => {
          const r = { ...report, traffic: observability.status() };
          statusFile.write(r);
          if (significant) {
            reporter?.report(r);
            statuses?.report(r);
          }
          hook?.afterReport(reconciler.lastOutcome);
        },
        // The event hub names listeners from the state an apply verified, not by reading it again.
        onNames: (names) => observability.hub.useNames(names),
      });
      // While a run may be applying in the apply worker, the hub waits for the run's names.
      observability.hub.holdNamesWhile(() => reconciler.running);
      if (initial?.lastAppliedRevision) metrics.appliedRevision(initial.lastAppliedRevision);
      if (runtime) {
        runtime.bind({
          trigger: (detail) => reconciler.trigger('manual', detail),
          targetIds: () => reconciler.appliedState?.request.targetIds,
          statusChanged: () => reconciler.publishReport(),
        });
        runtime.health.on('check', (e) => { for (const o of healthLatencyObservations(e)) metrics.healthCheck(o.labels, o.seconds); });
        metrics.setRuntimeSource(() => runtime.metricsInput());
        // A drain's timeout ends the flows still on the target: an operator who set one wants the
        // target free at that time (docs/observability.md, close reason drain).
        runtime.onDrainTimedOut((proxy, target, backends) => {
          const ended = observability.hub.endFlows(proxy, new Set(backends), 'drain');
          log.info({ component: 'events', proxy, target, ended }, `drain of ${target} (proxy ${proxy}) timed out: ${ended} flow(s) ended`);
        });
      }
      daemon = new Daemon(opts, { log, node, source, metrics, reconciler, reporter, driftIntervalMs, runtime, statuses, observability, frontDoor, statusFile });
      daemon.lock = lock;
      log.info({ component: 'daemon', version: lbVersion(), source: source.description, adopted: initial !== undefined,
        lastAppliedRevision: initial?.lastAppliedRevision ?? null, selfHeal: opts.selfHeal ?? true, poll: pollText, driftIntervalMs,
        prepare: prepareWorker ? { worker: true, timeoutMs: prepareTimeoutMs } : { worker: false } },
      initial ? `lb daemon starting; adopting the pinned data plane of instance ${opts.instance}` : `lb daemon starting for instance ${opts.instance}`);

      await daemon.listenOps(opsAt);
      if (hookAt && webhookSecrets !== undefined) await daemon.listenWebhook(hookAt, webhookSecrets);
      daemon.registerCommands();
      await daemon.control.listen();
      runtime?.start();
      await observability.start();
      daemon.startTriggers(schedule, pollText);
      reconciler.trigger('startup');
      log.info({ component: 'daemon', ops: daemon.opsAddress, webhook: daemon.webhookAddress, control: daemon.control.path }, 'lb daemon started');
      return daemon;
    } catch (err) {
      if (daemon) await daemon.stop('start failed').catch(() => undefined);
      else lock.release();
      throw err;
    }
  }

  private async listenOps(at: ListenAddress): Promise<void> {
    const a = await this.ops.listen(at.port, at.host);
    this.opsAddress = formatListenAddress({ host: a.address, port: a.port });
  }

  private async listenWebhook(at: ListenAddress, secrets: Partial<Record<Provider, string>>): Promise<void> {
    const git = this.source instanceof GitSource ? this.source : undefined;
    this.webhook = new WebhookReceiver({
      secrets,
      ...(git ? { acceptRef: (ref: string) => git.followsRef(ref) } : {}),
      onEvent: (e) => {
        this.log.info({ component: 'webhook', provider: e.provider, delivery: e.deliveryId, ref: e.ref, after: e.after }, 'webhook accepted: reconciling');
        this.reconciler.trigger('webhook', e.after?.slice(0, 12) ?? e.deliveryId, e.after);
      },
      onResult: (provider, result) => this.metrics.webhook(provider, result),
      log: this.log,
    });
    try {
      const a = await this.webhook.listen(at.port, at.host);
      this.webhookAddress = formatListenAddress({ host: a.address, port: a.port });
      this.log.info({ component: 'webhook', address: this.webhookAddress, providers: this.webhook.providers }, 'webhook receiver serving its configured providers');
    } catch (err) {
      this.webhook = undefined;
      throw err;
    }
  }

  private registerCommands(): void {
    this.control.register('status', `the daemon and its latest status report, its per-target and per-backend lists one page long; args: {proxy?: name, offset?: int, limit?: int (default ${STATUS_DEFAULT_LIMIT}, at most ${STATUS_MAX_LIMIT})}`,
      (args) => this.statusYielding(statusSelection(args)));
    this.control.register('reconcile', 'reconcile now; args: {force?: bool (re-plan an unchanged revision), wait?: bool}', async (args) => {
      if (args['force'] === true) this.reconciler.forceReconcile('control socket');
      else this.reconciler.trigger('manual', 'control socket');
      if (args['wait'] !== true) return { triggered: true };
      await this.reconciler.whenIdle();
      const { report, page } = await this.statusYielding();
      return { triggered: true, outcome: outcomeSummary(this.reconciler.lastOutcome), report, page };
    });
    this.control.register('drift', 'read the live maps back now and compare them with the last applied state (heals with self-heal on)', async () => {
      const r = await this.reconciler.checkDriftNow();
      return { drifted: r.finding !== null, healed: r.healed, entries: r.finding?.entries ?? 0, differences: r.finding?.differences ?? [], ...(r.note ? { note: r.note } : {}) };
    });
    if (this.runtime) registerRuntimeCommands(this.control, this.runtime, this.reconciler);
  }

  private startTriggers(schedule: ReturnType<typeof parsePollSchedule>, pollText: string): void {
    this.poller = startPoller(schedule, () => {
      if (this.reconciler.acceptsPoll()) this.reconciler.trigger('poll', pollText);
    }, { log: this.log });
    if (this.source instanceof FileSource) {
      this.watch = this.source.watch((rev) => this.reconciler.trigger('file', rev?.slice(0, 19) ?? 'config unreadable'));
    }
    this.driftTimer = setInterval(() => this.reconciler.trigger('drift', 'timer'), this.driftIntervalMs);
    // An interface lb serves that changes (deleted, created again, renamed, carrier) is checked at once.
    this.links = new LinkWatch((e) => {
      // Any link may be a next hop toward backends: cached FIB answers naming it are stale now.
      this.flushNexthops();
      if (!this.reconciler.servedInterfaces().includes(e.ifname)) {
        if (!e.deleted) this.reconciler.interfaceAppeared(e.ifname);
        return;
      }
      this.log.info({ component: 'links', ifname: e.ifname, ifindex: e.ifindex, deleted: e.deleted, up: e.up }, `interface ${e.ifname} ${e.deleted ? 'deleted' : 'changed'}`);
      this.reconciler.trigger('drift', `link ${e.ifname}`);
    }, this.log);
    this.links.start();
  }

  /** Empties the data paths' next-hop cache (lb_nexthops), when the instance exists. */
  private flushNexthops(): void {
    try {
      pinnedDataPlane(this.instance).read((dp) => dp.flushNexthops());
    } catch (err) {
      this.log.warn({ component: 'links', ...errFields(err) }, 'cannot flush the next-hop cache; its entries expire within a second');
    }
  }

  /** The daemon's status, with the report's growing lists cut to one page (src/report/status-page.ts). */
  status(selection: StatusSelection = DEFAULT_SELECTION): DaemonStatus {
    return this.statusOf(this.reconciler.report(), selection);
  }

  /** status(), its runtime section built between turns of the event loop when it must be built anew (the control socket). */
  async statusYielding(selection: StatusSelection = DEFAULT_SELECTION): Promise<DaemonStatus> {
    return this.statusOf(await this.reconciler.reportYielding(yieldToEventLoop), selection);
  }

  private statusOf(full: StatusReport, selection: StatusSelection): DaemonStatus {
    const r = this.reconciler.readiness();
    const { report, page } = pageReport({ ...full, traffic: this.observability.status() }, selection);
    return {
      daemon: {
        pid: process.pid, version: lbVersion(), instance: this.instance, node: this.node, startedAt: this.startedAt,
        ready: r.ready, readyReason: r.reason, reconciles: this.reconciler.reconciles, idle: this.reconciler.idle, source: this.source.description,
        poll: this.opts.poll ?? DEFAULT_POLL, selfHeal: this.opts.selfHeal ?? true, driftIntervalMs: this.driftIntervalMs,
        opsAddress: this.opsAddress, webhookAddress: this.webhookAddress,
        statusBranch: this.reporter ? this.reporter.branch : null, commands: this.control.commands,
      },
      report,
      page,
    };
  }

  /**
   * Stops triggers, waits for a run in flight, publishes the last report (bounded), closes the
   * endpoints. The data plane is left exactly as it is. Idempotent.
   */
  stop(reason = 'stop requested'): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ component: 'daemon', reason }, 'lb daemon stopping; the data plane keeps running');
      this.poller?.stop();
      this.watch?.close();
      if (this.driftTimer) clearInterval(this.driftTimer);
      this.links?.stop();
      await this.runtime?.stop();
      await this.reconciler.stop();
      await this.statusFile.flush();
      // The access log's queue is written before the process ends (SIGTERM), with the acceptor's
      // records still waiting for their batch.
      this.frontDoor?.flushEvents();
      await this.observability.stop().catch((err: unknown) => this.log.warn({ component: 'events', ...errFields(err) }, 'stopping the connection events failed'));
      await this.frontDoor?.close();
      await this.webhook?.close().catch(() => undefined);
      await this.control.close().catch(() => undefined);
      if (this.reporter) {
        await Promise.race([this.reporter.flush(), new Promise((r) => setTimeout(r, 5000).unref())]);
        await this.reporter.close();
      }
      if (this.statuses) {
        await Promise.race([this.statuses.notifier.idle(), new Promise((r) => setTimeout(r, 5000).unref())]);
        this.statuses.close();
      }
      await this.ops.close();
      // The readers are stopped: the handle on the pins they shared goes (the maps stay pinned).
      pinnedDataPlane(this.instance).close();
      this.lock?.release();
      this.log.info({ component: 'daemon' }, 'lb daemon stopped; programs, maps and flows stay pinned');
      this.stoppedResolve();
    })();
    return this.stopping;
  }
}

/** lastApplied* from the pinned data plane and its inventory, and the live state read, when the instance exists. */
function adoptedState(instance: string, log: DaemonLogger): {
  initial: { lastAppliedRevision: string | null; lastAppliedAt: string | null; dataPlane: ReturnType<typeof dataPlaneSummary> };
  live: LiveState;
} | undefined {
  try {
    const live = readLive(instance, { warn: (m) => log.warn({ component: 'daemon' }, m) });
    if (!live.exists) return undefined;
    const inv = live.inventory !== null && live.inventory.serial === live.ctl.serial ? live.inventory : null;
    return { initial: { lastAppliedRevision: inv?.revision ?? null, lastAppliedAt: inv?.appliedAt ?? null, dataPlane: dataPlaneSummary(live) }, live };
  } catch (err) {
    log.warn({ component: 'daemon', ...errFields(err) }, 'cannot read the pinned data plane; the first reconcile will tell');
    return undefined;
  }
}

export function outcomeSummary(o: ReconcileOutcome | undefined): Record<string, unknown> | null {
  if (!o) return null;
  if ('failure' in o) return { result: o.result, revision: o.revision, step: o.failure.step, reason: o.failure.reason, message: o.failure.message };
  if (o.result === 'unchanged') return { result: o.result, revision: o.revision, because: o.because };
  return { result: o.result, revision: o.revision, plan: o.plan };
}
