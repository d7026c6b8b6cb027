// A real smart-HTTP git server for the demo and the git tests: node:http on 127.0.0.1 (an
// ephemeral port by default) running `git http-backend` as a CGI per request, over every
// repository below `root`. Pushes are enabled (http.receivepack). Optional basic auth: a
// username/password pair, or a token accepted as the password with any username (how GitHub,
// GitLab and Gitea take tokens). git-server-main.ts runs it as a process (inside a namespace).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeHttp } from '../http-server.js';

let backendPath: string | undefined;

/** git-http-backend lives in git's exec path (/usr/lib/git-core on Debian). */
function gitHttpBackend(): string {
  backendPath ??= `${execFileSync('git', ['--exec-path'], { encoding: 'utf8', timeout: 10_000 }).trim()}/git-http-backend`;
  return backendPath;
}

export interface GitServerOptions {
  /** Directory holding the repositories (GIT_PROJECT_ROOT). */
  root: string;
  /** Port to bind on 127.0.0.1 (default 0: ephemeral). */
  port?: number;
  auth?: { token: string } | { username: string; password: string };
  /** Called after each request got its status (for a request log). */
  onRequest?: (r: ServedRequest) => void;
  /**
   * Called before an authorized request is served, synchronously: a test moves the repository
   * between two requests of one client operation there (another client's push landing meanwhile).
   */
  beforeRequest?: (r: { method: string; path: string; query: string }) => void;
}

export interface ServedRequest {
  method: string;
  path: string;
  status: number;
}

export class GitHttpServer {
  readonly root: string;
  readonly requests: ServedRequest[] = [];
  private readonly opts: GitServerOptions;
  private server: Server | undefined;
  private readonly children = new Set<ChildProcess>();
  private boundPort: number;

  private constructor(opts: GitServerOptions) {
    this.opts = opts;
    this.root = opts.root;
    this.boundPort = opts.port ?? 0;
  }

  static async start(opts: GitServerOptions): Promise<GitHttpServer> {
    const s = new GitHttpServer(opts);
    await s.listen();
    return s;
  }

  get port(): number {
    return this.boundPort;
  }

  /** The URL of repository `name` (a path below root), optionally with credentials in it. */
  url(name: string, creds?: { username: string; password: string }): string {
    const auth = creds ? `${encodeURIComponent(creds.username)}:${encodeURIComponent(creds.password)}@` : '';
    return `http://${auth}127.0.0.1:${this.boundPort}/${name}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Stops listening, drops connections and kills running CGI children. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
    if (server) await closeHttp(server);
  }

  /** Listens again on the same port (after stop(): "the remote is back"). */
  async restart(): Promise<void> {
    if (this.server) return;
    await this.listen();
  }

  private async listen(): Promise<void> {
    gitHttpBackend(); // fail here, not in a request handler, when git is missing
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.boundPort = (server.address() as AddressInfo).port;
  }

  private authorized(req: IncomingMessage): string | undefined | false {
    const auth = this.opts.auth;
    if (!auth) return undefined;
    const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const user = i < 0 ? decoded : decoded.slice(0, i);
    const pass = i < 0 ? '' : decoded.slice(i + 1);
    if ('token' in auth) return pass === auth.token || user === auth.token ? user || 'token' : false;
    return user === auth.username && pass === auth.password ? user : false;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const [path = '/', query = ''] = (req.url ?? '/').split('?');
    const log = (status: number): void => {
      const served = { method: req.method ?? 'GET', path, status };
      this.requests.push(served);
      this.opts.onRequest?.(served);
    };
    const user = this.authorized(req);
    if (user === false) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"', 'Content-Type': 'text/plain' });
      res.end('authentication required\n');
      log(401);
      req.resume();
      return;
    }
    this.opts.beforeRequest?.({ method: req.method ?? 'GET', path, query });
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: this.root,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_PROJECT_ROOT: this.root,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.receivepack',
      GIT_CONFIG_VALUE_0: 'true',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(path),
      QUERY_STRING: query,
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      REMOTE_USER: user ?? 'anonymous',
      ...(req.headers['content-type'] ? { CONTENT_TYPE: req.headers['content-type'] } : {}),
      ...(req.headers['content-length'] ? { CONTENT_LENGTH: req.headers['content-length'] } : {}),
      ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
      ...(typeof req.headers['git-protocol'] === 'string' ? { GIT_PROTOCOL: req.headers['git-protocol'] } : {}),
    };
    const child = spawn(gitHttpBackend(), [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    const stderr: Buffer[] = [];
    child.stderr.on('data', (d: Buffer) => stderr.push(d));
    child.on('close', () => this.children.delete(child));
    child.on('error', (err) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      log(500);
    });
    req.pipe(child.stdin);
    child.stdin.on('error', () => undefined);

    // CGI output: headers (Status: ...), blank line, body.
    let head = Buffer.alloc(0);
    let headersDone = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const crlf = head.indexOf('\r\n\r\n');
      const lf = head.indexOf('\n\n');
      const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
      if (end < 0) return;
      const sepLen = end === crlf ? 4 : 2;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10) || 200;
        else headers[k] = v;
      }
      headersDone = true;
      res.writeHead(status, headers);
      log(status);
      const rest = head.subarray(end + sepLen);
      if (rest.length > 0) res.write(rest);
    });
    child.stdout.on('end', () => {
      if (!headersDone) {
        res.writeHead(502, { 'Content-Type': 'text/plain' });
        res.end(`git http-backend gave no headers: ${Buffer.concat(stderr).toString()}`);
        log(502);
      } else res.end();
    });
    res.on('close', () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
  }
}
