// RuntimeService: the shell that runs the runtime services inside the daemon and hands the
// reconciler their answers (src/reconcile/runtime.ts, RuntimeProvider).
//
// It owns HealthMonitor, DrainManager, CircuitBreakers and DnsResolver, and one sampling timer
// (settings.load-balancing.update-interval-ms) that reads the data plane: per backend the new
// flows and failed connection attempts (the breaker's attempts and failures), and, when
// least-connections or the breaker needs them, the active flows and the attempts nobody answered.
// From their snapshots it builds the RuntimeInputs for compileConfig (buildRuntimeInputs: every
// group of every proxy) and a fingerprint of the answers (every effective weight and every DNS
// host's addresses). Whenever an event may have moved the answers (a health transition, a drain, a
// circuit transition, a DNS change, a least-connections sample) the fingerprint is recomputed, and
// when it differs from the one last handed to the reconciler a reconcile is asked for. The
// reconciler compiles with the inputs and records the fingerprint with what it applied, so a
// runtime change is an ordinary apply, never drift.
//
// Decisions:
// - Recomputation is debounced (RECOMPUTE_SETTLE_MS): a burst of events (several checks of one
//   backend, every group of a proxy) makes one reconcile.
// - Breaker samples cover every backend of the config every period, also with no traffic: samples
//   advance its clock (OPEN -> HALF-OPEN). Counter deltas are taken only between two samples of the
//   same lb_tstats slot; a new slot (a backend re-added) starts a new series. The arithmetic (deltas,
//   windows, transitions) is circuit-breaker.ts's; this only wires the reads and the clock to it.
// - Drains are kept across daemon restarts in /run/lb/<instance>/drains.json (tmpfs: this boot,
//   like the pinned maps): a restart must not silently put a drained backend back. Forced circuit
//   states are not kept: a restarted daemon measures again.
// - Without a data plane (nothing applied yet) nothing is sampled; drains then end by their
//   timeout only.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TCP_FIN_TIMEOUT_SEC, type RuntimeInputs } from '../core/compile/compile.js';
import type { LbConfig } from '../core/config/types.js';
import { LbError } from '../core/errors.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { ensureDir, runDir, writeFileAtomic } from '../state/run-dir.js';
import type { FlowTimeouts } from './active-flows.js';
import { CircuitBreakers, CounterDeltas, type BackendTransition, type CircuitState } from './circuit-breaker.js';
import { DnsResolver, dnsHosts, systemResolver, type DnsHostSpec, type Resolve4 } from './dns.js';
import { DrainManager, type DrainState } from './drain.js';
import { buildRuntimeInputs, buildRuntimeInputsYielding, type BuiltRuntimeInputs, type RuntimeSnapshot as WeightSnapshot } from './effective-weight.js';
import type { Probe } from './health/checkers.js';
import { HealthMonitor } from './health/monitor.js';
import { healthCheckSpecs, type HealthCheckSpec } from './health/specs.js';
import { backendKey, configBackends, configGroups, findTargets, targetBackends } from './keys.js';
import type { RuntimeMetricsInput } from './metrics.js';
import { KernelSampler, type RuntimeSampler } from './dataplane-sampler.js';
import { runSliced, runWhole } from './slices.js';
import { runtimeStatus, runtimeStatusYielding, type RuntimeStatus } from './status.js';

export const RECOMPUTE_SETTLE_MS = 25;
const STATUS_SETTLE_MS = 100;
/**
 * At most this old, a status built earlier is given again while nothing it reads moved (status()):
 * what moves with the clock alone (a circuit's error-rate window, a DNS host's last attempt).
 */
const STATUS_CACHE_MS = 5000;
/** Active-flow counts older than this are read again for a metrics scrape. */
const ACTIVE_FLOWS_MAX_AGE_MS = 5_000;

/** What the service needs of the daemon; bound after both exist (bind()). */
export interface RuntimeHost {
  /** Ask for a reconcile: the runtime's answers changed. */
  trigger(detail: string): void;
  /** "addr:port" -> target id (lb_tstats index) of the applied state; undefined before the first apply. */
  targetIds(): ReadonlyMap<string, number> | undefined;
  /** The runtime's visible state changed (write the status file, maybe the status branch). */
  statusChanged?(): void;
}

