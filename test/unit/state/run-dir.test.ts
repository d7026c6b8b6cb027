// writeFileAtomic in a directory others can write: a symlink planted at the old predictable temp
// name, at a guessed random name, or at the target itself never redirects the write. ensureDir
// repairs the mode (and, as root, the owner) of existing run directories and refuses a symlink.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

// The first random name writeFileAtomic draws is the one the test guessed; later ones are random.
const guessed = vi.hoisted(() => ({ bytes: [] as Buffer[] }));
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, randomBytes: (n: number) => guessed.bytes.shift() ?? real.randomBytes(n) };
});

const { ensureDir, writeFileAtomic } = await import('../../../src/state/run-dir.js');
const { isLbError } = await import('../../../src/core/errors.js');

const dir = mkdtempSync(join(tmpdir(), 'lb-run-dir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('does not write through a symlink planted at the old predictable temp name', () => {
    const victim = join(dir, 'victim-1');
    writeFileSync(victim, 'precious\n');
    const target = join(dir, 'plan-1.json');
    symlinkSync(victim, `${target}.tmp-${process.pid}`);
    writeFileAtomic(target, 'the plan\n');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(target).isFile()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('the plan\n');
  });

  it('a symlink at a guessed random name makes that name fail; another one is used, the link target is untouched', () => {
    const victim = join(dir, 'victim-2');
    writeFileSync(victim, 'precious\n');
    const target = join(dir, 'plan-2.json');
    const guess = Buffer.alloc(12, 0xab);
    symlinkSync(victim, `${target}.tmp-${guess.toString('hex')}`);
    guessed.bytes.push(guess);
    writeFileAtomic(target, 'the plan\n');
    expect(guessed.bytes, 'the guessed name was drawn').toHaveLength(0);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(target, 'utf8')).toBe('the plan\n');
    expect(statSync(target).mode & 0o777).toBe(0o600);
    // Only the planted link is left beside the target: the temp file was renamed.
    expect(readdirSync(dir).filter((n) => n.startsWith('plan-2.json.tmp-'))).toEqual([`plan-2.json.tmp-${guess.toString('hex')}`]);
  });

  it('a symlink at the target itself is replaced, not followed', () => {
    const victim = join(dir, 'victim-3');
    writeFileSync(victim, 'precious\n');
    const target = join(dir, 'plan-3.json');
    symlinkSync(victim, target);
    writeFileAtomic(target, 'the plan\n');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(target).isSymbolicLink()).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('the plan\n');
  });
});

describe('ensureDir', () => {
  const isRoot = process.getuid?.() === 0;

  it('repairs the mode (and as root the owner) of an existing run directory and of its ancestors up to the run root', () => {
    const above = join(dir, 'above');
    const root = join(above, 'run-lb');
    const inst = join(root, 'inst');
    mkdirSync(inst, { recursive: true });
    chmodSync(above, 0o755);
    chmodSync(root, 0o777);
    chmodSync(inst, 0o755);
    if (isRoot) {
      chownSync(root, 65534, 65534);
      chownSync(inst, 65534, 65534);
    }
    expect(ensureDir(inst, { root })).toBe(inst);
    for (const d of [root, inst]) {
      const st = statSync(d);
      expect(st.mode & 0o7777, d).toBe(0o700);
      if (isRoot) expect([st.uid, st.gid], d).toEqual([0, process.getegid!()]);
    }
    expect(statSync(above).mode & 0o777, 'nothing above the run root is touched').toBe(0o755);
  });

  it('creates a missing directory with mode 0700', () => {
    const d = join(dir, 'fresh', 'inst');
    ensureDir(d, { root: join(dir, 'fresh') });
    expect(statSync(d).mode & 0o777).toBe(0o700);
  });

  it('refuses a symlink in place of a run directory, leaving what it points to alone', () => {
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o755 });
    chmodSync(elsewhere, 0o755);
    const root = join(dir, 'run-lb-2');
    mkdirSync(root);
    symlinkSync(elsewhere, join(root, 'inst'));
    let err: unknown;
    try {
      ensureDir(join(root, 'inst'), { root });
    } catch (e) {
      err = e;
    }
    expect(isLbError(err, 'LB_STATE_RUNDIR')).toBe(true);
    expect(statSync(elsewhere).mode & 0o777).toBe(0o755);
    expect(existsSync(join(elsewhere, 'lock'))).toBe(false);
  });
});
