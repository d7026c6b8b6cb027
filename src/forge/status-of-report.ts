// Which commit status a node's report means: the config revision it concerns, and success
// (applied, or already live), failure (stalled, or failed and retrying) or pending (in progress).
// Pure. A file source (revision sha256:...) has no commit: no status.

import { findCondition } from '../report/conditions.js';
import type { StatusReport } from '../report/types.js';
import type { CommitStatus } from './forge-api.js';

const SHA_RE = /^[0-9a-f]{40}$/;

export function commitStatusOf(r: StatusReport, targetUrl?: string): CommitStatus | undefined {
  const short = (s: string): string => s.slice(0, 12);
  const link = targetUrl !== undefined ? { targetUrl } : {};
  const context = `lb/${r.node}`;
  const ready = findCondition(r.conditions, 'Ready');
  const reason = ready?.reason ? `${ready.reason}: ` : '';
  const firstError = r.errors[0] ? `${r.errors[0].file ? `${r.errors[0].file}${r.errors[0].line ? `:${r.errors[0].line}` : ''}: ` : ''}${r.errors[0].message}` : (ready?.message ?? '');
  switch (r.result) {
    case 'applied':
    case 'unchanged': {
      const sha = r.lastAppliedRevision;
      if (sha === null || !SHA_RE.test(sha)) return undefined;
      return { sha, state: 'success', context, description: `applied by ${r.node}${r.plan ? ` (+${r.plan.add} ~${r.plan.change} -${r.plan.destroy})` : ''}`, ...link };
    }
    case 'stalled':
    case 'failed': {
      const sha = r.lastAttemptedRevision;
      if (sha === null || !SHA_RE.test(sha)) return undefined;
      const live = r.lastAppliedRevision && r.lastAppliedRevision !== sha ? `; ${short(r.lastAppliedRevision)} stays live` : '';
      const what = r.result === 'stalled' ? 'stalled' : 'failed, retrying';
      return { sha, state: 'failure', context, description: `${what} on ${r.node}: ${reason}${firstError}${live}`, ...link };
    }
    case 'progressing': {
      const sha = r.lastAttemptedRevision ?? r.desiredRevision;
      if (sha === null || !SHA_RE.test(sha)) return undefined;
      return { sha, state: 'pending', context, description: `being applied by ${r.node}`, ...link };
    }
  }
}