export interface RuntimeServiceOptions {
  instance: string;
  /** The data plane reader; default the kernel's (KernelSampler). null: no sampling (tests). */
  sampler?: RuntimeSampler | null;
  /** DNS lookups; default node:dns through `dnsServers` or the system's resolv.conf. */
  resolve4?: Resolve4;
  /** "ip" or "ip:port" DNS servers (`lb daemon --dns-server`). */
  dnsServers?: string[];
  /** Health probe (default the TCP/HTTP/HTTPS checkers); tests inject one. */
  probe?: Probe;
  /** Verify HTTPS certificates of health checks (default false: docs/runtime.md). */
  verifyTls?: boolean;
  /** Where drains are persisted; default /run/lb/<instance>/drains.json; null: not persisted. */
  drainFile?: string | null;
  unansweredBoundMs?: number;
  log?: Logger;
  now?: () => number;
}

export type BreakerAction = 'open' | 'close' | 'reset';

export interface BreakerResult {
  backends: { backend: string; state: CircuitState | undefined }[];
  transitions: BackendTransition[];
}

/** When statusYielding may answer with the status built last instead of waiting for a new one. */
export interface StaleStatus {
  /** When only the clock moved since it was built (past STATUS_CACHE_MS). */
  stale?: boolean;
  /**
   * Whatever moved (a new config's targets): the daemon while a run is in progress, whose runtime
   * status is built for the run's report before the run ends. The build starts (or goes on) for
   * the next asker.
   */
  previous?: boolean;
}

export class RuntimeService {
  readonly instance: string;
  readonly health: HealthMonitor;
  readonly dns: DnsResolver;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly sampler: RuntimeSampler | null;
  private readonly drainFile: string | null;
  private host: RuntimeHost | undefined;
  private config: LbConfig | undefined;
  private revision: string | undefined;
  private drains: DrainManager | undefined;
  private readonly drainTimeoutListeners: Array<(proxy: string, targetId: string, backends: string[]) => void> = [];
  private breakers: CircuitBreakers | undefined;
  private activeFlowCounts = new Map<string, number>();
  private activeFlowsAt = 0;
  /** The data plane's counters at the previous sample: the breaker's samples are their deltas. */
  private readonly deltas = new CounterDeltas();
  /** The fingerprint last handed to the reconciler, and the one a pending trigger asked for. */
  private handed = 'none';
  private requested: string | undefined;
  private reasons: string[] = [];
  private recomputeTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private sampleTimer: NodeJS.Timeout | undefined;
  private sampleIntervalMs = 0;
  private sampleError: string | undefined;
  private running = false;
  /**
   * Moves with everything status() reads (configure, health, DNS, drains, circuits, active flows),
   * so an unchanged status is built once, not for every `lb status`, status publish and
   * statusKey(): 10,000 proxies took 0.2-0.7 s per build. Also bounded by STATUS_CACHE_MS, for
   * what moves with the clock alone (a circuit's error-rate window). Every breaker sample bumps it.
   */
  private statusVersion = 0;
  private statusCache: { version: number; at: number; status: RuntimeStatus } | undefined;
  /** The effective weights of the answers now: snapshot(), fingerprint() and status() share one build per version. */
  private builtCache: BuiltCache | undefined;
  /** statusKey() of the status last built, made once per status. */
  private keyCache: { status: RuntimeStatus; key: string } | undefined;
  /** Moves when a host's addresses change (configureYielding walks again when they moved meanwhile). */
  private dnsChanges = 0;
  /** The sliced builds in progress, of which version of the answers (snapshotYielding, statusYielding). */
  private inputsBuild: { version: number; config: LbConfig; promise: Promise<BuiltCache> } | undefined;
  private statusBuild: { version: number; config: LbConfig; promise: Promise<RuntimeStatus> } | undefined;

