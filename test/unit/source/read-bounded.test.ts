// The bounded config reader (src/source/read-bounded.ts) against hostile paths: FIFOs, devices,
// sockets, links leading out of the config directory, huge and growing files. Each refusal must be
// quick, name the file, and carry nothing read from it. Times and RSS growth are printed, never
// asserted.

import { execFileSync } from 'node:child_process';
import { mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/config/config-error.js';
import { loadConfig, readConfigSources } from '../../../src/source/load-config.js';
import { CONFIG_READ_LIMITS, readConfigFiles, type ConfigReadLimits } from '../../../src/source/read-bounded.js';
import { removeDir, tempDir } from '../../lib/git-fixtures.js';

const MiB = 1024 * 1024;
const SECRET = 'root:$6$saltsalt$TOPSECRETHASHVALUE:19000:0:99999:7:::';
const PROXY = 'proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80}\n    default-target: [{ip: 10.0.0.1, port: 8080}]\n';

let base: string;
let dir: string;
const servers: Server[] = [];

beforeEach(async () => {
  base = await tempDir('lb-bounded-');
  dir = join(base, 'config');
  await mkdir(dir);
});

afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
  await removeDir(base);
});

/** The ConfigError that reading `path` raises, with its wall time and RSS growth printed. */
async function refusal(label: string, path: string, limits?: ConfigReadLimits): Promise<ConfigError> {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  let caught: unknown;
  try {
    await readConfigFiles(path, limits);
  } catch (err) {
    caught = err;
  }
  const ms = performance.now() - t0;
  const rssMiB = (process.memoryUsage().rss - rss0) / MiB;
  console.log(`[read-bounded] ${label}: refused in ${ms.toFixed(1)} ms, RSS growth ${rssMiB.toFixed(1)} MiB`);
  if (!(caught instanceof ConfigError)) throw new Error(`expected ${path} to be refused with a ConfigError, got ${String(caught)}`);
  expect(caught.code).toBe('LB_CONFIG_IO');
  return caught;
}

/** Everything an operator could see of an error: message, diagnostics, data. */
function everything(err: ConfigError): string {
  return `${err.message}\n${err.format()}\n${JSON.stringify(err.data)}`;
}

/** A file of `bytes` bytes that takes no disk space (a hole). */
async function sparse(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(bytes);
  await fh.close();
}

describe('refused by type', () => {
  it('refuses a FIFO named as the config without blocking on it', async () => {
    const fifo = join(dir, 'lb.yaml');
    execFileSync('mkfifo', [fifo]);
    const err = await refusal('FIFO as --config', fifo);
    expect(err.format()).toBe(`${fifo}: is a FIFO (named pipe); a config file must be a regular file (config directories are not read recursively)`);
  });

  it('refuses a FIFO among the files of a config directory, and still names the other bad entries', async () => {
    await writeFile(join(dir, 'a.yaml'), PROXY);
    execFileSync('mkfifo', [join(dir, 'b.yaml')]);
    await mkdir(join(dir, 'c.yaml'));
    const err = await refusal('FIFO in a directory', dir);
    expect(err.diagnostics.map((d) => [d.file, d.message.split(';')[0]])).toEqual([
      [join(dir, 'b.yaml'), 'is a FIFO (named pipe)'],
      [join(dir, 'c.yaml'), 'is a directory'],
    ]);
  });

  it('refuses a directory entry named like a config file', async () => {
    await writeFile(join(dir, 'a.yaml'), PROXY);
    await mkdir(join(dir, 'x.yaml'));
    const err = await refusal('directory named x.yaml', dir);
    expect(err.format()).toBe(`${join(dir, 'x.yaml')}: is a directory; a config file must be a regular file (config directories are not read recursively)`);
  });

  it('refuses a socket', async () => {
    const sock = join(dir, 's.yaml');
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const err = await refusal('socket', dir);
    expect(err.format()).toMatch(/s\.yaml: is a socket; a config file must be a regular file/);
  });

  it('refuses a character device named as the config (/dev/zero) without reading it', async () => {
    const err = await refusal('/dev/zero as --config', '/dev/zero');
    expect(err.format()).toBe('/dev/zero: is a character device; a config file must be a regular file (config directories are not read recursively)');
  });

  it('refuses a link inside the directory that leads to a FIFO inside it, saying so', async () => {
    execFileSync('mkfifo', [join(dir, '.pipe')]);
    await symlink('.pipe', join(dir, 'lb.yaml'));
    const err = await refusal('link to a FIFO inside', dir);
    expect(err.diagnostics[0]!.message).toMatch(/^is a symbolic link to a FIFO \(named pipe\);/);
  });
});

