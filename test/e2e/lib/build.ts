// The e2e tests run compiled code in their namespaces (the agent, the backend servers): make sure
// dist/ is there and not older than the sources it comes from.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../src/package-root.js';

export const ROOT = packageRoot();

function stale(): string[] {
  const out: string[] = [];
  for (const dir of ['src/dataplane', 'src/sandbox']) {
    for (const f of readdirSync(join(ROOT, dir)).filter((n) => n.endsWith('.ts'))) {
      const js = join(ROOT, 'dist', dir, f.replace(/\.ts$/, '.js'));
      if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(ROOT, dir, f)).mtimeMs) out.push(js);
    }
  }
  return out;
}

/** Rebuilds dist/ (tsc -p tsconfig.build.json) when a compiled data-plane or sandbox file is stale. */
export function ensureBuilt(): void {
  if (stale().length === 0) return;
  // tsc emits even when unrelated parts of the tree have type errors; the check below is what counts.
  spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore', timeout: 180_000 });
  const left = stale();
  if (left.length > 0) throw new Error(`dist/ is stale after \`npx tsc -p tsconfig.build.json\`: ${left.join(', ')}`);
}