  constructor(options: RuntimeServiceOptions) {
    this.instance = options.instance;
    this.log = options.log ?? silentLogger;
    this.now = options.now ?? Date.now;
    this.sampler = options.sampler === undefined
      ? new KernelSampler(options.instance, options.unansweredBoundMs !== undefined ? { unansweredBoundMs: options.unansweredBoundMs } : {})
      : options.sampler;
    this.drainFile = options.drainFile === undefined ? join(runDir(options.instance), 'drains.json') : options.drainFile;
    this.health = new HealthMonitor({ ...(options.probe ? { probe: options.probe } : {}), ...(options.verifyTls !== undefined ? { verifyTls: options.verifyTls } : {}), now: this.now });
    this.dns = new DnsResolver({ resolve4: options.resolve4 ?? systemResolver(options.dnsServers ? { servers: options.dnsServers } : {}), now: this.now });

    this.health.on('change', ({ spec, previous, state }) => {
      const what = `health ${backendKey(spec.addr, spec.targetPort)} ${previous.status} -> ${state.status}${state.status === 'recovering' ? ` ${state.recoveryStep}` : ''}`;
      this.log.info({ component: 'runtime', backend: backendKey(spec.addr, spec.targetPort), check: spec.check.type, from: previous.status, to: state.status,
        recoveryStep: state.recoveryStep, ...(state.lastError ? { error: state.lastError } : {}) }, what);
      this.changed(what);
    });
    // Every check moves a backend's latency and last error in the status, changed or not.
    this.health.on('check', () => { this.statusVersion++; });
    this.dns.on('change', ({ host, previous, state, addressesChanged }) => {
      const level = state.status === 'ok' ? 'info' : 'warn';
      this.log[level]({ component: 'runtime', host, status: state.status, addresses: state.addresses, ...(state.lastError ? { error: state.lastError } : {}) },
        `dns ${host}: ${state.status}${state.status === 'ok' ? ` ${state.addresses.join(', ')}` : ` (${state.lastError ?? 'unknown error'}); keeping ${previous.addresses.join(', ') || 'no addresses'}`}`);
      if (addressesChanged) this.dnsChanges++;
      if (addressesChanged && this.config) {
        this.health.setSpecs(healthCheckSpecs(this.config, (h) => this.dns.resolve(h)));
        this.breakers?.retain(configBackends(this.config, (h) => this.dns.resolve(h)));
      }
      this.changed(`dns ${host} ${state.status}`);
    });
  }

  /** Connects the service to its daemon (reconcile triggers, the applied target ids, status). */
  bind(host: RuntimeHost): void {
    this.host = host;
  }

  // ---- RuntimeProvider (src/reconcile/runtime.ts) --------------------------------------------

  /**
   * Each validated config, before it is compiled: what to check, resolve, sample and keep. The
   * same revision again (a runtime-triggered reconcile) changes nothing: re-configuring would
   * restart the drains' count timers at every least-connections interval.
   */
  configure(config: LbConfig, revision?: string): void {
    if (this.unchanged(config, revision)) return;
    this.configureWith(config, revision, this.walk(config));
  }

  /**
   * configure(), its walks over every target (hosts to resolve, checks, backends: 30-60 ms for
   * 10,000 proxies) each between turns of the event loop via `pause`; the service changes in one
   * go at the end, so nothing reads a half-configured service. An address change meanwhile walks again.
   */
  async configureYielding(config: LbConfig, revision: string | undefined, pause: () => Promise<void>): Promise<void> {
    if (this.unchanged(config, revision)) return;
    const dnsChanges = this.dnsChanges;
    const resolve = (h: string): string[] | undefined => this.dns.resolve(h);
    const hosts = dnsHosts(config);
    await pause();
    const specs = healthCheckSpecs(config, resolve);
    await pause();
    const backends = configBackends(config, resolve);
    await pause();
    this.configureWith(config, revision, this.dnsChanges === dnsChanges ? { hosts, specs, backends } : this.walk(config));
  }

  /** The same revision again (a runtime-triggered reconcile). */
  private unchanged(config: LbConfig, revision: string | undefined): boolean {
    return this.config !== undefined && revision !== undefined && revision === this.revision;
  }

  /** What configure() derives from a config by walking every target. */
  private walk(config: LbConfig): ConfigWalk {
    const resolve = (h: string): string[] | undefined => this.dns.resolve(h);
    return { hosts: dnsHosts(config), specs: healthCheckSpecs(config, resolve), backends: configBackends(config, resolve) };
  }

