// The runtime's control-socket commands (`lb drain`, `lb undrain`, `lb breaker`, runtime status).
// Each command that changes effective weights answers once the change is live: it waits (bounded)
// until a reconcile applied the runtime's new answers, so `lb drain` returning means no new flow
// goes to the target any more. `applied: false` in the answer says the wait ran out (the change is
// still pending: a reconcile failing or stalled on a bad revision; see `lb status`).

import { LbError } from '../core/errors.js';
import type { Reconciler } from '../reconcile/reconciler.js';
import { yieldToEventLoop } from '../reconcile/transfer.js';
import { RECOMPUTE_SETTLE_MS, type BreakerAction, type RuntimeService } from '../runtime/service.js';
import { pageRuntime, statusSelection, STATUS_DEFAULT_LIMIT } from '../report/status-page.js';
import type { ControlServer } from './control-socket.js';

/** How long a command waits for its change to be applied. */
export const APPLY_WAIT_MS = 10_000;

const BREAKER_ACTIONS: readonly BreakerAction[] = ['open', 'close', 'reset'];

export function registerRuntimeCommands(control: ControlServer, runtime: RuntimeService, reconciler: Reconciler): void {
  control.register('drain', 'drain a target: no new flows, existing flows continue; args: {proxy, target, timeoutMs?, wait?: bool (until drained or timed out)}', async (args) => {
    const proxy = stringArg(args, 'proxy');
    const target = stringArg(args, 'target');
    const timeoutMs = optionalMs(args, 'timeoutMs');
    const started = runtime.drain(proxy, target, timeoutMs !== undefined ? { timeoutMs } : {});
    const applied = await whenApplied(runtime, reconciler);
    const drain = args['wait'] === true ? (await runtime.whenDrained(proxy, target)) ?? null : runtime.drainState(proxy, target) ?? started;
    return { drain, applied };
  });
  control.register('undrain', 'end the drain of a target (its weight comes back); args: {proxy, target}', async (args) => {
    const removed = runtime.undrain(stringArg(args, 'proxy'), stringArg(args, 'target'));
    return { undrained: removed ?? null, applied: await whenApplied(runtime, reconciler) };
  });
  control.register('breaker', 'force a circuit open or closed, or reset it to automatic; args: {action: open|close|reset, backend: addr:port (or a DNS target host:port)}', async (args) => {
    const action = stringArg(args, 'action');
    if (!BREAKER_ACTIONS.includes(action as BreakerAction)) throw new LbError('LB_DAEMON_CONTROL', `breaker action must be one of ${BREAKER_ACTIONS.join(', ')}, got ${JSON.stringify(action)}`);
    const result = runtime.breaker(action as BreakerAction, stringArg(args, 'backend'));
    return { ...result, applied: await whenApplied(runtime, reconciler) };
  });
  control.register('runtime-status', `health, drain, circuit and DNS state per target, with the effective weights, one page long; args: {proxy?, offset?, limit?: int (default ${STATUS_DEFAULT_LIMIT})}`, async (args) => {
    const selection = statusSelection(args);
    const status = await runtime.statusYielding(yieldToEventLoop, { stale: true });
    const paged = status ? pageRuntime(status, selection) : null;
    return {
      runtime: paged?.runtime ?? null,
      page: paged ? { ...selection, lists: paged.lists, runtime: paged.summary } : null,
      applied: reconciler.appliedState?.runtimeFingerprint === runtime.fingerprint(),
    };
  });
}

/** Resolves true once the last apply used the runtime's current answers; false after APPLY_WAIT_MS. */
async function whenApplied(runtime: RuntimeService, reconciler: Reconciler): Promise<boolean> {
  const deadline = Date.now() + APPLY_WAIT_MS;
  for (;;) {
    await new Promise((r) => setTimeout(r, RECOMPUTE_SETTLE_MS + 5));
    await reconciler.whenIdle();
    if (reconciler.appliedState?.runtimeFingerprint === runtime.fingerprint()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stringArg(args: Record<string, unknown>, name: string): string {
  const v = args[name];
  if (typeof v !== 'string' || v === '') throw new LbError('LB_DAEMON_CONTROL', `argument ${name} is required (a string)`, { argument: name });
  return v;
}

function optionalMs(args: Record<string, unknown>, name: string): number | undefined {
  const v = args[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new LbError('LB_DAEMON_CONTROL', `argument ${name} must be a duration in ms (>= 0)`, { argument: name });
  return v;
}
