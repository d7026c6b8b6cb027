// Tests that run compiled code (the CLI, the daemon, backend servers, the agent) need dist/ to
// match src/. `make test` builds first; running vitest directly may not have: rebuild when any
// compiled file is missing or older than its source.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';

const ROOT = packageRoot();

function staleOutputs(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts')) {
        const js = join(ROOT, 'dist', rel.replace(/\.ts$/, '.js'));
        if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(ROOT, rel)).mtimeMs) out.push(js);
      }
    }
  };
  walk('src');
  return out;
}

/** Rebuilds dist/ (tsc -p tsconfig.build.json) when a compiled file is missing or stale. */
export function ensureBuilt(): void {
  if (staleOutputs().length === 0) return;
  // tsc emits even when unrelated parts of the tree have type errors; the check below is what counts.
  spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore', timeout: 180_000 });
  const left = staleOutputs();
  if (left.length > 0) throw new Error(`dist/ is stale after \`npx tsc -p tsconfig.build.json\`: ${left.slice(0, 5).join(', ')}`);
  // The precompiled config validator too, as `make ts` does: it holds the code of lb's own ajv
  // keywords (uniqueItems), which its freshness check (a digest of the schema) does not cover.
  const pre = spawnSync(process.execPath, ['scripts/precompile-schema.mjs'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (pre.status !== 0) throw new Error(`scripts/precompile-schema.mjs failed: ${pre.stderr.trim()}`);
}