  private configureWith(config: LbConfig, revision: string | undefined, { hosts, specs, backends }: ConfigWalk): void {
    this.revision = revision;
    this.statusVersion++;
    const first = this.config === undefined;
    this.config = config;
    this.dns.setHosts(hosts);
    this.health.setSpecs(specs);
    if (!this.breakers) this.breakers = new CircuitBreakers(config.settings.circuitBreaker);
    else this.breakers.configure(config.settings.circuitBreaker);
    this.breakers.retain(backends);
    this.deltas.retain(backends);
    if (!this.drains) {
      this.drains = new DrainManager(config, { activeFlows: (proxy, targetId) => this.countTargetFlows(proxy, targetId), now: this.now });
      this.drains.on('change', (e) => {
        this.log.info({ component: 'runtime', proxy: e.state.proxy, target: e.state.targetId, action: e.action, activeFlows: e.state.activeFlows },
          `drain of ${e.state.targetId} (proxy ${e.state.proxy}): ${e.action}`);
        this.saveDrains();
        this.changed(`drain ${e.state.proxy} ${e.state.targetId} ${e.action}`);
        if (e.action === 'timed-out') this.drainTimedOut(e.state);
      });
      if (first) this.restoreDrains();
    } else {
      this.drains.setConfig(config);
    }
    this.armSampler();
  }

  /** The inputs for compileConfig now, and their fingerprint (recorded with the apply). */
  snapshot(): { inputs: RuntimeInputs; fingerprint: string } {
    this.requested = undefined;
    if (!this.config) {
      this.handed = 'none';
      return { inputs: {}, fingerprint: 'none' };
    }
    return this.hand(this.builtInputs(this.config));
  }

  /**
   * snapshot(), built with `pause` between slices: the reconcile run asks for the inputs of a new
   * config this way, so building them for 10,000 proxies (every target's effective weight, then
   * their fingerprint: 60-100 ms in one go) does not hold the daemon's event loop. Answers that
   * move meanwhile (a check, a sample) are the next snapshot's: this one is of the state when it began.
   */
  async snapshotYielding(pause: () => Promise<void>): Promise<{ inputs: RuntimeInputs; fingerprint: string }> {
    const config = this.config;
    if (!config) return this.snapshot();
    const b = await this.builtYielding(config, pause);
    this.requested = undefined;
    return this.hand(b);
  }

  /** The fingerprint of the answers now (what the next snapshot() would record); 'none' before a config. */
  fingerprint(): string {
    return this.config ? this.fingerprinted(this.builtInputs(this.config)) : 'none';
  }

  /** Health, drain, circuit and DNS state per target, for `lb status` and the status report. */
  status(): RuntimeStatus | null {
    if (!this.config) return null;
    const now = this.now();
    const cached = this.statusCache;
    if (cached && cached.version === this.statusVersion && now - cached.at >= 0 && now - cached.at < STATUS_CACHE_MS) return cached.status;
    const { snap, built } = this.builtInputs(this.config);
    const status = runtimeStatus({ ...snap, dnsStates: this.dns.snapshot() }, built, now);
    this.statusCache = { version: this.statusVersion, at: now, status };
    return status;
  }

  /**
   * status(), built with `pause` between slices when it must be built anew (the effective weights
   * and a row per target: 10,000 proxies took 0.1-0.25 s in one go on the daemon's thread, the
   * first `lb status` after a new config). The status of the state when the build began.
   */
  async statusYielding(pause: () => Promise<void>, opts: StaleStatus = {}): Promise<RuntimeStatus | null> {
    const config = this.config;
    if (!config) return null;
    const now = this.now();
    const cached = this.statusCache;
    const unmoved = cached !== undefined && cached.version === this.statusVersion && now - cached.at >= 0;
    if (unmoved && now - cached.at < STATUS_CACHE_MS) return cached.status;
    const building = this.statusBuilding(config, now, pause);
    // Only the clock moved since (STATUS_CACHE_MS): with `stale`, the status built then answers at
    // once, and the build now in progress is the next asker's (10,000 proxies: 0.1 s of slices).
    if ((opts.stale && unmoved) || (opts.previous && cached !== undefined)) {
      building.catch(() => undefined);
      return cached.status;
    }
    return building;
  }

