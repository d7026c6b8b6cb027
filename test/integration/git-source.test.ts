// GitSource against real git: a local bare repository, and the same repository served over smart
// HTTP by `git http-backend` (with and without token auth). Pushes are made with the git CLI.

import { readFile, readdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLbError } from '../../src/core/errors.js';
import { GitSource, SourceError, type GitSourceOptions } from '../../src/source/index.js';
import { createBareRepo, removeDir, tempDir, WorkRepo } from '../lib/git-fixtures.js';
import { GitHttpServer } from '../lib/git-server.js';

const TOKEN = 's3cr3t-token-value';

let root: string;
let repos: string;
let bare: string;
let work: WorkRepo;
let server: GitHttpServer;
let authServer: GitHttpServer;
let first: string;
let n = 0;

function source(opts: Partial<GitSourceOptions> & { url: string }): GitSource {
  n += 1;
  return new GitSource({ workDir: join(root, `src-${n}`), auth: { env: {} }, ...opts });
}

async function expectSourceError(p: Promise<unknown>, code: string, disposition: string): Promise<SourceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isLbError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as SourceError).code).toBe(code);
  expect((err as SourceError).disposition).toBe(disposition);
  return err as SourceError;
}

beforeAll(async () => {
  root = await tempDir('lb-gitsrc-');
  repos = join(root, 'repos');
  bare = await createBareRepo(repos, 'config.git', root);
  work = await WorkRepo.clone(bare, join(root, 'work'), root);
  first = await work.commit('first config', { files: { 'lb.yaml': 'proxies: []\n', 'env/prod/lb.yaml': 'proxies: [] # prod\n', 'README.md': 'hi\n' } });
  await work.push(['origin', 'main']);
  server = await GitHttpServer.start({ root: repos });
  authServer = await GitHttpServer.start({ root: repos, auth: { token: TOKEN } });
});

afterAll(async () => {
  await server?.stop();
  await authServer?.stop();
  await removeDir(root);
});

describe('GitSource on a local repository', () => {
  it('reads the branch tip of a bare repository and of a work tree', async () => {
    for (const url of [bare, work.dir, `file://${bare}`]) {
      const rev = await source({ url, ref: 'main' }).fetch();
      expect(rev.revision).toBe(await work.head());
      expect(rev.ref).toBe('refs/heads/main');
      expect(await readFile(join(rev.configPath, 'lb.yaml'), 'utf8')).toBe('proxies: []\n');
      expect(rev.message).toBe('first config');
      expect(rev.author).toBe('Test Author <author@example.invalid>');
      expect(Number.isNaN(Date.parse(rev.committedAt))).toBe(false);
    }
  });

  it('prunes old revision directories but keeps the retained (applied) one', async () => {
    const repo = await WorkRepo.init(join(root, 'prune'), root);
    const src = source({ url: repo.dir, keepCheckouts: 2 });
    await repo.commit('r0', { files: { 'lb.yaml': 'r: 0\n' } });
    const applied = await src.fetch();
    src.retain(applied.revision);
    const seen: string[] = [];
    for (let i = 1; i <= 4; i++) {
      await repo.commit(`r${i}`, { files: { 'lb.yaml': `r: ${i}\n` } });
      seen.push((await src.fetch()).configPath);
    }
    expect(await readFile(join(applied.configPath, 'lb.yaml'), 'utf8')).toBe('r: 0\n');
    const dirs = await readdir(join(src.workDir, 'checkouts'));
    // The retained one, the newest, and one more.
    expect(dirs).toHaveLength(3);
    expect(await readFile(join(seen[3]!, 'lb.yaml'), 'utf8')).toBe('r: 4\n');
    await expect(readFile(join(seen[0]!, 'lb.yaml'), 'utf8')).rejects.toThrow();
  });

  it('stalls on a missing ref, a missing path, and a directory that is no repository', async () => {
    await expectSourceError(source({ url: bare, ref: 'nope' }).fetch(), 'LB_SOURCE_REF_NOT_FOUND', 'stalling');
    await expectSourceError(source({ url: bare, path: 'env/staging' }).fetch(), 'LB_SOURCE_PATH_NOT_FOUND', 'stalling');
    await expectSourceError(source({ url: repos }).fetch(), 'LB_SOURCE_REPO', 'stalling');
  });
});

