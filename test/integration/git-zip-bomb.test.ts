// A git zip bomb against GitSource (built, in a child process, so its peak RSS is its own): a
// commit holds cfg/zbomb.yaml, 1 GiB of zeros that deflate to about 1 MB, served by a real
// smart-HTTP remote (`git http-backend`). The commit is made in the server's repository with
// plumbing, not pushed: a push makes the server inflate the blob once to index it, a minute of CPU
// on a loaded host, and proves nothing about the fetching side. Served twice: by a repository that
// offers partial fetch (the blob is never sent; the refusal names the path) and by one that does not
// (the pack is refused while it streams, at the blob's header). Each time the fetch must fail with a
// stalling error that names the cap, the process must stay under 300 MiB (isomorphic-git alone
// would hold the whole inflated blob), and the next good commit must fetch. A local repository
// holding the bomb is refused by the object header. Times and RSS are printed, never asserted.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { constants, deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { ROOT } from '../lib/cli.js';
import { createBareRepo, git, removeDir, tempDir } from '../lib/git-fixtures.js';
import { GitHttpServer } from '../lib/git-server.js';

const MiB = 1024 * 1024;
const BOMB_BYTES = 1024 * MiB;
const RSS_BOUND_MIB = 300;
const GOOD = 'proxies: []\n';
const FIXED = 'proxies: [] # fixed\n';

let root: string;
let repos: string;
let server: GitHttpServer;
let childScript: string;

/** CRC-32 (IEEE), for the pack index (Node 20 has no zlib.crc32). */
function crc32(buf: Buffer): number {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/**
 * A pack holding one blob of `size` zeros and its version 2 index, built without deflating or
 * inflating the zeros (git index-pack would inflate them: a minute of CPU on a loaded host): a
 * 1 MiB block of zeros deflated once with a full flush (no back-reference crosses it) repeats as
 * often as needed. Only the blob's SHA-1 is computed over all of it.
 */
function zeroBlobPack(size: number): { pack: Buffer; idx: Buffer; oid: string } {
  const block = deflateRawSync(Buffer.alloc(MiB), { level: 9, finishFlush: constants.Z_FULL_FLUSH });
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((size % 65521) << 16) | 1) >>> 0); // adler32 of zeros: a = 1, b = size mod 65521
  const zlib = Buffer.concat([Buffer.from([0x78, 0x9c]), ...Array<Buffer>(size / MiB).fill(block), Buffer.from([0x03, 0x00]), adler]);
  const header: number[] = [];
  let b = (3 << 4) | (size & 15);
  for (let rest = Math.floor(size / 16); rest > 0; rest = Math.floor(rest / 128)) {
    header.push(b | 0x80);
    b = rest & 0x7f;
  }
  header.push(b);
  const entry = Buffer.concat([Buffer.from(header), zlib]);
  const head = Buffer.alloc(12);
  head.write('PACK', 0, 'latin1');
  head.writeUInt32BE(2, 4);
  head.writeUInt32BE(1, 8);
  const body = Buffer.concat([head, entry]);
  const packSum = createHash('sha1').update(body).digest();
  const sha = createHash('sha1').update(`blob ${size}\0`);
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < size / MiB; i++) sha.update(zeros);
  const oid = sha.digest();
  const fanout = Buffer.alloc(1024);
  for (let i = oid[0]!; i < 256; i++) fanout.writeUInt32BE(1, i * 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(entry));
  const offset = Buffer.alloc(4);
  offset.writeUInt32BE(12);
  const idxBody = Buffer.concat([Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]), fanout, oid, crc, offset, packSum]);
  return { pack: Buffer.concat([body, packSum]), idx: Buffer.concat([idxBody, createHash('sha1').update(idxBody).digest()]), oid: oid.toString('hex') };
}

let zero: { pack: Buffer; idx: Buffer; oid: string };

