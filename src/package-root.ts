// The lb package root: the directory holding package.json, next to build/, dist/ and examples/.
// Found from this module's own location, which is src/ (tsx, vitest) or dist/src/ (compiled), so
// paths to build outputs never depend on the working directory.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached !== undefined) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here, i = 0; i < 3; i++, dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return (cached = dir);
  }
  throw new Error(`cannot find lb's package.json above ${here}`);
}