describe('GitSource over smart HTTP', () => {
  it('clones the default branch, then sees a new commit as a new revision', async () => {
    const src = source({ url: server.url('config.git') });
    const r1 = await src.fetch();
    expect(r1.revision).toBe(await work.head());
    expect(r1.ref).toBe('refs/heads/main');
    expect(src.followsRef('refs/heads/main')).toBe(true);
    expect(src.followsRef('refs/heads/other')).toBe(false);

    // An unchanged ref costs a ref advertisement, no pack.
    const packsBefore = server.requests.filter((r) => r.path.endsWith('/git-upload-pack')).length;
    const again = await src.fetch();
    expect(again.revision).toBe(r1.revision);
    expect(again.configPath).toBe(r1.configPath);
    expect(server.requests.filter((r) => r.path.endsWith('/git-upload-pack')).length).toBe(packsBefore);

    const next = await work.commit('weights 50/50', { files: { 'lb.yaml': 'proxies: [] # v2\n' } });
    await work.push();
    const r2 = await src.fetch();
    expect(r2.revision).toBe(next);
    expect(r2.configPath).not.toBe(r1.configPath);
    expect(await readFile(join(r2.configPath, 'lb.yaml'), 'utf8')).toBe('proxies: [] # v2\n');
    // The previous revision's directory is still there (the last applied config stays on disk).
    expect(await readFile(join(r1.configPath, 'lb.yaml'), 'utf8')).toBe('proxies: []\n');
  });

  it('checks out only a sub-path (directory or file)', async () => {
    const dir = await source({ url: server.url('config.git'), ref: 'main', path: 'env/prod/' }).fetch();
    expect(dir.configPath.endsWith(join('env', 'prod'))).toBe(true);
    expect(await readdir(dir.configPath)).toEqual(['lb.yaml']);
    expect(await readdir(dir.rootDir)).toEqual(['env']);
    const file = await source({ url: server.url('config.git'), path: 'env/prod/lb.yaml' }).fetch();
    expect(await readFile(file.configPath, 'utf8')).toBe('proxies: [] # prod\n');
    await expectSourceError(source({ url: server.url('config.git'), path: 'env/staging' }).fetch(), 'LB_SOURCE_PATH_NOT_FOUND', 'stalling');
    expect(() => source({ url: server.url('config.git'), path: '../etc' })).toThrow(/unsafe config sub-path/);
  });

  it('follows tags (lightweight and annotated) and pins a commit sha', async () => {
    await work.git(['tag', 'v1', first]);
    await work.git(['tag', '-a', 'v1-annotated', '-m', 'release', first]);
    await work.push(['origin', 'v1', 'v1-annotated']);
    for (const ref of ['v1', 'refs/tags/v1-annotated']) {
      const rev = await source({ url: server.url('config.git'), ref }).fetch();
      expect(rev.revision).toBe(first);
      expect(await readFile(join(rev.configPath, 'lb.yaml'), 'utf8')).toBe('proxies: []\n');
    }
    // A sha that is no longer the tip of anything, fetched shallow.
    const pinned = source({ url: server.url('config.git'), ref: first });
    const rev = await pinned.fetch();
    expect(rev.revision).toBe(first);
    expect(rev.ref).toBe(first);
    expect(pinned.followsRef('refs/heads/main')).toBe(false);
    await expectSourceError(source({ url: server.url('config.git'), ref: 'no-such-branch' }).fetch(), 'LB_SOURCE_REF_NOT_FOUND', 'stalling');
    await expectSourceError(source({ url: server.url('config.git'), ref: 'f'.repeat(40) }).fetch(), 'LB_SOURCE_REF_NOT_FOUND', 'stalling');
  });

  it('follows a force-pushed branch to its new tip', async () => {
    const src = source({ url: server.url('config.git') });
    const before = await src.fetch();
    await work.git(['reset', '-q', '--hard', first]);
    const rewritten = await work.commit('rewritten history', { files: { 'lb.yaml': 'proxies: [] # rewritten\n' } });
    await work.push(['--force', 'origin', 'main']);
    const after = await src.fetch();
    expect(after.revision).toBe(rewritten);
    expect(after.revision).not.toBe(before.revision);
    expect(await readFile(join(after.configPath, 'lb.yaml'), 'utf8')).toBe('proxies: [] # rewritten\n');
  });

  it('sends a token read from the environment or a file, and names a wrong one clearly without echoing it', async () => {
    const url = authServer.url('config.git');
    const fromEnv = await source({ url, auth: { env: { LB_GIT_TOKEN: TOKEN } } }).fetch();
    expect(fromEnv.revision).toBe(await work.head());

    const tokenFile = join(root, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    expect((await source({ url, auth: { tokenFile } }).fetch()).revision).toBe(await work.head());

    const basic = await source({ url, auth: { env: { LB_GIT_USERNAME: 'ci', LB_GIT_PASSWORD: TOKEN } } }).fetch();
    expect(basic.revision).toBe(await work.head());

    const wrong = await expectSourceError(source({ url, auth: { env: { LB_GIT_TOKEN: 'not-the-token' } } }).fetch(), 'LB_SOURCE_AUTH', 'stalling');
    expect(wrong.message).toMatch(/refused the credentials \(HTTP 401\)/);
    expect(wrong.message).not.toContain('not-the-token');
    expect(JSON.stringify(wrong.data)).not.toContain('not-the-token');

    await expectSourceError(source({ url }).fetch(), 'LB_SOURCE_AUTH', 'stalling');
    // Credentials in the URL work and never show in the description.
    const inUrl = source({ url: authServer.url('config.git', { username: 'x', password: TOKEN }) });
    expect(inUrl.description).not.toContain(TOKEN);
    expect((await inUrl.fetch()).revision).toBe(await work.head());
  });

  it('reports an unreachable remote as transient, and recovers when it is back', async () => {
    const down = await GitHttpServer.start({ root: repos });
    try {
      const src = source({ url: down.url('config.git'), timeoutMs: 5000 });
      const ok = await src.fetch();
      await down.stop();
      const err = await expectSourceError(src.fetch(), 'LB_SOURCE_UNREACHABLE', 'transient');
      expect(err.reason).toBe('RemoteUnreachable');
      const next = await work.commit('while the remote was down', { files: { 'lb.yaml': 'proxies: [] # v3\n' } });
      await work.push();
      await down.restart();
      const back = await src.fetch();
      expect(back.revision).toBe(next);
      expect(back.revision).not.toBe(ok.revision);
    } finally {
      await down.stop();
    }
  });

  it('gives up on a remote that accepts the connection and never answers (transient)', async () => {
    const sockets = new Set<Socket>();
    const mute = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    try {
      const { port } = mute.address() as AddressInfo;
      const src = source({ url: `http://127.0.0.1:${port}/config.git`, idleTimeoutMs: 300, timeoutMs: 2000 });
      const err = await expectSourceError(src.fetch(), 'LB_SOURCE_UNREACHABLE', 'transient');
      expect(err.message).toMatch(/timed out|abort/i);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => mute.close(() => r()));
    }
  });

  it('stalls on a repository that does not exist', async () => {
    await expectSourceError(source({ url: server.url('missing.git') }).fetch(), 'LB_SOURCE_REPO', 'stalling');
  });
});