  /** The status of the answers now, built in slices; an asker while such a build is in progress shares it. */
  private statusBuilding(config: LbConfig, now: number, pause: () => Promise<void>): Promise<RuntimeStatus> {
    const inFlight = this.statusBuild;
    if (inFlight && inFlight.version === this.statusVersion && inFlight.config === config) return inFlight.promise;
    const version = this.statusVersion;
    const promise = (async (): Promise<RuntimeStatus> => {
      const { snap, built } = await this.builtYielding(config, pause);
      const status = await runtimeStatusYielding({ ...snap, dnsStates: this.dns.snapshot() }, built, now, pause);
      // Its statusKey() too (a string of every target's state): the publish after a run asks for it.
      const key = await runSliced(statusKeyInSlices(status), pause);
      if (this.statusVersion === version && this.config === config) {
        this.statusCache = { version, at: now, status };
        this.keyCache = { status, key };
      }
      return status;
    })().finally(() => {
      if (this.statusBuild?.promise === promise) this.statusBuild = undefined;
    });
    this.statusBuild = { version, config, promise };
    return promise;
  }

  /**
   * What of the runtime state is worth a new status-branch commit: statuses, not counters, times
   * or least-connections weights (they move every interval).
   */
  statusKey(): string {
    const s = this.status();
    if (!s) return '';
    if (this.keyCache?.status !== s) this.keyCache = { status: s, key: runWhole(statusKeyInSlices(s)) };
    return this.keyCache.key;
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  start(): void {
    if (this.running) return;
    this.running = true;
    this.health.start();
    this.dns.start();
    this.armSampler();
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const t of [this.recomputeTimer, this.statusTimer]) if (t) clearTimeout(t);
    if (this.sampleTimer) clearInterval(this.sampleTimer);
    this.recomputeTimer = this.statusTimer = this.sampleTimer = undefined;
    await Promise.all([this.health.stop(), this.dns.stop(), this.drains?.stop()]);
  }

  // ---- operator commands (the control socket) ------------------------------------------------

  /** `lb drain PROXY TARGET [--timeout]`: weight 0 in every group of the proxy; done at 0 active flows or the timeout. */
  drain(proxy: string, targetId: string, options: { timeoutMs?: number } = {}): DrainState {
    const state = this.requireDrains().drain(proxy, targetId, options);
    void this.drains!.poll(); // count at once: a target without flows is drained right away
    return state;
  }

  /** `lb undrain PROXY TARGET`: the drain removed, or undefined when the target was not drained. */
  undrain(proxy: string, targetId: string): DrainState | undefined {
    return this.requireDrains().undrain(proxy, targetId);
  }

  drainState(proxy: string, targetId: string): DrainState | undefined {
    return this.drains?.get(proxy, targetId);
  }

  /** Resolves when the drain has ended (drained, timed-out, undrained or removed). */
  whenDrained(proxy: string, targetId: string): Promise<DrainState | undefined> {
    return this.requireDrains().whenDone(proxy, targetId);
  }

  /**
   * `lb breaker open|close|reset BACKEND`: force the circuit of a backend ("addr:port"), or of
   * every backend of a target ("host:port" of a DNS target) open or closed, or back to automatic.
   */
  breaker(action: BreakerAction, name: string): BreakerResult {
    const config = this.requireConfig();
    const breakers = this.breakers!;
    const backends = this.backendsNamed(config, name);
    const now = this.now();
    const transitions = backends.flatMap((b) =>
      action === 'open' ? breakers.forceOpen(b, now) : action === 'close' ? breakers.forceClose(b, now) : breakers.reset(b, now));
    for (const t of transitions) this.logTransition(t);
    this.changed(`breaker ${action} ${name}`);
    return { backends: backends.map((backend) => ({ backend, state: breakers.state(backend) })), transitions };
  }

  /** The gauges' input for /metrics (collectRuntimeMetrics); null before the first config. */
  metricsInput(): RuntimeMetricsInput | null {
    if (!this.config) return null;
    if (this.now() - this.activeFlowsAt > ACTIVE_FLOWS_MAX_AGE_MS) this.refreshActiveFlows();
    return {
      config: this.config, health: this.health.snapshot(), circuits: this.breakers?.snapshot() ?? new Map(),
      activeFlows: this.activeFlowCounts, dns: this.dns.snapshot(), now: this.now(),
    };
  }

