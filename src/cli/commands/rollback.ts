// `lb rollback`: return to the configuration before the last apply. The inactive generation of the
// maps still holds it (an apply writes the other one and flips), so a rollback is an apply of that
// generation through the same transaction: journal, attach the interfaces it used, one flip,
// read-back. One step back only; older revisions are `lb apply` of their config (or, under
// `lb daemon`, a `git revert`: the daemon would heal a hand rollback as drift, so it is refused
// while a daemon answers for the instance).

import { recoverInstance, runTransaction, withInstanceLock } from '../../apply/index.js';
import { decodeGeneration } from '../../core/compile/decode.js';
import { controlRequest, controlSocketPath } from '../../daemon/control-socket.js';
import { DataPlane, interfaceName, readCtl, readGeneration } from '../../dataplane/index.js';
import { LbError } from '../../core/errors.js';
import { diffStates, hasChanges } from '../../core/plan/plan.js';
import { renderText } from '../../core/plan/render-text.js';
import { instanceExists, readLive } from '../../state/live.js';
import { readPreviousInventory } from '../../state/inventory.js';
import { runDir } from '../../state/run-dir.js';
import { printBlock, reportRecovery, stdio, type CliIo } from '../output.js';

export interface RollbackOptions {
  instance: string;
  autoApprove: boolean;
}

async function daemonAnswers(instance: string): Promise<boolean> {
  try {
    await controlRequest(controlSocketPath(instance), 'status', {}, { timeoutMs: 2000 });
    return true;
  } catch {
    return false;
  }
}

export async function runRollback(options: RollbackOptions, io: CliIo = stdio()): Promise<number> {
  const { instance } = options;
  if (await daemonAnswers(instance)) {
    throw new LbError('LB_APPLY_ROLLBACK_REFUSED',
      `lb daemon runs for instance ${instance} and would heal a rollback as drift: revert the commit in Git instead (git revert), or stop the daemon first`,
      { instance });
  }
  if (!instanceExists(instance)) {
    throw new LbError('LB_STATE_MISSING', `instance ${instance} has no pinned state: nothing to roll back`, { instance });
  }
  return withInstanceLock(instance, async () => {
    reportRecovery(io, recoverInstance(instance));
    const warn = (m: string): void => io.err(`lb: warning: ${m}`);
    const live = readLive(instance, { warn });
    const previous = readPreviousInventory(runDir(instance), warn);
    const dp = DataPlane.open({ instance });
    let generation;
    let state;
    try {
      const gen = 1 - readCtl(dp).activeGen;
      generation = readGeneration(dp, gen);
      const proxies = new Map(Object.entries(previous?.listeners ?? {}));
      const interfaces = previous?.interfaces ?? live.interfaces;
      state = decodeGeneration(generation, {
        ifname: (index) => interfaceName(index),
        proxyOf: (key) => proxies.get(key) ?? null,
        interfaces,
      });
    } finally {
      dp.close();
    }
    if (state.listeners.length === 0) {
      throw new LbError('LB_APPLY_ROLLBACK_REFUSED', `instance ${instance} holds no previous configuration (the inactive generation is empty): nothing to roll back to`, { instance });
    }
    const plan = diffStates(state, live.state);
    printBlock(io, renderText(plan, { color: io.color }));
    if (!hasChanges(plan)) return 0;
    if (!options.autoApprove) {
      io.out('');
      io.out('Nothing changed. Run `lb rollback --auto-approve` to perform these actions.');
      return 0;
    }
    const result = runTransaction({
      instance,
      generation,
      interfaces: state.interfaces,
      desired: state,
      targetIds: new Map(Object.entries(previous?.targetIds ?? {})),
      revision: previous?.revision ?? null,
      configDigest: previous?.configDigest ?? null,
    });
    for (const w of result.warnings) io.err(`lb: warning: ${w}`);
    io.out('');
    io.out(`Rollback complete! ${previous?.revision ? `Revision ${previous.revision} is live again.` : 'The previous configuration is live again.'} ` +
      `Resources: ${plan.summary.add} added, ${plan.summary.change} changed, ${plan.summary.destroy} destroyed.`);
    return 0;
  });
}
