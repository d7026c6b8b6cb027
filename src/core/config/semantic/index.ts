// The semantic checks: what the schema cannot say. Run on the merged config after every file
// passed the schema; each check reports at merged pointers, mapped back to file positions.

import type { Diagnostic } from '../diagnostics.js';
import type { MergedConfig } from '../merge.js';
import { createContext } from './context.js';
import { checkHealthChecks } from './health.js';
import { checkListeners } from './listeners.js';
import { checkProxies } from './proxies.js';
import { checkRoutes } from './routes.js';
import { checkSettings } from './settings.js';
import { checkTargets } from './targets.js';

export function checkSemantics(merged: MergedConfig): Diagnostic[] {
  const out: Diagnostic[] = [];
  const ctx = createContext(merged, out);
  checkProxies(ctx);
  checkListeners(ctx);
  checkRoutes(ctx);
  checkTargets(ctx);
  checkHealthChecks(ctx);
  checkSettings(ctx);
  return out;
}
