// `lb validate --config` (the built CLI) against hostile config paths: each must end with exit 1
// and a located error, without hanging, reading a device, or echoing a file it refused. As root,
// a device node inside the config directory is refused by type too. Each run's wall time and peak
// RSS (reported by the child itself) are printed, never asserted.

import { spawnSync } from 'node:child_process';
import { mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT } from '../lib/cli.js';
import { removeDir, tempDir } from '../lib/git-fixtures.js';

const SECRET = 'root:$6$saltsalt$TOPSECRETHASHVALUE:19000:0:99999:7:::';
const PROXY = 'proxies:\n  - name: web\n    listen: {interfaces: [lo], port: 80}\n    default-target: [{ip: 10.0.0.1, port: 8080}]\n';

let base: string;
/** A preload that makes the child print its own peak RSS on exit (spawnSync gives no rusage). */
let preload: string;

beforeAll(async () => {
  base = await tempDir('lb-hostile-cli-');
  preload = join(base, 'maxrss.mjs');
  await writeFile(
    preload,
    "import { writeSync } from 'node:fs';\nprocess.on('exit', () => writeSync(2, `\\n[maxrss ${process.resourceUsage().maxRSS} KiB]\\n`));\n",
  );
});

afterAll(async () => {
  await removeDir(base);
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** `lb validate --config path`, bounded by a 30 s timeout (a hang ends as a signal, and fails). */
function validate(label: string, path: string): Run {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', preload, CLI, 'validate', '--config', path], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, NO_COLOR: '1' },
  });
  const ms = performance.now() - t0;
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const rss = /\[maxrss (\d+) KiB\]/.exec(output)?.[1];
  console.log(`[hostile-cli] ${label}: exit ${r.status ?? r.signal} in ${ms.toFixed(0)} ms, peak RSS ${rss ? `${(Number(rss) / 1024).toFixed(0)} MiB` : 'unknown'}`);
  return { code: r.status, signal: r.signal, output: output.replace(/\n\[maxrss \d+ KiB\]\n/, '') };
}

async function configDir(name: string): Promise<string> {
  const dir = join(base, name);
  await mkdir(dir);
  await writeFile(join(dir, 'a.yaml'), PROXY);
  return dir;
}

describe('lb validate against hostile config paths', () => {
  it('a FIFO as --config: exit 1 at once, naming it', async () => {
    const fifo = join(base, 'fifo.yaml');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const r = validate('FIFO as --config', fifo);
    expect(r).toMatchObject({ code: 1, signal: null });
    expect(r.output).toContain(`${fifo}: is a FIFO (named pipe); a config file must be a regular file`);
  });

  it('a symlink to /dev/zero as --config: exit 1 without reading it', async () => {
    const link = join(base, 'zero.yaml');
    await symlink('/dev/zero', link);
    const r = validate('link to /dev/zero as --config', link);
    expect(r).toMatchObject({ code: 1, signal: null });
    expect(r.output).toContain(`${link}: is a symbolic link that leads outside the config directory ${base}`);
  });

  it('4 files of 16 MB in a --config directory: refused by the per-file cap', async () => {
    const dir = join(base, 'big');
    await mkdir(dir);
    for (const n of [1, 2, 3, 4]) {
      const fh = await open(join(dir, `f${n}.yaml`), 'w');
      await fh.truncate(16_000_000);
      await fh.close();
    }
    const r = validate('4 files of 16 MB', dir);
    expect(r).toMatchObject({ code: 1, signal: null });
    expect(r.output).toContain(`${join(dir, 'f1.yaml')}: is 16000000 bytes; a config file may hold at most 4 MiB (4194304 bytes)`);
  });

  it('a link to a secret file outside the directory: refused, its content never printed', async () => {
    const dir = await configDir('leak');
    await writeFile(join(base, 'shadow'), `${SECRET}\ndaemon:*:19000:0:99999:7:::\n`);
    await symlink(join(base, 'shadow'), join(dir, 'shadow.yaml'));
    const r = validate('link to a secret outside', dir);
    expect(r).toMatchObject({ code: 1, signal: null });
    expect(r.output).toContain(`${join(dir, 'shadow.yaml')}: is a symbolic link that leads outside the config directory`);
    expect(r.output).not.toContain('TOPSECRET');
    expect(r.output).not.toContain('daemon:');
  });

  it('a directory named x.yaml and a FIFO in a --config directory: both named', async () => {
    const dir = await configDir('entries');
    await mkdir(join(dir, 'x.yaml'));
    expect(spawnSync('mkfifo', [join(dir, 'b.yaml')]).status).toBe(0);
    const r = validate('directory entry and FIFO', dir);
    expect(r).toMatchObject({ code: 1, signal: null });
    expect(r.output).toContain(`${join(dir, 'b.yaml')}: is a FIFO (named pipe)`);
    expect(r.output).toContain(`${join(dir, 'x.yaml')}: is a directory`);
  });

  it('a device node inside the directory (made as root): refused by type', async () => {
    const dir = await configDir('device');
    expect(spawnSync('mknod', [join(dir, 'zero.yaml'), 'c', '1', '5']).status).toBe(0);
    const r = validate('device node inside the directory', dir);
    expect(r).toMatchObject({ code: 1, signal: null });
    expect(r.output).toContain(`${join(dir, 'zero.yaml')}: is a character device; a config file must be a regular file`);
  });

  it('a symlink that stays inside the directory is followed', async () => {
    const dir = join(base, 'inside');
    await mkdir(join(dir, '..2026'), { recursive: true });
    await writeFile(join(dir, '..2026', 'lb.yaml'), PROXY);
    await symlink('..2026/lb.yaml', join(dir, 'lb.yaml'));
    const r = validate('link inside the directory', dir);
    // lo exists everywhere: the config is valid.
    expect(r).toMatchObject({ code: 0, signal: null });
  });
});
