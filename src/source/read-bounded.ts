// The one reader of config files from disk, for `lb validate/plan/apply --config` (load-config.ts)
// and the daemon's FileSource alike. A config path is operator input, but what sits at it may not
// be what the operator meant: a FIFO (reading blocks forever), a link to /dev/zero (endless), a
// link to /etc/shadow (its lines would come back as "unknown key" diagnostics), a huge file. So:
//   - only regular files are read; FIFOs, sockets, devices and directories are refused by type;
//   - a symbolic link is followed only when its target stays inside the config directory (for a
//     single file, the directory that holds it);
//   - sizes are capped per file and in total, on the open file: at most cap+1 bytes are read, so a
//     file that grows while being read, or a device, cannot go past the cap;
//   - a refusal names the file and what was expected, never anything read from it.
// docs/config.md "Limits" documents the values; change them here only.

import { constants } from 'node:fs';
import { lstat, open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { ConfigError } from '../core/config/config-error.js';
import type { Diagnostic } from '../core/config/diagnostics.js';
import { selectConfigFiles } from '../core/config/read-source.js';

const MiB = 1024 * 1024;

export interface ConfigReadLimits {
  /** Bytes one config file may hold. */
  readonly maxFileBytes: number;
  /** Bytes all config files of one config (a directory) may hold together. */
  readonly maxTotalBytes: number;
  /** Config files (*.yaml, *.yml, *.edn) one directory may hold. */
  readonly maxFiles: number;
}

/**
 * The largest real config we know of (10,000 proxies) is about 2 MB of YAML; these leave room for
 * twice that in one file and four such files, while keeping what the checks must hold in memory
 * small enough for the daemon.
 */
export const CONFIG_READ_LIMITS: ConfigReadLimits = Object.freeze({ maxFileBytes: 4 * MiB, maxTotalBytes: 16 * MiB, maxFiles: 1000 });

export interface ConfigFileBytes {
  /** The entry's name in its directory (for a single file, its base name). */
  name: string;
  /** As the user knows it: the path given, or the directory given joined with the name. */
  file: string;
  bytes: Buffer;
  mtimeMs: number;
}

export interface ConfigFilesRead {
  isDir: boolean;
  /** Merge order (see selectConfigFiles). */
  files: ConfigFileBytes[];
  /** Modification time of the path given (the directory, or the single file). */
  mtimeMs: number;
}

// O_NONBLOCK: if the entry is swapped for a FIFO between the type check and the open, the open
// still returns at once (and the fstat refuses it). O_NOFOLLOW: the path opened is a realpath, so
// a link in its last component means it was swapped; refuse rather than follow it anywhere.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;
/** Read size once the file has turned out larger than its fstat size said (it grows). */
const GROWTH_CHUNK = 64 * 1024;

/**
 * Reads the config at `path`: one file, or the *.yaml / *.yml / *.edn entries of a directory (not
 * its subdirectories). Throws ConfigError (stage io, LB_CONFIG_IO) naming every refused file.
 */
export async function readConfigFiles(path: string, limits: ConfigReadLimits = CONFIG_READ_LIMITS): Promise<ConfigFilesRead> {
  // stat follows links: `--config` may name a link to the config directory (the operator chose
  // it). It opens nothing, so a FIFO or a device here is harmless; the entries are checked below.
  const top = await stat(path).catch((err: NodeJS.ErrnoException) => fail(path, cannotRead(err), err));
  const isDir = top.isDirectory();
  const dir = isDir ? path : dirname(path);
  const root = await realpath(dir).catch((err: NodeJS.ErrnoException) => fail(dir, cannotRead(err), err));

  let entries: { name: string; file: string }[];
  if (isDir) {
    const names = selectConfigFiles(await readdir(path).catch((err: NodeJS.ErrnoException) => fail(path, cannotRead(err), err)));
    if (names.length === 0) fail(path, 'the directory has no *.yaml, *.yml or *.edn files');
    if (names.length > limits.maxFiles) {
      fail(path, `the directory has ${names.length} config files; a config may have at most ${limits.maxFiles}`);
    }
    entries = names.map((name) => ({ name, file: join(path, name) }));
  } else {
    entries = [{ name: basename(path), file: path }];
  }

  const files: ConfigFileBytes[] = [];
  const problems: Diagnostic[] = [];
  let total = 0;
  for (const entry of entries) {
    const got = await readEntry(root, dir, entry.name, limits.maxTotalBytes - total, limits);
    if ('problem' in got) {
      problems.push(diagnostic(entry.file, got.problem));
      if (got.stop) break;
      continue;
    }
    total += got.bytes.byteLength;
    files.push({ name: entry.name, file: entry.file, bytes: got.bytes, mtimeMs: got.mtimeMs });
  }
  if (problems.length > 0) throw new ConfigError('io', problems);
  return { isDir, files, mtimeMs: top.mtimeMs };
}

type EntryRead = { bytes: Buffer; mtimeMs: number } | { problem: string; stop?: boolean };

/** One entry of the real directory `root` (`dir` as the user named it), with `budget` bytes left of the total. */
async function readEntry(root: string, dir: string, name: string, budget: number, limits: ConfigReadLimits): Promise<EntryRead> {
  const fileCap = limits.maxFileBytes;
  const at = join(root, name);
  let real: string;
  try {
    real = await realpath(at);
  } catch (err) {
    return { problem: cannotRead(err as NodeJS.ErrnoException) };
  }
  const linked = real !== at;
  if (!inside(root, real)) {
    return { problem: `is a symbolic link that leads outside the config directory ${dir}; only links that stay inside it are followed` };
  }
  // Checked before opening too: opening a device can have effects of its own (a tape rewinds, a
  // watchdog arms). The check that counts is the fstat of the open file below.
  let pre: Stats;
  try {
    pre = await lstat(real);
  } catch (err) {
    return { problem: cannotRead(err as NodeJS.ErrnoException) };
  }
  if (!pre.isFile()) return { problem: notRegular(pre, linked) };

  let fh: FileHandle;
  try {
    fh = await open(real, OPEN_FLAGS);
  } catch (err) {
    return { problem: cannotRead(err as NodeJS.ErrnoException) };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { problem: notRegular(st, linked) };
    if (st.size > fileCap) return { problem: `is ${st.size} bytes; ${perFileLimit(fileCap)}` };
    if (st.size > budget) return { problem: overTotal(limits), stop: true };
    const cap = Math.min(fileCap, budget);
    const bytes = await readAtMost(fh, cap, st.size);
    if (bytes === undefined) {
      return cap === fileCap ? { problem: `grew past ${describeBytes(fileCap)} while being read; ${perFileLimit(fileCap)}` } : { problem: overTotal(limits), stop: true };
    }
    return { bytes, mtimeMs: st.mtimeMs };
  } catch (err) {
    return { problem: cannotRead(err as NodeJS.ErrnoException) };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * The file's bytes, or undefined when it holds more than `cap`. Reads at most cap+1 bytes
 * whatever the file does meanwhile: the first read asks for the fstat size plus one (so one more
 * read of 0 bytes confirms the end), later ones for small chunks.
 */
async function readAtMost(fh: FileHandle, cap: number, sizeHint: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let length = 0;
  // Every pass reads at least one byte or ends, and length may not pass cap+1: bounded.
  while (length <= cap) {
    const want = Math.min(cap + 1 - length, length === 0 ? sizeHint + 1 : GROWTH_CHUNK);
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await fh.read(buf, 0, want, length);
    if (bytesRead === 0) break;
    chunks.push(buf.subarray(0, bytesRead));
    length += bytesRead;
  }
  if (length > cap) return undefined;
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
}

/** Whether `p` is `root` or below it (both real paths). */
function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`));
}

function notRegular(st: Stats, linked: boolean): string {
  const kind = st.isFIFO()
    ? 'a FIFO (named pipe)'
    : st.isSocket()
      ? 'a socket'
      : st.isCharacterDevice()
        ? 'a character device'
        : st.isBlockDevice()
          ? 'a block device'
          : st.isDirectory()
            ? 'a directory'
            : 'not a regular file';
  return `${linked ? 'is a symbolic link to' : 'is'} ${kind}; a config file must be a regular file (config directories are not read recursively)`;
}

function perFileLimit(cap: number): string {
  return `a config file may hold at most ${describeBytes(cap)}`;
}

function overTotal(limits: ConfigReadLimits): string {
  return `brings the config files over ${describeBytes(limits.maxTotalBytes)}, the limit for all files of one config together (reading stopped here)`;
}

function describeBytes(n: number): string {
  return n % MiB === 0 ? `${n / MiB} MiB (${n} bytes)` : `${n} bytes`;
}

function cannotRead(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return 'cannot read: no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'cannot read: permission denied';
    case 'EISDIR':
      return 'cannot read: is a directory';
    case 'ELOOP':
      return 'cannot read: too many levels of symbolic links (or the file was replaced by a link while being read)';
    case 'ENXIO':
      return 'cannot read: no such device or address (a socket or a device without a driver)';
    default:
      return `cannot read: ${err.code ?? err.message}`;
  }
}

function diagnostic(file: string, message: string): Diagnostic {
  return { severity: 'error', stage: 'io', file, pointer: '', message };
}

function fail(file: string, message: string, cause?: unknown): never {
  throw new ConfigError('io', [diagnostic(file, message)], cause === undefined ? undefined : { cause });
}
