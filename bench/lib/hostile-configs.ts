// The hostile inputs of the [ingest] issue, each run through the built `lb validate --config` in a
// fresh process: what test/integration/hostile-config-files.test.ts holds to exit 1 with a
// located, escaped, bounded error, and what bench/hostile.ts times (wall time and peak RSS). One
// list, so the test and the figures cover the same cases.

import { spawnSync } from 'node:child_process';
import { mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';

export const CLI = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');

/** What every case must stay under (the issue's goal); time is printed, RSS is asserted by the test. */
export const HOSTILE_MAX_MS = 5_000;
export const HOSTILE_MAX_RSS_MIB = 512;

export const SECRET_LINE = 'root:$6$saltsalt$TOPSECRETHASHVALUE:19000:0:99999:7:::';
const PROXY = 'proxies:\n  - name: web\n    listen: {interfaces: [lo], port: 80}\n    default-target: [{ip: 10.0.0.1, port: 8080}]\n';

const range = (n: number, f: (i: number) => string): string => Array.from({ length: n }, (_, i) => f(i)).join(' ');

export interface HostileCase {
  name: string;
  /** Makes the input under `base` (a fresh directory per case); the path given as --config. */
  make(base: string): Promise<string>;
  /** Text the output must hold (the path given is passed in): the located error. */
  expect(path: string): string[];
  /** Text the output must not hold (a secret it refused to read). */
  never?: string[];
}

async function file(base: string, name: string, text: string): Promise<string> {
  const p = join(base, name);
  await writeFile(p, text);
  return p;
}

async function dirWithProxy(base: string): Promise<string> {
  const dir = join(base, 'config.d');
  await mkdir(dir);
  await writeFile(join(dir, 'a.yaml'), PROXY);
  return dir;
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo ${path} failed: ${r.stderr.toString()}`);
}

/** The cases, in the order of the issue's table, then those found since. */
export const HOSTILE_CASES: HostileCase[] = [
  {
    name: 'an EDN set of 200k integers',
    make: (b) => file(b, 'ints.edn', `{:proxies [] :settings {:x #{${range(200_000, String)} 7}}}`),
    expect: (p) => [`${p}:1:`, 'duplicate set element 7'],
  },
  {
    name: 'an EDN set of 100k strings',
    make: (b) => file(b, 'strings.edn', `{:proxies [] :settings {:x #{${range(100_000, (i) => `"s${i}"`)} "s3"}}}`),
    expect: (p) => [`${p}:1:`, 'duplicate set element "s3"'],
  },
  {
    name: 'a listener with 100k interface names',
    make: (b) => file(b, 'ifaces.edn', `{:proxies [{:name "a" :listen {:port 80 :interfaces [${range(100_000, (i) => `"e${i}"`)} "e0"]} :default-target [{:ip "10.0.0.1" :port 80}]}]}`),
    expect: (p) => [`${p}:1:`, '/proxies/0/listen/interfaces/100000'],
  },
  {
    name: '20k invalid proxies',
    make: (b) => file(b, 'invalid.edn', `{:proxies [${range(20_000, (i) => `{:name "p${i}" :listen {:interfaces ["eth0"] :port "x"} :default-target [{:ip "10.0.0.1" :port 80}]}`)}]}`),
    expect: (p) => [`${p}:1:`, '/proxies/0/listen/port', 'and 19900 more errors (only the first 100 diagnostics are listed)'],
  },
  {
    name: '40k unknown settings keys',
    make: (b) => file(b, 'keys.edn', `{:proxies [] :settings {${range(40_000, (i) => `:unknown-key-${i} 1`)}}}`),
    expect: (p) => [`${p}:1:`, 'unknown key "unknown-key-0"', 'and 39900 more errors'],
  },
  {
    name: 'a 200 KB keyword',
    make: (b) => file(b, 'keyword.edn', `{:proxies [] :settings {:${'a-'.repeat(100_000)}x 1}}`),
    expect: (p) => [`${p}:1:25:`, '... (200001 characters)'],
  },
  {
    name: 'a key holding terminal escape sequences',
    make: (b) => file(b, 'escapes.yaml', `${PROXY}settings:\n  "\\e[31mred\\e]0;pwned\\a\\e[0m": 1\n`),
    expect: (p) => [`${p}:6:3:`, 'unknown key "\\u001b[31mred\\u001b]0;pwned\\u0007\\u001b[0m"'],
  },
  {
    name: 'a FIFO as --config',
    make: async (b) => {
      const p = join(b, 'fifo.yaml');
      mkfifo(p);
      return p;
    },
    expect: (p) => [`${p}: is a FIFO (named pipe); a config file must be a regular file`],
  },
  {
    name: 'a symlink to /dev/zero as --config',
    make: async (b) => {
      const p = join(b, 'zero.yaml');
      await symlink('/dev/zero', p);
      return p;
    },
    expect: (p) => [`${p}: is a symbolic link that leads outside the config directory`],
  },
  {
    name: '4 files of 16 MB each in a --config directory',
    make: async (b) => {
      const dir = join(b, 'big');
      await mkdir(dir);
      for (const n of [1, 2, 3, 4]) {
        const fh = await open(join(dir, `f${n}.yaml`), 'w');
        await fh.truncate(16_000_000);
        await fh.close();
      }
      return dir;
    },
    expect: (p) => [1, 2, 3, 4].map((n) => `${join(p, `f${n}.yaml`)}: is 16000000 bytes; a config file may hold at most 4 MiB (4194304 bytes)`),
  },
  {
    name: 'a link to a secret file outside the config directory',
    make: async (b) => {
      const dir = await dirWithProxy(b);
      await writeFile(join(b, 'shadow'), `${SECRET_LINE}\ndaemon:*:19000:0:99999:7:::\n`);
      await symlink(join(b, 'shadow'), join(dir, 'shadow.yaml'));
      return dir;
    },
    expect: (p) => [`${join(p, 'shadow.yaml')}: is a symbolic link that leads outside the config directory`],
    never: ['TOPSECRET', 'daemon:'],
  },
  {
    name: 'a directory named x.yaml and a FIFO in a --config directory',
    make: async (b) => {
      const dir = await dirWithProxy(b);
      await mkdir(join(dir, 'x.yaml'));
      mkfifo(join(dir, 'b.yaml'));
      return dir;
    },
    expect: (p) => [`${join(p, 'b.yaml')}: is a FIFO (named pipe)`, `${join(p, 'x.yaml')}: is a directory`],
  },
  {
    name: 'a device node inside the config directory (mknod: root)',
    make: async (b) => {
      const dir = await dirWithProxy(b);
      const r = spawnSync('mknod', [join(dir, 'zero.yaml'), 'c', '1', '5']);
      if (r.status !== 0) throw new Error(`mknod failed: ${r.stderr.toString()}`);
      return dir;
    },
    expect: (p) => [`${join(p, 'zero.yaml')}: is a character device; a config file must be a regular file`],
  },
  // Found since the issue was filed.
  {
    name: 'YAML: 1M nested [ on one line',
    make: (b) => file(b, 'nested.yaml', `proxies: ${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}\n`),
    expect: (p) => [`${p}:1:110: nesting deeper than 100 levels`],
  },
  {
    name: 'YAML: 200k nested [, one a line',
    make: (b) => file(b, 'nested-lines.yaml', `proxies:\n${Array.from({ length: 200_000 }, () => '[').join('\n')}\n`),
    expect: (p) => [`${p}:102:1: nesting deeper than 100 levels`],
  },
  {
    name: 'YAML: 1,500 block mappings, each one space deeper',
    make: (b) => file(b, 'indented.yaml', `${Array.from({ length: 1500 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')} 1\n`),
    expect: (p) => [`${p}:101:101: nesting deeper than 100 levels`],
  },
  {
    name: 'EDN: 1M nested vectors',
    make: (b) => file(b, 'nested.edn', `{:proxies ${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`),
    expect: (p) => [`${p}:1:111: nesting deeper than 100 levels`],
  },
  {
    name: 'a YAML alias bomb (billion laughs)',
    make: (b) => {
      const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
      for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
      return file(b, 'laughs.yaml', `${lines.join('\n')}\nproxies: []\n`);
    },
    expect: (p) => [`${p}:1:13: aliases expand to more than 10000 values`],
  },
  {
    name: '15k unknown keys of 200 characters of escapes each',
    make: (b) => file(b, 'escape-keys.yaml', `proxies: []\nsettings:\n${Array.from({ length: 15_000 }, (_, i) => `  "${'\\e[2J'.repeat(40)}${i}": 1`).join('\n')}\n`),
    expect: (p) => [`${p}:3:3:`, 'and 14900 more errors'],
  },
];

export interface HostileRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  /** Peak RSS of the CLI process, as it reported it on exit (spawnSync gives no rusage). */
  rssMiB: number | null;
  output: string;
}

/** A preload that makes the child print its own peak RSS on exit. */
export async function writeRssPreload(dir: string): Promise<string> {
  const p = join(dir, 'maxrss.mjs');
  await writeFile(p, "import { writeSync } from 'node:fs';\nprocess.on('exit', () => writeSync(2, `\\n[maxrss ${process.resourceUsage().maxRSS} KiB]\\n`));\n");
  return p;
}

/** `lb validate --config path` in a fresh process, bounded by 30 s (a hang ends as a signal). */
export function validateHostile(path: string, preload: string): HostileRun {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', preload, CLI, 'validate', '--config', path], {
    cwd: packageRoot(), encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' },
  });
  const ms = performance.now() - t0;
  const all = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const rss = /\[maxrss (\d+) KiB\]/.exec(all)?.[1];
  return { code: r.status, signal: r.signal, ms, rssMiB: rss ? Number(rss) / 1024 : null, output: all.replace(/\n\[maxrss \d+ KiB\]\n/, '') };
}
