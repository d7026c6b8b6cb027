// A plan as JSON, versioned like Terraform's (`format_version`): every change with its address,
// before and after values, the summary and the diagnostics. Consumers must check the major
// version; additions of fields bump the minor one.

import type { Diagnostic } from '../config/diagnostics.js';
import { hasChanges, type Change, type Plan, type PlanSummary, type ResourceAddress } from './plan.js';

export const PLAN_FORMAT_VERSION = '1.0';

export interface JsonOptions {
  diagnostics?: readonly Diagnostic[];
}

export interface JsonDiagnostic {
  severity: 'error' | 'warning';
  code: string | null;
  message: string;
  file: string;
  pointer: string;
  line: number | null;
  column: number | null;
}

/** A change as the document holds it: the address's keys in snake_case like every other key. */
export type JsonChange = Omit<Change, 'address'> & { address: Record<string, string | null> };

export interface PlanDocument {
  format_version: string;
  has_changes: boolean;
  summary: PlanSummary;
  changes: JsonChange[];
  diagnostics: JsonDiagnostic[];
}

export function planDocument(plan: Plan, options: JsonOptions = {}): PlanDocument {
  return {
    format_version: PLAN_FORMAT_VERSION,
    has_changes: hasChanges(plan),
    summary: { ...plan.summary },
    changes: plan.changes.map((c) => ({ ...c, address: jsonAddress(c.address), changed: [...c.changed] })),
    diagnostics: (options.diagnostics ?? []).map((d) => ({
      severity: d.severity,
      code: d.code ?? null,
      message: d.message,
      file: d.file,
      pointer: d.pointer,
      line: d.line ?? null,
      column: d.column ?? null,
    })),
  };
}

function jsonAddress(address: ResourceAddress): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const [key, value] of Object.entries(address)) {
    if (value !== undefined) out[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  }
  return out;
}

/** Pretty-printed (two spaces), ending in a newline. */
export function renderJson(plan: Plan, options: JsonOptions = {}): string {
  return `${JSON.stringify(planDocument(plan, options), null, 2)}\n`;
}
