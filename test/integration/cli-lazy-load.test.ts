// `lb validate` and `lb plan --help` load what they use and no more (src/cli/command-choices.ts):
// the built CLI runs with a module resolve hook that names every file it loads, and none of the
// apply, the data plane, the daemon, git, OpenPGP, the FFI or the metrics may be among them for
// validate, nor ajv's schema compiler (the build precompiles the schema). The whole program (its
// help, every command's options) is still there.

import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT } from '../lib/cli.js';
import { removeDir, tempDir } from '../lib/git-fixtures.js';

const HOOK = `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
export async function resolve(spec, ctx, next) {
  const r = await next(spec, ctx);
  if (r.url.startsWith('file:')) process.stderr.write('[loaded ' + r.url + ']\\\\n');
  return r;
}\`));
`;

let dir: string;
let hook: string;

beforeAll(async () => {
  dir = await tempDir('lb-lazy-');
  hook = join(dir, 'hook.mjs');
  await writeFile(hook, HOOK);
  await writeFile(join(dir, 'lb.yaml'), 'proxies:\n  - name: web\n    listen: {interfaces: [lo], port: 80}\n    default-target: [{ip: 10.0.0.1, port: 8080}]\n');
});

afterAll(async () => {
  await removeDir(dir);
});

function loaded(args: string[]): { code: number | null; stdout: string; files: string[] } {
  const r = spawnSync(process.execPath, ['--import', hook, CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const files = [...r.stderr.matchAll(/^\[loaded file:\/\/(.*)\]$/gm)].map((m) => m[1]!.slice(ROOT.length + 1));
  return { code: r.status, stdout: r.stdout, files };
}

/** What validate has no use for: the kernel side, the daemon, git and signatures, the FFI. */
const NOT_FOR_VALIDATE = /^dist\/src\/(apply|dataplane|reconcile|runtime|webhook|acceptor|observe|state|forge)\/|^dist\/src\/daemon\/(?!version\.js$)|^node_modules\/(openpgp|koffi|isomorphic-git|pino|prom-client|node-cron)\//;

describe('the CLI loads each command\'s modules when it runs', () => {
  it('lb validate loads the config checks, and nothing of the apply, the data plane, the daemon or git', () => {
    const r = loaded(['validate', '--config', join(dir, 'lb.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('config valid: 1 proxy, 1 target');
    expect(r.files.some((f) => f.startsWith('dist/src/core/config/')), 'the hook saw the config modules').toBe(true);
    expect(r.files.filter((f) => NOT_FOR_VALIDATE.test(f))).toEqual([]);
    // The schema comes precompiled by the build (src/core/config/schema.ts): ajv's compiler is not loaded.
    expect(r.files).toContain('dist/src/core/config/config-validator.generated.js');
    expect(r.files.filter((f) => f === 'dist/src/core/config/schema-compile.js' || f.startsWith('node_modules/ajv/'))).toEqual([]);
  });

  it('lb --help still lists every command, and lb plan --help its revision options, without loading them', () => {
    const help = loaded(['--help']);
    expect(help.stdout).toMatch(/^ {2}daemon\b/m);
    expect(help.files.filter((f) => f.startsWith('dist/src/cli/commands/'))).toEqual([]);
    const plan = loaded(['plan', '--help']);
    expect(plan.stdout).toContain('--against-status <node>');
    expect(plan.files.filter((f) => /^dist\/src\/(apply|dataplane)\//.test(f))).toEqual([]);
  });
});
