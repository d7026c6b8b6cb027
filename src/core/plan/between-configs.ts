// The plan of one config against another (`lb plan --repo --base --head`): both compiled the way
// the daemon compiles them, and the head's state diffed against the base's. Pure: no kernel, no
// host, no clock.
//
// What only a node knows is not guessed. DNS answers: a host target is compiled with no answer on
// both sides (it contributes no backend to either), and is listed apart as a runtime input, with
// whether the head adds, removes or re-weights it. The interface data path stays what the config
// requests ('auto' is chosen on each host). Health, drains and breakers are not inputs here: the
// plan shows configured weights.

import { compileConfig } from '../compile/compile.js';
import { isError, type Diagnostic } from '../config/diagnostics.js';
import type { LbConfig, Target } from '../config/types.js';
import { EMPTY_STATE } from '../state.js';
import { diffStates, type Plan } from './plan.js';

/** A DNS target: its backends are the addresses its host resolves to on each node, at run time. */
export interface DnsInput {
  proxy: string;
  /** 'default' (the default target) or a source route's prefix. */
  group: string;
  /** "host:port" as the config (and `lb drain`) names it. */
  target: string;
  /** What the head does to it: add, remove, update (weight), or none (unchanged). */
  change: 'add' | 'remove' | 'update' | 'none';
  /** Configured weight at the base (null when added) and at the head (null when removed). */
  weightBefore: number | null;
  weightAfter: number | null;
}

export interface ConfigsPlan {
  plan: Plan;
  /** The head's config and compile warnings, less the dns-unresolved ones (they are `dnsInputs`). */
  diagnostics: Diagnostic[];
  /** Errors compiling the head (the plan is then empty and must not be shown as the outcome). */
  errors: Diagnostic[];
  dnsInputs: DnsInput[];
}

/**
 * Plans `head` against `base` (null: nothing configured). `headWarnings` are the head's config
 * warnings (from the check), shown with the compile warnings.
 */
export function planBetweenConfigs(base: LbConfig | null, head: LbConfig, headWarnings: readonly Diagnostic[] = []): ConfigsPlan {
  const after = compileConfig(head);
  const before = base === null ? { state: EMPTY_STATE, diagnostics: [] } : compileConfig(base);
  const errors = after.diagnostics.filter(isError);
  const diagnostics = [...headWarnings, ...after.diagnostics.filter((d) => !isError(d) && d.code !== 'dns-unresolved')];
  const plan = errors.length > 0 ? { changes: [], summary: { add: 0, change: 0, destroy: 0 } } : diffStates(after.state, before.state);
  return { plan, diagnostics, errors, dnsInputs: dnsInputsBetween(base, head) };
}

/** Whether the head changes anything: a planned change, or a DNS target added, removed or re-weighted. */
export function changesAnything(p: Pick<ConfigsPlan, 'plan' | 'dnsInputs'>): boolean {
  return p.plan.changes.length > 0 || p.dnsInputs.some((d) => d.change !== 'none');
}

/** Every DNS target of either config, keyed by proxy, group and host:port, sorted. */
export function dnsInputsBetween(base: LbConfig | null, head: LbConfig): DnsInput[] {
  const before = dnsTargetsOf(base);
  const after = dnsTargetsOf(head);
  const keys = [...new Set([...before.keys(), ...after.keys()])].sort();
  return keys.map((key) => {
    const b = before.get(key);
    const a = after.get(key);
    const any = (a ?? b)!;
    const change = !b ? 'add' : !a ? 'remove' : a.weight !== b.weight ? 'update' : 'none';
    return { proxy: any.proxy, group: any.group, target: any.target, change, weightBefore: b?.weight ?? null, weightAfter: a?.weight ?? null };
  });
}

interface DnsTarget {
  proxy: string;
  group: string;
  target: string;
  weight: number;
}

function dnsTargetsOf(config: LbConfig | null): Map<string, DnsTarget> {
  const out = new Map<string, DnsTarget>();
  if (config === null) return out;
  const add = (proxy: string, group: string, targets: readonly Target[]): void => {
    for (const t of targets) {
      if (t.kind !== 'host') continue;
      out.set(`${proxy}\0${group}\0${t.id}`, { proxy, group, target: t.id, weight: t.weight });
    }
  };
  for (const p of config.proxies) {
    add(p.name, 'default', p.defaultTarget.targets);
    for (const r of p.sourceRoutes) add(p.name, r.prefix, r.targets.targets);
  }
  return out;
}
