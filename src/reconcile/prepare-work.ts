// The prepare worker's work (prepare-protocol.ts has the conversation): read, parse and check the
// config; compile it with the runtime's answers; encode it with the host's facts and diff it
// against the live state. Only the config files are read here: every other fact of the host
// comes from the daemon's thread. Kept apart from the worker's entry (prepare-worker-main.ts) so
// tests run it in-process.

import { checkConfigAt, compileChecked, hostQuestionsOf, planWithFacts, type CheckedConfig, type HostFacts, type HostQuestions } from '../apply/prepare.js';
import type { CompileResult } from '../core/compile/compile.js';
import { inputsFromTable, type InputTable, type WorkerPlan, type WorkerRequest } from './prepare-protocol.js';
import { planLines } from './status.js';
import { deserializeSliced, serializeSliced } from './transfer.js';

export class PrepareWork {
  private checked: CheckedConfig | undefined;
  private compiled: CompileResult | undefined;

  /** Answers one request: serialized slices, or a small plain value (the host questions). */
  async handle(req: WorkerRequest): Promise<ArrayBuffer[]> {
    switch (req.type) {
      case 'check': {
        this.compiled = undefined;
        this.checked = await checkConfigAt(req.configPath);
        return [...serializeSliced(this.checked)];
      }
      case 'compile': {
        if (req.checked) this.checked = await deserializeSliced<CheckedConfig>(req.checked);
        const checked = this.checked;
        if (!checked) throw new Error('prepare worker: compile before any config was checked');
        const table = await deserializeSliced<InputTable>(req.inputs);
        this.compiled = compileChecked(checked, inputsFromTable(checked.config, table));
        return [...serializeSliced(hostQuestionsOf(this.compiled.state) satisfies HostQuestions)];
      }
      case 'finish': {
        const compiled = this.compiled;
        if (!compiled) throw new Error('prepare worker: finish before compile');
        this.compiled = undefined;
        this.checked = undefined;
        const facts = await deserializeSliced<HostFacts>(req.facts);
        const planned = planWithFacts(compiled, facts);
        const out: WorkerPlan = {
          desired: planned.desired, encoded: planned.encoded, ifindexes: planned.ifindexes,
          compileDiagnostics: planned.compileDiagnostics, summary: planned.plan.summary, changes: planLines(planned.plan),
        };
        return [...serializeSliced(out)];
      }
    }
  }
}
