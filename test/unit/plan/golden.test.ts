// Golden plans: for every case in test/fixtures/plans, the live state is the compiled
// before-config read back through encode/decode (empty when there is none), the desired state is
// the compiled after-config, and the rendered plan must equal the committed expected-plan.*.
// UPDATE_GOLDEN=1 rewrites the expected files (review the diff before committing).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffStates } from '../../../src/core/plan/plan.js';
import { renderJson } from '../../../src/core/plan/render-json.js';
import { renderMarkdown } from '../../../src/core/plan/render-markdown.js';
import { renderText } from '../../../src/core/plan/render-text.js';
import { PLANS_DIR, compilePath, configPath, liveState, planCases } from './golden-support.js';

const update = process.env.UPDATE_GOLDEN === '1';

function golden(file: string, actual: string, required: boolean): void {
  if (update && (required || existsSync(file))) writeFileSync(file, actual);
  if (!existsSync(file)) {
    expect(required, `${file} is missing (run with UPDATE_GOLDEN=1)`).toBe(false);
    return;
  }
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

describe('golden plans', () => {
  const cases = planCases();

  it('has at least twelve cases, one with every rendering', () => {
    expect(cases.length).toBeGreaterThanOrEqual(12);
    for (const c of cases) expect(configPath(join(PLANS_DIR, c), 'after'), c).toBeDefined();
    expect(cases.some((c) => existsSync(join(PLANS_DIR, c, 'expected-plan.md')))).toBe(true);
  });

  for (const name of cases) {
    it(name, async () => {
      const dir = join(PLANS_DIR, name);
      const live = await liveState(dir);
      const { state: desired, diagnostics } = await compilePath(configPath(dir, 'after')!);
      const plan = diffStates(desired, live);
      golden(join(dir, 'expected-plan.txt'), renderText(plan, { diagnostics }), true);
      golden(join(dir, 'expected-plan.json'), renderJson(plan, { diagnostics }), false);
      golden(join(dir, 'expected-plan.md'), renderMarkdown(plan, { diagnostics }), false);
      // Applying the plan reaches the desired state: nothing is left to change.
      expect(diffStates(desired, desired).changes).toEqual([]);
    });
  }
});