describe('symbolic links', () => {
  it('refuses a link to /dev/zero, as the config and in a config directory, without opening it', async () => {
    await symlink('/dev/zero', join(dir, 'zero.yaml'));
    const asFile = await refusal('link to /dev/zero as --config', join(dir, 'zero.yaml'));
    expect(asFile.format()).toBe(
      `${join(dir, 'zero.yaml')}: is a symbolic link that leads outside the config directory ${dir}; only links that stay inside it are followed`,
    );
    await writeFile(join(dir, 'a.yaml'), PROXY);
    const inDir = await refusal('link to /dev/zero in a directory', dir);
    expect(inDir.diagnostics.map((d) => d.file)).toEqual([join(dir, 'zero.yaml')]);
  });

  it('refuses a link to a file outside the directory and never shows its content', async () => {
    const shadow = join(base, 'shadow');
    await writeFile(shadow, `${SECRET}\ndaemon:*:19000:0:99999:7:::\n`);
    await writeFile(join(dir, 'a.yaml'), PROXY);
    await symlink(shadow, join(dir, 'shadow.yaml'));
    const err = await refusal('link to a secret outside', dir);
    expect(err.format()).toBe(
      `${join(dir, 'shadow.yaml')}: is a symbolic link that leads outside the config directory ${dir}; only links that stay inside it are followed`,
    );
    expect(everything(err)).not.toContain('TOPSECRET');
    expect(everything(err)).not.toContain('daemon:');
    // The same through the CLI's loader.
    const viaLoad = await loadConfig(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(viaLoad).toBeInstanceOf(ConfigError);
    expect(everything(viaLoad as ConfigError)).not.toContain('TOPSECRET');
  });

  it('refuses a relative link that climbs out with ..', async () => {
    await writeFile(join(base, 'outside.yaml'), PROXY);
    await symlink('../outside.yaml', join(dir, 'lb.yaml'));
    const err = await refusal('link with ..', dir);
    expect(err.diagnostics[0]!.message).toMatch(/leads outside the config directory/);
  });

  it('follows a link that stays inside the directory (a ConfigMap volume: ..data -> a dated directory)', async () => {
    await mkdir(join(dir, '..2026_12_06'));
    await writeFile(join(dir, '..2026_12_06', 'lb.yaml'), PROXY);
    await symlink('..2026_12_06', join(dir, '..data'));
    await symlink('..data/lb.yaml', join(dir, 'lb.yaml'));
    const sources = await readConfigSources(dir);
    expect(sources).toEqual([{ file: join(dir, 'lb.yaml'), text: PROXY }]);
    // A single file that is such a link: its directory is the one that holds it.
    expect(await readConfigSources(join(dir, 'lb.yaml'))).toEqual([{ file: join(dir, 'lb.yaml'), text: PROXY }]);
    const { config } = await loadConfig(dir);
    expect(config.proxies.map((p) => p.name)).toEqual(['web']);
  });

  it('follows a config path that is itself a link to a directory', async () => {
    await writeFile(join(dir, 'lb.yaml'), PROXY);
    await symlink('config', join(base, 'current'));
    expect(await readConfigSources(join(base, 'current'))).toEqual([{ file: join(base, 'current', 'lb.yaml'), text: PROXY }]);
  });
});

describe('size caps', () => {
  it('defines the caps once: 4 MiB a file, 16 MiB in total, 1000 files', () => {
    expect(CONFIG_READ_LIMITS).toEqual({ maxFileBytes: 4 * MiB, maxTotalBytes: 16 * MiB, maxFiles: 1000 });
  });

  it('refuses 4 files of 16 MB by their open size, before reading any of them', async () => {
    for (const n of [1, 2, 3, 4]) await sparse(join(dir, `f${n}.yaml`), 16_000_000);
    const err = await refusal('4 files of 16 MB', dir);
    expect(err.format()).toBe(
      [1, 2, 3, 4].map((n) => `${join(dir, `f${n}.yaml`)}: is 16000000 bytes; a config file may hold at most 4 MiB (4194304 bytes)`).join('\n'),
    );
  });

  it('refuses files each within the per-file cap once together they pass the total cap, and stops reading there', async () => {
    for (const n of [1, 2, 3, 4, 5, 6]) await sparse(join(dir, `f${n}.yaml`), 4 * MiB);
    const err = await refusal('6 files of 4 MiB (total cap)', dir);
    expect(err.format()).toBe(
      `${join(dir, 'f5.yaml')}: brings the config files over 16 MiB (16777216 bytes), the limit for all files of one config together (reading stopped here)`,
    );
  });

  it('accepts a file of exactly the cap', async () => {
    const limits = { maxFileBytes: 100, maxTotalBytes: 1000, maxFiles: 10 };
    await writeFile(join(dir, 'a.yaml'), 'x'.repeat(100));
    const read = await readConfigFiles(dir, limits);
    expect(read.files.map((f) => f.bytes.byteLength)).toEqual([100]);
    await writeFile(join(dir, 'a.yaml'), 'x'.repeat(101));
    const err = await refusal('one byte over a 100-byte cap', dir, limits);
    expect(err.diagnostics[0]!.message).toBe('is 101 bytes; a config file may hold at most 100 bytes');
  });

  it('counts the total over the files read so far', async () => {
    const limits = { maxFileBytes: 400, maxTotalBytes: 1000, maxFiles: 10 };
    for (const n of [1, 2, 3, 4]) await writeFile(join(dir, `f${n}.yaml`), 'x'.repeat(400));
    const err = await refusal('total of small limits', dir, limits);
    expect(err.diagnostics.map((d) => d.file)).toEqual([join(dir, 'f3.yaml')]);
  });

  it('stops reading a file that holds more than its size said (it grows) at the cap', async () => {
    // A /proc file reports size 0 and yet has content, like a file growing between fstat and read.
    const limits = { maxFileBytes: 256, maxTotalBytes: 1024, maxFiles: 10 };
    const err = await refusal('file growing past the cap', '/proc/self/maps', limits);
    expect(err.format()).toBe('/proc/self/maps: grew past 256 bytes while being read; a config file may hold at most 256 bytes');
  });

  it('refuses a directory of more config files than allowed', async () => {
    const limits = { maxFileBytes: 100, maxTotalBytes: 1000, maxFiles: 3 };
    for (const n of [1, 2, 3, 4]) await writeFile(join(dir, `f${n}.yaml`), '');
    const err = await refusal('too many files', dir, limits);
    expect(err.format()).toBe(`${dir}: the directory has 4 config files; a config may have at most 3`);
  });
});

describe('ordinary reads', () => {
  it('reads the config files of a directory in merge order, with their mtimes', async () => {
    await writeFile(join(dir, 'b.yml'), 'settings: {}\n');
    await writeFile(join(dir, 'a.yaml'), PROXY);
    await writeFile(join(dir, 'notes.txt'), 'not a config\n');
    const read = await readConfigFiles(dir);
    expect(read.isDir).toBe(true);
    expect(read.files.map((f) => [f.name, f.file, f.bytes.toString('utf8')])).toEqual([
      ['a.yaml', join(dir, 'a.yaml'), PROXY],
      ['b.yml', join(dir, 'b.yml'), 'settings: {}\n'],
    ]);
    expect(read.files.every((f) => f.mtimeMs > 0)).toBe(true);
  });

  it('reports a missing path as before', async () => {
    const err = await refusal('missing', join(dir, 'nope.yaml'));
    expect(err.format()).toBe(`${join(dir, 'nope.yaml')}: cannot read: no such file or directory`);
  });
});