  /** One sample of the data plane now (the timer's work; tests call it directly). */
  sampleNow(): void {
    const config = this.config;
    const breakers = this.breakers;
    if (!config || !breakers) return;
    const now = this.now();
    const lc = config.settings.loadBalancing.algorithm === 'least-connections';
    const targetIds = this.host?.targetIds();
    let sample = null;
    try {
      sample = targetIds ? (this.sampler?.sample({ targetIds, flows: lc || breakers.enabled, timeouts: timeoutsOf(config) }) ?? null) : null;
      this.sampleError = undefined;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== this.sampleError) this.log.warn({ component: 'runtime', ...errFields(err) }, 'cannot sample the data plane; the breaker and least-connections see no traffic');
      this.sampleError = message;
    }
    if (sample?.active) {
      this.activeFlowCounts = sample.active;
      this.statusVersion++;
      this.activeFlowsAt = now;
    }
    let transitions: BackendTransition[] = [];
    if (breakers.enabled) {
      transitions = breakers.observeAll(this.deltas.samples(configBackends(config, (h) => this.dns.resolve(h)), sample), now);
      this.statusVersion++; // the error rates moved, transition or not
    } else this.deltas.remember(sample);
    for (const t of transitions) this.logTransition(t);
    if (transitions.length > 0) this.changed(transitions.map((t) => `circuit ${t.backend} ${t.from} -> ${t.to}`).join(', '));
    else if (lc && sample?.active) this.changed('least-connections', { status: false });
  }

  // ---- internals -----------------------------------------------------------------------------

  private builtInputs(config: LbConfig): BuiltCache {
    const cached = this.builtCache;
    if (cached && cached.version === this.statusVersion && cached.snap.config === config) return cached;
    const snap = this.weightSnapshot(config);
    const fresh: BuiltCache = { version: this.statusVersion, snap, built: buildRuntimeInputs(snap) };
    this.builtCache = fresh;
    return fresh;
  }

  /**
   * The effective weights and their fingerprint of the answers now, built with `pause` between
   * slices; an asker while a build of the same answers is in progress waits for that build.
   */
  private builtYielding(config: LbConfig, pause: () => Promise<void>): Promise<BuiltCache> {
    const cached = this.builtCache;
    if (cached && cached.version === this.statusVersion && cached.snap.config === config) return Promise.resolve(cached);
    const inFlight = this.inputsBuild;
    if (inFlight && inFlight.version === this.statusVersion && inFlight.config === config) return inFlight.promise;
    const version = this.statusVersion;
    const promise = (async (): Promise<BuiltCache> => {
      const snap = this.weightSnapshot(config);
      const built = await buildRuntimeInputsYielding(snap, pause);
      const fresh: BuiltCache = { version, snap, built, fingerprint: await runSliced(fingerprintInSlices(config, built), pause) };
      // Answers that moved meanwhile (a check, a sample) are the next build's.
      if (this.statusVersion === version && this.config === config) this.builtCache = fresh;
      return fresh;
    })().finally(() => {
      if (this.inputsBuild?.promise === promise) this.inputsBuild = undefined;
    });
    this.inputsBuild = { version, config, promise };
    return promise;
  }

  /** The build's fingerprint, computed once per build. */
  private fingerprinted(b: BuiltCache): string {
    return (b.fingerprint ??= fingerprintOf(b.snap.config, b.built));
  }

  /** What snapshot() hands the reconciler: the inputs, and the fingerprint remembered as handed. */
  private hand(b: BuiltCache): { inputs: RuntimeInputs; fingerprint: string } {
    this.handed = this.fingerprinted(b);
    return { inputs: { effectiveWeight: b.built.effectiveWeight, resolve: b.built.resolve }, fingerprint: this.handed };
  }

  private weightSnapshot(config: LbConfig): WeightSnapshot {
    return {
      config,
      health: this.health.snapshot(),
      drains: this.drains?.snapshot() ?? new Map(),
      circuits: this.breakers?.snapshot() ?? new Map(),
      activeFlows: this.activeFlowCounts,
      dns: this.dns.answers(),
    };
  }

  /** Something that may move the answers happened: recompute soon, and tell the status. */
  private changed(reason: string, opts: { status?: boolean } = {}): void {
    this.statusVersion++;
    if (this.reasons.length < 8 && !this.reasons.includes(reason)) this.reasons.push(reason);
    this.recomputeTimer ??= setTimeout(() => {
      this.recomputeTimer = undefined;
      this.recompute();
    }, RECOMPUTE_SETTLE_MS);
    if (opts.status !== false) {
      this.statusTimer ??= setTimeout(() => {
        this.statusTimer = undefined;
        this.host?.statusChanged?.();
      }, STATUS_SETTLE_MS);
    }
  }

  private recompute(): void {
    const reasons = this.reasons;
    this.reasons = [];
    if (!this.config) return;
    const fingerprint = this.fingerprint();
    if (fingerprint === this.handed || fingerprint === this.requested) return;
    this.requested = fingerprint;
    this.host?.trigger(`runtime: ${reasons.join('; ') || 'changed'}`);
  }

  private armSampler(): void {
    if (!this.running || !this.config) return;
    const interval = this.config.settings.loadBalancing.updateIntervalMs;
    if (this.sampleTimer && interval === this.sampleIntervalMs) return;
    if (this.sampleTimer) clearInterval(this.sampleTimer);
    this.sampleIntervalMs = interval;
    this.sampleTimer = setInterval(() => this.sampleNow(), interval);
    this.sampleTimer.unref();
  }

  private refreshActiveFlows(): void {
    if (!this.config) return;
    try {
      const counts = this.sampler?.activeFlows(timeoutsOf(this.config));
      if (counts) this.activeFlowCounts = counts;
      this.statusVersion++;
      this.activeFlowsAt = this.now();
    } catch (err) {
      this.log.debug({ component: 'runtime', ...errFields(err) }, 'cannot count active flows');
    }
  }

  /**
   * Called when a drain times out with the target's backends ("addr:port"): the daemon ends the
   * flows still on them (connection events, reason drain).
   */
  onDrainTimedOut(listener: (proxy: string, targetId: string, backends: string[]) => void): void {
    this.drainTimeoutListeners.push(listener);
  }

  private drainTimedOut(state: DrainState): void {
    const config = this.config;
    if (!config) return;
    const backends = [...new Set(findTargets(config, state.proxy, state.targetId).flatMap((t) => targetBackends(t, (h) => this.dns.resolve(h))))];
    for (const l of this.drainTimeoutListeners) {
      try {
        l(state.proxy, state.targetId, backends);
      } catch (err) {
        this.log.warn({ component: 'runtime', proxy: state.proxy, target: state.targetId, ...errFields(err) }, 'ending the flows of a timed-out drain failed');
      }
    }
  }

  /** Active flows of a target's backends now (a drain's progress); undefined when unknown. */
  private countTargetFlows(proxy: string, targetId: string): number | undefined {
    const config = this.config;
    if (!config || !this.sampler) return undefined;
    const counts = this.sampler.activeFlows(timeoutsOf(config));
    if (!counts) return undefined;
    this.activeFlowCounts = counts;
    this.activeFlowsAt = this.now();
    this.statusVersion++;
    const backends = new Set(findTargets(config, proxy, targetId).flatMap((t) => targetBackends(t, (h) => this.dns.resolve(h))));
    let sum = 0;
    for (const b of backends) sum += counts.get(b) ?? 0;
    return sum;
  }

  private backendsNamed(config: LbConfig, name: string): string[] {
    const all = configBackends(config, (h) => this.dns.resolve(h));
    if (all.includes(name)) return [name];
    const byTarget = new Set<string>();
    for (const { group } of configGroups(config)) {
      for (const t of group.targets) if (t.id === name) for (const b of targetBackends(t, (h) => this.dns.resolve(h))) byTarget.add(b);
    }
    if (byTarget.size > 0) return [...byTarget].sort();
    throw new LbError('LB_RUNTIME_UNKNOWN_TARGET', `no backend or target "${name}" in the active config; backends: ${all.join(', ') || '(none)'}`, { target: name });
  }

  private logTransition(t: BackendTransition): void {
    const level = t.to === 'open' ? 'warn' : 'info';
    this.log[level]({ component: 'runtime', backend: t.backend, from: t.from, to: t.to, reason: t.reason }, `circuit ${t.backend}: ${t.from} -> ${t.to} (${t.reason})`);
  }

  private requireConfig(): LbConfig {
    if (!this.config) throw new LbError('LB_DAEMON_CONTROL', 'the daemon has no valid config yet (see `lb status`)');
    return this.config;
  }

  private requireDrains(): DrainManager {
    this.requireConfig();
    return this.drains!;
  }

  private saveDrains(): void {
    if (this.drainFile === null || !this.drains) return;
    try {
      ensureDir(join(this.drainFile, '..'));
      writeFileAtomic(this.drainFile, `${JSON.stringify({ drains: this.drains.list() }, null, 2)}\n`);
    } catch (err) {
      this.log.error({ component: 'runtime', ...errFields(err) }, `cannot save the drains to ${this.drainFile}; a daemon restart would forget them`);
    }
  }

  private restoreDrains(): void {
    if (this.drainFile === null || !this.drains || !existsSync(this.drainFile)) return;
    try {
      const saved = (JSON.parse(readFileSync(this.drainFile, 'utf8')) as { drains?: DrainState[] }).drains ?? [];
      this.drains.restore(saved);
      const kept = this.drains.list();
      if (kept.length > 0) {
        this.log.info({ component: 'runtime', drains: kept.map((d) => ({ proxy: d.proxy, target: d.targetId, status: d.status })) },
          `restored ${kept.length} drain(s) saved by the previous daemon`);
      }
    } catch (err) {
      this.log.warn({ component: 'runtime', ...errFields(err) }, `cannot read ${this.drainFile}; no drain restored`);
    }
  }
}

