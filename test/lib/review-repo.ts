// A config repository for the review tests (`lb plan --repo`, `lb status --fleet`, the CI
// templates): a bare repository served over smart HTTP, readable by nobody (uid 65534), with
// `main` (the base config), `pr` (a weight change and a DNS target swapped), `bad` (an invalid
// config) and `newpath` (a config under a path main does not have).
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { createBareRepo, removeDir, tempDir, WorkRepo } from './git-fixtures.js';
import { GitHttpServer } from './git-server.js';

export const BASE_YAML = `proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80, protocol: tcp}
    default-target:
      - {ip: 10.0.0.1, port: 8080, weight: 50}
      - {host: api.internal, port: 8080, weight: 50}
`;
export const HEAD_YAML = BASE_YAML.replace('10.0.0.1, port: 8080, weight: 50', '10.0.0.1, port: 8080, weight: 70').replace('api.internal', 'api2.internal');
export const BAD_YAML = 'proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: eighty}\n    default-target: {ip: 10.0.0.1, port: 80}\n';

export interface ReviewRepo {
  root: string;
  server: GitHttpServer;
  /** The working clone (a local repository path for `--repo`). */
  work: WorkRepo;
  /** The bare repository's smart-HTTP URL. */
  url: string;
  /** The bare repository's path. */
  bare: string;
  /** Commit of each branch. */
  sha: Record<'main' | 'pr' | 'bad' | 'newpath', string>;
  dispose(): Promise<void>;
}

export async function createReviewRepo(prefix: string, auth?: { token: string }): Promise<ReviewRepo> {
  const root = await tempDir(prefix);
  await chmod(root, 0o755); // nobody reads the repositories
  const repos = join(root, 'repos');
  const bare = await createBareRepo(repos, 'config.git', root);
  const server = await GitHttpServer.start({ root: repos, ...(auth ? { auth } : {}) });
  const work = await WorkRepo.clone(bare, join(root, 'work'), root);
  const sha = { main: await work.commit('base', { files: { 'prod/lb.yaml': BASE_YAML } }) } as ReviewRepo['sha'];
  await work.push(['origin', 'main']);
  for (const [branch, files] of [['pr', { 'prod/lb.yaml': HEAD_YAML }], ['bad', { 'prod/lb.yaml': BAD_YAML }], ['newpath', { 'staging/lb.yaml': BASE_YAML }]] as const) {
    await work.git(['checkout', '-q', '-B', branch, 'main']);
    sha[branch] = await work.commit(branch, { files });
    await work.push(['origin', branch]);
  }
  await work.git(['checkout', '-q', 'main']);
  return {
    root, server, work, bare, sha, url: server.url('config.git'),
    dispose: async () => {
      await server.stop();
      await removeDir(root);
    },
  };
}
