// The loader on hosts unlike the sandbox: no tracefs mounted (a microVM or container with its own
// init; libbpf needs /sys/kernel/tracing to attach the tracepoint programs), and a process under a
// CPU profiler (`node --cpu-prof`: SIGPROF every 50 us makes the verifier give up with EAGAIN unless
// the signal is blocked during the load). Each case runs the built loader in a child process; the
// tracefs case in a private mount namespace (unshare -m), so the host's mounts are never touched.
// Needs root; it fails (never skips) without it.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root.js';
import { ensureBuilt } from '../lib/build.js';

if (process.getuid?.() !== 0) {
  throw new Error('loader-host-conditions.test.ts must run as root: it loads BPF programs and mounts tracefs');
}

const root = packageRoot();
const run = `${process.pid}-${randomBytes(3).toString('hex')}`;
let scratch = '';
let script = '';

/** Loads every object into a fresh pin directory, reports whether tracefs is mounted after, removes the pins. */
const LOAD = `
import { loadAndPinAll } from ${JSON.stringify(join(root, 'dist/src/dataplane/loader.js'))};
import { ensureBpffs } from ${JSON.stringify(join(root, 'dist/src/dataplane/bpffs.js'))};
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
const dir = '/sys/fs/bpf/lbt-host-' + process.argv[2];
ensureBpffs();
mkdirSync(dir);
try {
  loadAndPinAll(${JSON.stringify(join(root, 'build/bpf'))}, dir);
  const tracefs = readFileSync('/proc/self/mounts', 'utf8').split('\\n').some((l) => l.split(' ')[1] === '/sys/kernel/tracing');
  console.log(JSON.stringify({ loaded: true, tracefs }));
} catch (err) {
  console.log(JSON.stringify({ loaded: false, error: err.message.split('\\n')[0] }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
`;

beforeAll(() => {
  ensureBuilt();
  scratch = mkdtempSync(join(tmpdir(), 'lbt-host-'));
  script = join(scratch, 'load.mjs');
  writeFileSync(script, LOAD);
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function load(argv: string[], tag: string): { loaded: boolean; tracefs?: boolean; error?: string } {
  const r = spawnSync(argv[0]!, [...argv.slice(1), script, `${run}-${tag}`], { encoding: 'utf8', timeout: 60_000, cwd: scratch });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { loaded: boolean; tracefs?: boolean; error?: string };
}

describe('loader on other hosts', () => {
  it('mounts tracefs when the host has not, then attaches the tracepoint programs', () => {
    // In a private mount namespace: tracefs unmounted there (every stacked mount), then the load.
    const unmountAll = 'while umount /sys/kernel/tracing 2>/dev/null; do :; done; ' +
      'if grep -q " /sys/kernel/tracing " /proc/self/mounts; then echo "tracefs still mounted" >&2; exit 3; fi; exec "$@"';
    const out = load(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', unmountAll, 'sh', process.execPath], 'tracefs');
    expect(out).toEqual({ loaded: true, tracefs: true });
  });

  it('loads under a CPU profiler sampling every 50 us', () => {
    const out = load([process.execPath, '--cpu-prof', '--cpu-prof-dir', scratch, '--cpu-prof-interval', '50'], 'prof');
    expect(out).toEqual({ loaded: true, tracefs: true });
  });
});
