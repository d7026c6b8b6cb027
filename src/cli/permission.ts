// A permission failure is not an internal error: lb touches /run/lb, bpffs, the bpf() syscall and
// netlink, each of which a non-root user is refused. The CLI turns such a refusal (EACCES or
// EPERM, found anywhere in an error's cause chain) into one sentence that names what is missing.

import { isLbError, LbError, type ErrorCode } from '../core/errors.js';

const EPERM = 1;
const EACCES = 13;

/** What the CLI prints after the refused operation. */
export const PERMISSION_HINT = 'lb needs root, or CAP_BPF and CAP_NET_ADMIN (with write access to /run/lb and /sys/fs/bpf)';

/** The paths whose refusal means "not privileged enough" (a config file the user cannot read is LB_CONFIG_IO). */
const PRIVILEGED_PATHS = ['/run/lb', '/sys/fs/bpf', '/var/lib/lb'];

/**
 * Error areas whose EACCES/EPERM comes from lb's privileged operations. A refusal in a config or
 * git source (an unreadable file, a 403) has its own message and stays as it is.
 */
const PRIVILEGED_AREAS = new Set(['BPF', 'NET', 'STATE', 'DAEMON', 'APPLY']);

const MAX_CAUSES = 8;

function areaOf(code: ErrorCode): string {
  return code.split('_')[1] ?? '';
}

/** The refused operation, when `err` (or one of its causes) is a permission refusal of a privileged operation; else null. */
export function permissionRefusal(err: unknown): string | null {
  let e: unknown = err;
  for (let depth = 0; depth < MAX_CAUSES && e instanceof Error; depth++) {
    if (isLbError(e)) {
      const errno = e.data.errno;
      if ((errno === EPERM || errno === EACCES) && PRIVILEGED_AREAS.has(areaOf(e.code))) return firstLine(e.message);
      if (!PRIVILEGED_AREAS.has(areaOf(e.code))) return null;
    } else {
      const x = e as NodeJS.ErrnoException;
      if ((x.code === 'EACCES' || x.code === 'EPERM') && (x.path === undefined || isPrivilegedPath(x.path))) {
        return `${x.syscall ?? 'access'} ${x.path ?? ''}`.trim();
      }
    }
    e = e.cause;
  }
  return null;
}

function isPrivilegedPath(path: string): boolean {
  return PRIVILEGED_PATHS.some((p) => path === p || path.startsWith(`${p}/`));
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

/** The LbError the CLI reports for a refusal (`what` from permissionRefusal). */
export function permissionError(what: string, cause: unknown): LbError {
  return new LbError('LB_PERMISSION_DENIED', `permission denied: ${what}. ${PERMISSION_HINT}`, { refused: what }, { cause });
}
