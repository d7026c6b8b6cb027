// `lb breaker open|close|reset BACKEND`, through the daemon's control socket. open and close force
// the circuit of a backend (addr:port; a DNS target host:port means each of its addresses) and hold
// it there; reset returns it to automatic (CLOSED, window cleared). A forced-closed circuit still
// measures, so `lb status` shows its error rate.

import type { BreakerAction, BreakerResult } from '../../runtime/service.js';
import { daemonRequest } from '../daemon-request.js';
import { stdio, type CliIo } from '../output.js';

export { BREAKER_ACTIONS } from '../command-choices.js';

export interface BreakerOptions {
  instance: string;
  action: BreakerAction;
  backend: string;
}

export async function runBreaker(options: BreakerOptions, io: CliIo = stdio()): Promise<number> {
  const r = (await daemonRequest(options.instance, 'breaker', { action: options.action, backend: options.backend },
    { why: 'a forced circuit is kept and applied by the daemon' })) as BreakerResult & { applied: boolean };
  if (!r.applied) io.err(`lb: warning: the new weights are not applied yet (a reconcile is pending or failing; see \`lb status\`)`);
  for (const b of r.backends) {
    const status = b.state?.status ?? 'closed';
    const mode = b.state?.mode ?? 'auto';
    const how = mode === 'forced-open' ? `forced open: no new flows until \`lb breaker reset ${b.backend}\``
      : mode === 'forced-closed' ? `forced closed: it takes traffic whatever its error rate until \`lb breaker reset ${b.backend}\``
        : 'automatic again';
    io.out(`Circuit ${b.backend}: ${status} (${how}).`);
  }
  return 0;
}
