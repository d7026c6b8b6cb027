// The commit-status endpoints of the three forges, as their documentation gives them, and where
// each lives for a repository URL. Pure: a request is data (method, URL, headers, JSON body).
//
//   GitHub  POST {api}/repos/{owner}/{repo}/statuses/{sha}   Authorization: Bearer T
//           {state: success|failure|pending|error, target_url, description (<= 140), context}
//   Gitea   POST {api}/repos/{owner}/{repo}/statuses/{sha}   Authorization: token T   ({api} = .../api/v1)
//           {state: success|failure|pending|error|warning, target_url, description, context}
//   GitLab  POST {api}/projects/{id}/statuses/{sha}          PRIVATE-TOKEN: T         ({api} = .../api/v4)
//           {state: success|failed|pending|running|canceled, target_url, description (<= 255), name}

export type ForgeKind = 'github' | 'gitea' | 'gitlab';
export const FORGE_KINDS: readonly ForgeKind[] = ['github', 'gitea', 'gitlab'];

export type CommitState = 'success' | 'failure' | 'pending';

export interface CommitStatus {
  /** The config revision (a 40-hex commit sha). */
  sha: string;
  state: CommitState;
  /** `lb/<node>`. */
  context: string;
  /** One line. */
  description: string;
  /** The node's status.md, when known. */
  targetUrl?: string;
}

export interface ForgeTarget {
  kind: ForgeKind;
  /** API base URL, no trailing slash: https://api.github.com, https://gitea.example/api/v1, https://gitlab.example/api/v4. */
  api: string;
  /** `owner/repo` (GitHub, Gitea), or GitLab's numeric id or `group/project` path. */
  project: string;
}

export interface ForgeRequest {
  method: 'POST';
  url: string;
  headers: Record<string, string>;
  body: Record<string, string>;
}

const DESCRIPTION_MAX: Record<ForgeKind, number> = { github: 140, gitea: 255, gitlab: 255 };

/** The request that sets `status` (without credentials: authHeaders adds them). */
export function commitStatusRequest(target: ForgeTarget, status: CommitStatus): ForgeRequest {
  const description = oneLine(status.description, DESCRIPTION_MAX[target.kind]);
  const link: Record<string, string> = status.targetUrl !== undefined ? { target_url: status.targetUrl } : {};
  const json = { 'Content-Type': 'application/json', Accept: 'application/json', 'User-Agent': 'lb' };
  if (target.kind === 'gitlab') {
    return {
      method: 'POST',
      url: `${target.api}/projects/${encodeURIComponent(target.project)}/statuses/${status.sha}`,
      headers: json,
      body: { state: status.state === 'failure' ? 'failed' : status.state, name: status.context, description, ...link },
    };
  }
  const [owner, repo] = target.project.split('/').map(encodeURIComponent);
  return {
    method: 'POST',
    url: `${target.api}/repos/${owner}/${repo}/statuses/${status.sha}`,
    headers: target.kind === 'github' ? { ...json, Accept: 'application/vnd.github+json', 'X-GitHub-Api-Version': '2022-11-28' } : json,
    body: { state: status.state, context: status.context, description, ...link },
  };
}

/** Each forge's documented token header. */
export function authHeaders(kind: ForgeKind, token: string): Record<string, string> {
  if (kind === 'gitlab') return { 'PRIVATE-TOKEN': token };
  return { Authorization: kind === 'github' ? `Bearer ${token}` : `token ${token}` };
}

/**
 * The API and project of a repository URL: https://github.com/o/r.git -> api.github.com, o/r;
 * GitHub Enterprise, Gitea and GitLab serve the API on the same host (/api/v3, /api/v1, /api/v4).
 * undefined when the URL says nothing (a local path): then --commit-status-api and -project are needed.
 */
export function forgeTargetOf(kind: ForgeKind, repoUrl: string): ForgeTarget | undefined {
  let u: URL;
  try {
    u = new URL(repoUrl);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  const project = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '').replace(/\.git$/, '');
  if (kind !== 'gitlab' && project.split('/').length !== 2) return undefined;
  if (project === '') return undefined;
  const origin = u.origin;
  const api = kind === 'github' ? (u.hostname === 'github.com' ? 'https://api.github.com' : `${origin}/api/v3`) : kind === 'gitea' ? `${origin}/api/v1` : `${origin}/api/v4`;
  return { kind, api, project };
}

/** The web page of a file on a branch of the repository (the node's status.md on the status branch). */
export function fileLink(kind: ForgeKind, repoUrl: string, branch: string, path: string): string | undefined {
  let u: URL;
  try {
    u = new URL(repoUrl);
  } catch {
    return undefined;
  }
  const web = `${u.origin}${u.pathname.replace(/\/+$/, '').replace(/\.git$/, '')}`;
  const b = branch.split('/').map(encodeURIComponent).join('/');
  if (kind === 'github') return `${web}/blob/${b}/${path}`;
  if (kind === 'gitea') return `${web}/src/branch/${b}/${path}`;
  return `${web}/-/blob/${b}/${path}`;
}

function oneLine(s: string, max: number): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}