function timeoutsOf(config: LbConfig): FlowTimeouts {
  return { tcpIdleSec: config.settings.connectionTimeoutSec, tcpFinSec: TCP_FIN_TIMEOUT_SEC, udpIdleSec: config.settings.udpTimeoutSec };
}

/** Equal exactly when the inputs compile alike: every effective weight and every host's addresses. */
export function fingerprintOf(config: LbConfig, built: BuiltRuntimeInputs): string {
  return runWhole(fingerprintInSlices(config, built));
}

/** Targets between two step boundaries of a sliced status key. */
const TARGETS_PER_STEP = 500;

/** statusKey() of a status: every target's states, then the drains, circuits and DNS hosts. */
function* statusKeyInSlices(s: RuntimeStatus): Generator<void, string> {
  const parts: string[] = [];
  for (let i = 0; i < s.targets.length; i += TARGETS_PER_STEP) {
    parts.push(JSON.stringify(s.targets.slice(i, i + TARGETS_PER_STEP)
      .map((t) => [t.proxy, t.group, t.targetId, t.draining, t.failOpen, t.backends.map((b) => [b.backend, b.health, b.recoveryStep, b.circuit])])));
    yield;
  }
  parts.push(JSON.stringify([
    s.drains.map((d) => [d.proxy, d.targetId, d.status]),
    s.circuits.map((c) => [c.backend, c.status, c.mode]),
    s.dns.map((d) => [d.host, d.status, d.addresses]),
  ]));
  return parts.join('\n');
}

/** Weights hashed between two step boundaries of a sliced fingerprint. */
const WEIGHTS_PER_STEP = 1000;

function* fingerprintInSlices(config: LbConfig, built: BuiltRuntimeInputs): Generator<void, string> {
  const h = createHash('sha256');
  // One update per step (the same bytes as one per weight: the digest is of the concatenation).
  let text = '';
  let n = 0;
  for (const [key, w] of built.weights) {
    text += `${key}\u0001${w.weight}\n`;
    if (++n % WEIGHTS_PER_STEP === 0) {
      h.update(text);
      text = '';
      yield;
    }
  }
  for (const { host } of dnsHosts(config)) text += `dns\u0001${host}\u0001${(built.resolve(host) ?? []).join(',')}\n`;
  h.update(text);
  return h.digest('hex').slice(0, 32);
}

/** What configure() derives from a config by walking every target. */
interface ConfigWalk {
  hosts: DnsHostSpec[];
  specs: HealthCheckSpec[];
  backends: string[];
}

/** One build of the effective weights, for one version of the answers; its fingerprint once asked for. */
interface BuiltCache {
  version: number;
  snap: WeightSnapshot;
  built: BuiltRuntimeInputs;
  fingerprint?: string;
}
