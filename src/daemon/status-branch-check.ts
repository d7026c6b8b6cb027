// --status-branch must not be the branch the daemon follows: each status report is a commit on the
// status branch, so on the followed branch every report would be a new revision to reconcile, whose
// report is a new revision again (a loop). Refused at start, before anything runs.
//
// Only what the flags say can be checked here: with --ref HEAD (the default) the followed branch is
// the remote's default branch, known only after the first fetch.

const SHA_RE = /^[0-9a-f]{40}$/i;

/** The branch a followed ref names: "main" and "refs/heads/main" give "main"; HEAD, tags, other refs and commit ids give undefined. */
function followedBranch(ref: string): string | undefined {
  const r = ref.trim();
  if (r === 'HEAD' || SHA_RE.test(r)) return undefined;
  if (r.startsWith('refs/heads/')) return r.slice('refs/heads/'.length);
  if (r.startsWith('refs/')) return undefined;
  return r; // a short name: lb follows refs/tags/<r> if it exists, else refs/heads/<r>
}

/** The usage message when the status branch is the followed branch; undefined when they differ. */
export function statusBranchLoop(ref: string | undefined, statusBranch: string): string | undefined {
  const followed = followedBranch(ref ?? 'HEAD');
  const status = statusBranch.trim().replace(/^refs\/heads\//, '');
  if (followed === undefined || followed !== status) return undefined;
  return `--status-branch ${statusBranch} is the branch that --ref ${ref ?? ''} follows: every status report would be a new commit there, ` +
    'so a new revision to reconcile, whose report is another one (a loop). Report to another branch (the default is lb-status).';
}