/**
 * Commits on main of the bare repository `gitdir` with plumbing (no work tree, nothing inflated):
 * `put` maps paths to file contents or to an existing blob's oid, added to the parent's tree, or
 * to an empty tree when `replace` is set (update-index cannot remove a path without a work tree).
 */
async function commitInBare(gitdir: string, message: string, change: { put: Record<string, string | { oid: string }>; replace?: boolean }): Promise<string> {
  const env = { GIT_INDEX_FILE: join(root, `index-${Math.random().toString(36).slice(2)}`) };
  const g = (args: string[]): Promise<string> => git(args, { cwd: gitdir, home: root, env }).then((s) => s.trim());
  const parent = await g(['rev-parse', '--verify', '-q', 'refs/heads/main']).catch(() => '');
  await g(parent && !change.replace ? ['read-tree', parent] : ['read-tree', '--empty']);
  for (const [path, v] of Object.entries(change.put)) {
    let oid: string;
    if (typeof v === 'string') {
      const file = join(root, 'blob-content');
      await writeFile(file, v);
      oid = await g(['hash-object', '-w', file]);
    } else {
      oid = v.oid;
    }
    await g(['update-index', '--add', '--cacheinfo', `100644,${oid},${path}`]);
  }
  const tree = await g(['write-tree']);
  const commit = await g(['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-m', message]);
  await g(['update-ref', 'refs/heads/main', commit]);
  return commit;
}

/** A bare repository whose main holds a good config, then the bomb next to it (its pack copied in). */
async function bombRepo(dir: string, name: string, allowFilter: boolean): Promise<string> {
  const bare = await createBareRepo(dir, name, root);
  if (allowFilter) await git(['config', 'uploadpack.allowFilter', 'true'], { cwd: bare, home: root });
  await commitInBare(bare, 'good config', { put: { 'cfg/lb.yaml': GOOD } });
  const packDir = join(bare, 'objects', 'pack');
  await mkdir(packDir, { recursive: true });
  await writeFile(join(packDir, 'pack-zero.pack'), zero.pack);
  await writeFile(join(packDir, 'pack-zero.idx'), zero.idx);
  await commitInBare(bare, `add a ${BOMB_BYTES / 1024 / MiB} GiB file`, { put: { 'cfg/zbomb.yaml': { oid: zero.oid } } });
  return bare;
}

async function fix(bare: string): Promise<string> {
  return commitInBare(bare, 'remove the large file', { put: { 'cfg/lb.yaml': FIXED }, replace: true });
}

/** The built GitSource in a child: one fetch per "fetch" line on stdin, one JSON line each; "exit" reports VmHWM. */
class FetchChild {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;

