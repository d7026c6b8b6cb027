// A runtime command sent to the running daemon of an instance (`lb drain`, `lb undrain`,
// `lb breaker`). These act on state the daemon keeps and applies (a drain, a forced circuit);
// without a daemon nothing would keep them, so no daemon is an error, said plainly.

import { controlRequest, controlSocketPath } from '../daemon/control-socket.js';
import { ERROR_CODES, isLbError, LbError, type ErrorCode } from '../core/errors.js';

export async function daemonRequest(instance: string, command: string, args: Record<string, unknown>, opts: { timeoutMs?: number; why: string }): Promise<unknown> {
  const path = controlSocketPath(instance);
  try {
    return await controlRequest(path, command, args, { timeoutMs: opts.timeoutMs ?? 30_000 });
  } catch (err) {
    if (isLbError(err, 'LB_DAEMON_CONTROL') && err.data['reason'] === 'unreachable') {
      throw new LbError('LB_DAEMON_CONTROL',
        `no lb daemon runs for instance ${instance} (nothing answers on ${path}): ${opts.why}; start it with \`lb daemon\``,
        { instance, path, reason: 'unreachable' }, { cause: err });
    }
    const code = isLbError(err, 'LB_DAEMON_CONTROL') && err.data['reason'] === 'error' ? err.data['code'] : undefined;
    if (typeof code === 'string' && code in ERROR_CODES) {
      // The daemon's own error (an unknown target, a disabled breaker): its message, its code.
      throw new LbError(code as ErrorCode, (err as LbError).message.replace(/^the daemon refused [\w-]+: /, ''), { instance, command }, { cause: err });
    }
    throw err;
  }
}
