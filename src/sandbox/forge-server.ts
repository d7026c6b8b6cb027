// A stand-in for the parts of GitHub, Gitea and GitLab that lb talks to, for the tests of commit
// statuses (the daemon) and of the CI templates (PR/MR comments): node:http on 127.0.0.1, the
// documented paths, methods, token headers and response shapes, state in memory. Nothing here is
// lb code under test: it is the forge.
//
//   commit statuses  GitHub POST /repos/O/R/statuses/SHA, Gitea POST /api/v1/repos/O/R/statuses/SHA,
//                    GitLab POST /api/v4/projects/ID/statuses/SHA
//   PR comments      GitHub GET|POST /repos/O/R/issues/N/comments, PATCH /repos/O/R/issues/comments/ID
//                    Gitea the same under /api/v1; GitLab GET|POST /api/v4/projects/ID/merge_requests/N/notes,
//                    PUT /api/v4/projects/ID/merge_requests/N/notes/ID
// A request without the token (Authorization: Bearer|token T, or PRIVATE-TOKEN: T) gets 401.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeHttp } from '../http-server.js';

export type Forge = 'github' | 'gitea' | 'gitlab';

export interface RecordedStatus {
  forge: Forge;
  project: string;
  sha: string;
  body: Record<string, unknown>;
}

export interface Comment {
  id: number;
  body: string;
}

export interface ForgeRequestLog {
  method: string;
  path: string;
  status: number;
}

export class ForgeServer {
  readonly statuses: RecordedStatus[] = [];
  /** `forge project number` -> comments of that PR/MR, in creation order. */
  readonly comments = new Map<string, Comment[]>();
  readonly requests: ForgeRequestLog[] = [];
  private server: Server | undefined;
  private nextId = 100;
  private boundPort = 0;

  private constructor(private readonly token: string, private readonly onStatus?: (s: RecordedStatus) => void) {}

  static async start(opts: { token: string; port?: number; onStatus?: (s: RecordedStatus) => void }): Promise<ForgeServer> {
    const s = new ForgeServer(opts.token, opts.onStatus);
    s.server = createServer((req, res) => void s.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      s.server!.once('error', reject);
      s.server!.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    s.boundPort = (s.server.address() as AddressInfo).port;
    return s;
  }

  get port(): number {
    return this.boundPort;
  }

  /** API base URL of a forge on this server. */
  api(forge: Forge): string {
    return `http://127.0.0.1:${this.boundPort}${forge === 'github' ? '' : forge === 'gitea' ? '/api/v1' : '/api/v4'}`;
  }

  commentsOf(forge: Forge, project: string, number: number): Comment[] {
    return this.comments.get(`${forge} ${project} ${number}`) ?? [];
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await closeHttp(s);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > 1024 * 1024) return this.reply(req, res, 413, { message: 'too large' });
      chunks.push(c);
    }
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    const auth = req.headers['authorization'];
    const token = req.headers['private-token'] ?? (typeof auth === 'string' ? auth.replace(/^(Bearer|token) /, '') : undefined);
    if (token !== this.token) return this.reply(req, res, 401, { message: 'Bad credentials' });
    let body: Record<string, unknown> = {};
    if (chunks.length > 0) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        return this.reply(req, res, 400, { message: 'Problems parsing JSON' });
      }
    }
    const m = (re: RegExp): RegExpExecArray | null => re.exec(path);
    let r: RegExpExecArray | null;
    if (req.method === 'POST' && (r = m(/^(\/api\/v1)?\/repos\/([^/]+\/[^/]+)\/statuses\/([0-9a-f]{40})$/))) {
      return this.status(req, res, r[1] ? 'gitea' : 'github', r[2]!, r[3]!, body);
    }
    if (req.method === 'POST' && (r = m(/^\/api\/v4\/projects\/(.+)\/statuses\/([0-9a-f]{40})$/))) return this.status(req, res, 'gitlab', r[1]!, r[2]!, body);
    if ((r = m(/^(\/api\/v1)?\/repos\/([^/]+\/[^/]+)\/issues\/(\d+)\/comments$/))) return this.listOrCreate(req, res, r[1] ? 'gitea' : 'github', r[2]!, Number(r[3]), body);
    if (req.method === 'PATCH' && (r = m(/^(\/api\/v1)?\/repos\/([^/]+\/[^/]+)\/issues\/comments\/(\d+)$/))) return this.update(req, res, r[1] ? 'gitea' : 'github', r[2]!, undefined, Number(r[3]), body);
    if ((r = m(/^\/api\/v4\/projects\/(.+)\/merge_requests\/(\d+)\/notes$/))) return this.listOrCreate(req, res, 'gitlab', r[1]!, Number(r[2]), body);
    if (req.method === 'PUT' && (r = m(/^\/api\/v4\/projects\/(.+)\/merge_requests\/(\d+)\/notes\/(\d+)$/))) return this.update(req, res, 'gitlab', r[1]!, Number(r[2]), Number(r[3]), body);
    return this.reply(req, res, 404, { message: 'Not Found' });
  }

  private status(req: IncomingMessage, res: ServerResponse, forge: Forge, project: string, sha: string, body: Record<string, unknown>): void {
    const states = forge === 'gitlab' ? ['pending', 'running', 'success', 'failed', 'canceled'] : ['pending', 'success', 'error', 'failure', 'warning'];
    if (!states.includes(String(body['state']))) return this.reply(req, res, forge === 'gitlab' ? 400 : 422, { message: 'Validation Failed' });
    const s: RecordedStatus = { forge, project, sha, body };
    this.statuses.push(s);
    this.onStatus?.(s);
    this.reply(req, res, 201, forge === 'gitlab' ? { id: this.nextId++, sha, status: body['state'], name: body['name'] } : { id: this.nextId++, state: body['state'], context: body['context'] });
  }

  private listOrCreate(req: IncomingMessage, res: ServerResponse, forge: Forge, project: string, n: number, body: Record<string, unknown>): void {
    const key = `${forge} ${project} ${n}`;
    const list = this.comments.get(key) ?? [];
    if (req.method === 'GET') return this.reply(req, res, 200, list.map((c) => ({ id: c.id, body: c.body })));
    if (req.method !== 'POST') return this.reply(req, res, 405, { message: 'Method Not Allowed' });
    if (typeof body['body'] !== 'string') return this.reply(req, res, forge === 'gitlab' ? 400 : 422, { message: 'body is missing' });
    const c = { id: this.nextId++, body: body['body'] };
    this.comments.set(key, [...list, c]);
    this.reply(req, res, 201, c);
  }

  private update(req: IncomingMessage, res: ServerResponse, forge: Forge, project: string, n: number | undefined, id: number, body: Record<string, unknown>): void {
    for (const [key, list] of this.comments) {
      const [f, p, num] = key.split(' ');
      if (f !== forge || p !== project || (n !== undefined && Number(num) !== n)) continue;
      const c = list.find((x) => x.id === id);
      if (!c) continue;
      if (typeof body['body'] !== 'string') return this.reply(req, res, 422, { message: 'body is missing' });
      c.body = body['body'];
      return this.reply(req, res, 200, c);
    }
    this.reply(req, res, 404, { message: 'Not Found' });
  }

  private reply(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
    this.requests.push({ method: req.method ?? '', path: req.url ?? '', status });
    res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify(body));
  }
}
