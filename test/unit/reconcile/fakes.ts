// Fakes for the reconcile loop's tests: revisions on disk, a source, and a kernel engine over an
// in-memory live state. FakeEngine plans with the real planCheckedConfig against a fake host, so
// the config is compiled, encoded and diffed the way the kernel engine does it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApplyRequest, ApplyResult } from '../../../src/apply/index.js';
import type { CheckedConfig, PlanHost } from '../../../src/apply/prepare.js';
import { EMPTY_SETTINGS, encodeGeneration, type GenerationConfig } from '../../../src/dataplane/index.js';
import { kernelEngine, type PlannedRevision, type PrepareRequest, type ReconcileEngine } from '../../../src/reconcile/index.js';
import { inProcessApplyAndRead, inProcessReadDrift, type AppliedRead, type DriftRead } from '../../../src/reconcile/applied-read.js';
import type { Source, SourceRevision } from '../../../src/source/types.js';
import type { LiveState } from '../../../src/state/live.js';
import { EMPTY_STATE, type LogicalState } from '../../../src/core/state.js';
import { LbError } from '../../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lb-reconcile-unit-'));
/** Removes every revision directory made so far (call in afterAll). */
export function removeRevisions(): void {
  rmSync(dir, { recursive: true, force: true });
}

export const config = (weights: number[]): string => `proxies:
  - name: web
    listen: {interfaces: [lo], port: 80, address: 10.0.0.10}
    default-target:
${weights.map((w, i) => `      - {ip: 10.0.1.${i + 1}, port: 8080, weight: ${w}}`).join('\n')}
`;

let revCount = 0;
/** A revision directory holding lb.yaml with `text`; its revision id is a fake 40-hex sha. */
export function revision(text: string): SourceRevision {
  revCount += 1;
  const sha = revCount.toString(16).padStart(40, 'a');
  const root = join(dir, sha);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'lb.yaml'), text);
  return { revision: sha, ref: 'refs/heads/main', configPath: join(root, 'lb.yaml'), rootDir: root, message: '', author: '', committedAt: new Date().toISOString() };
}

export class FakeSource implements Source {
  readonly kind = 'git' as const;
  readonly description = 'fake';
  current: SourceRevision | undefined;
  failNext: unknown[] = [];
  fetches = 0;
  gate: Promise<void> | undefined;
  async fetch(): Promise<SourceRevision> {
    this.fetches += 1;
    if (this.gate) await this.gate;
    const fail = this.failNext.shift();
    if (fail !== undefined) throw fail;
    if (!this.current) throw new Error('no revision');
    return this.current;
  }
}

export function liveOf(gen: GenerationConfig | null, interfaces: string[], state: LogicalState, serial: number): LiveState {
  const generation = gen ?? { settings: EMPTY_SETTINGS, listeners: [], groups: [], srcRoutes: [] };
  return {
    instance: 'unit', exists: gen !== null, ctl: { activeGen: 0, serial }, raw: encodeGeneration(0, generation), generation,
    attachments: interfaces.map((ifname) => ({ ifname, ifindex: 1, path: 'xdp' as const, xdp: 'native' as const, tcIngress: false, tc: true, stale: false })),
    interfaces: [...interfaces].sort(), inventory: null, state, targetIds: new Map(), digest: String(serial),
  };
}

export class FakeEngine implements ReconcileEngine {
  live: LiveState = liveOf(null, [], structuredClone(EMPTY_STATE), 0);
  applies: ApplyRequest[] = [];
  prepares = 0;
  locked = false;
  applyError: unknown;
  /** When true, apply() reports success but writes nothing (the verify step must catch it). */
  lieOnApply = false;

  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    if (this.locked) throw new LbError('LB_APPLY_LOCKED', 'instance unit is locked by another lb process', { instance: 'unit' });
    return fn();
  }
  recover(): null { return null; }
  /** The host the plan is made for: this live state, every interface at ifindex 1 on the XDP path. */
  readonly host: PlanHost = {
    readLive: () => this.live,
    ifindex: () => 1,
    choosePaths: (interfaces, requested = {}) => Object.fromEntries(interfaces.map((n) => [n, { ...requested[n], path: 'xdp' as const, reason: 'the fake host' }])),
  };
  /** The kernel engine's own check (in-process). */
  check(configPath: string): Promise<CheckedConfig> {
    return kernelEngine('unit', { host: this.host }).check(configPath);
  }
  /** The kernel engine's own prepare, on the fake host. */
  prepare(req: PrepareRequest): Promise<PlannedRevision> {
    this.prepares += 1;
    return kernelEngine('unit', { host: this.host }).prepare(req);
  }
  apply(req: ApplyRequest): ApplyResult {
    if (this.applyError) throw this.applyError;
    this.applies.push(req);
    const before = JSON.stringify([this.live.raw, this.live.interfaces]);
    if (!this.lieOnApply) this.live = liveOf(req.generation, [...req.interfaces], req.desired!, this.live.ctl.serial + 1);
    const changed = before !== JSON.stringify([this.live.raw, this.live.interfaces]);
    return { instance: 'unit', changed, activeGen: 0, serial: this.live.ctl.serial, ops: 0, attached: [], detached: [], warnings: [] };
  }
  reencode(req: ApplyRequest): ApplyRequest { return req; }
  readLive(): LiveState { return this.live; }
  /** The kernel engine's in-process apply and read-back, over this fake's apply and live state. */
  async applyAndRead(req: ApplyRequest, desired: LogicalState, opts: { reencode: boolean }): Promise<AppliedRead> {
    return inProcessApplyAndRead(this, req, desired, opts.reencode);
  }
  async readDrift(req: ApplyRequest, desired: LogicalState): Promise<DriftRead> {
    return inProcessReadDrift(this, req, desired);
  }
}