  constructor(url: string, workDir: string, path: string) {
    this.child = spawn(process.execPath, [childScript, url, workDir, path], { cwd: ROOT, stdio: 'pipe' });
    this.child.stderr.on('data', (d: Buffer) => process.stderr.write(`[fetch child] ${d.toString()}`));
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async send(cmd: 'fetch' | 'exit'): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${cmd}\n`);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 90_000);
    try {
      const next = await this.lines.next();
      if (next.done) throw new Error(`the fetch child ended without answering ${cmd}`);
      return JSON.parse(next.value) as Record<string, unknown>;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

const CHILD_SOURCE = `
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { GitSource } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'source', 'index.js'))};
const [url, workDir, path] = process.argv.slice(2);
const src = new GitSource({ url, ref: 'main', path, workDir, auth: { env: {} }, timeoutMs: 80000 });
const hwm = () => Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'exit') { console.log(JSON.stringify({ vmHwmKiB: hwm() })); process.exit(0); }
  const t0 = performance.now();
  try {
    const rev = await src.fetch();
    console.log(JSON.stringify({ ok: true, revision: rev.revision, configPath: rev.configPath, ms: performance.now() - t0, vmHwmKiB: hwm() }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, code: err.code, reason: err.reason, disposition: err.disposition, message: err.message, ms: performance.now() - t0, vmHwmKiB: hwm() }));
  }
}
`;

beforeAll(async () => {
  ensureBuilt();
  root = await tempDir('lb-zipbomb-');
  repos = join(root, 'repos');
  childScript = join(root, 'fetch-child.mjs');
  await writeFile(childScript, CHILD_SOURCE);
  const t0 = performance.now();
  zero = zeroBlobPack(BOMB_BYTES);
  console.log(`[zip-bomb] ${BOMB_BYTES} zero bytes as a ${zero.pack.length} byte pack (blob ${zero.oid}), built in ${(performance.now() - t0).toFixed(0)} ms`);
  server = await GitHttpServer.start({ root: repos });
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await removeDir(root);
});

interface Outcome extends Record<string, unknown> {
  ok: boolean;
  vmHwmKiB: number;
}

/** The bomb commit is refused (stalling, naming the cap), then the fix fetches; returns the peak RSS in MiB. */
async function bombThenFix(url: string, bare: string, label: string, expectInMessage: string[]): Promise<number> {
  const child = new FetchChild(url, join(root, `src-${label}`), 'cfg');
  try {
    const bad = (await child.send('fetch')) as Outcome;
    console.log(`[zip-bomb] ${label}: bomb fetch ${JSON.stringify(bad)}`);
    expect(bad.ok).toBe(false);
    expect(bad['code']).toBe('LB_SOURCE_CHECKOUT');
    expect(bad['reason']).toBe('ObjectTooLarge');
    expect(bad['disposition']).toBe('stalling');
    for (const s of expectInMessage) expect(bad['message']).toContain(s);

    const fixed = await fix(bare);
    const good = (await child.send('fetch')) as Outcome;
    console.log(`[zip-bomb] ${label}: next fetch ${JSON.stringify(good)}`);
    expect(good.ok).toBe(true);
    expect(good['revision']).toBe(fixed);
    expect(await readdir(good['configPath'] as string)).toEqual(['lb.yaml']);
    expect(await readFile(join(good['configPath'] as string, 'lb.yaml'), 'utf8')).toBe(FIXED);

    const peak = ((await child.send('exit')) as Outcome).vmHwmKiB / 1024;
    console.log(`[zip-bomb] ${label}: peak RSS of the fetching process ${peak.toFixed(0)} MiB`);
    return peak;
  } finally {
    child.kill();
  }
}

describe('a git zip bomb (cfg/zbomb.yaml: 1 GiB of zeros in a 1 MiB pack)', () => {
  it('over smart HTTP, from a server that offers partial fetch: the blob is never sent, the refusal names the path', { timeout: 180_000 }, async () => {
    const bare = await bombRepo(repos, 'bomb-filter.git', true);
    const peak = await bombThenFix(server.url('bomb-filter.git'), bare, 'http, filter', ['cfg/zbomb.yaml', 'over the 64 MiB object cap']);
    expect(peak).toBeLessThan(RSS_BOUND_MIB);
  });

  it('over smart HTTP, from a server without partial fetch: the pack is refused at the blob header', { timeout: 180_000 }, async () => {
    const bare = await bombRepo(repos, 'bomb.git', false);
    const peak = await bombThenFix(server.url('bomb.git'), bare, 'http, no filter', [`blob of 1 GiB (${BOMB_BYTES} bytes), over the 64 MiB object cap`]);
    expect(peak).toBeLessThan(RSS_BOUND_MIB);
  });

  it('in a local repository: refused by the object header', { timeout: 180_000 }, async () => {
    const bare = await bombRepo(join(root, 'local'), 'bomb.git', false);
    const peak = await bombThenFix(bare, bare, 'local', ['cfg/zbomb.yaml', `1 GiB (${BOMB_BYTES} bytes), over the 64 MiB cap`]);
    expect(peak).toBeLessThan(RSS_BOUND_MIB);
  });
});
