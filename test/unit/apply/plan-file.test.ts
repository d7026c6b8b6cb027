// Saved plans are not trusted: a file edited after `lb plan --out` is refused by its digest, and a
// file whose digest was recomputed after the edit is refused because its generation, target ids or
// summary do not follow from its desired state. The host is a fake (no kernel).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planFileDigest, readPlanFile, toPlanFile, writePlanFile, type PlanFile } from '../../../src/apply/plan-file.js';
import { recomputePlanFile } from '../../../src/apply/plan-file-check.js';
import { preparePlan } from '../../../src/apply/prepare.js';
import { isLbError, type LbError } from '../../../src/core/errors.js';
import { EMPTY_LIVE, FAKE_HOST } from './fake-host.js';

const dir = mkdtempSync(join(tmpdir(), 'lb-plan-file-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, 'lb.yaml');
writeFileSync(config, `proxies:
  - name: web
    listen: {interfaces: [lo], port: 80, address: 10.0.0.10}
    default-target:
      - {ip: 10.0.1.1, port: 8080, weight: 3}
      - {ip: 10.0.1.2, port: 8080, weight: 1}
`);

const host = FAKE_HOST;

let n = 0;
/** Saves a fresh plan, lets `edit` change its JSON, writes it back; the digest is recomputed when asked. */
async function savedPlan(edit: (f: PlanFile) => void = () => {}, opts: { redigest?: boolean } = {}): Promise<string> {
  const path = join(dir, `plan-${++n}.json`);
  writePlanFile(path, toPlanFile(await preparePlan({ instance: 'unit', configPath: config, host })));
  const file = JSON.parse(readFileSync(path, 'utf8')) as PlanFile;
  edit(file);
  if (opts.redigest) file.digest = planFileDigest(file);
  writeFileSync(path, JSON.stringify(file, null, 2));
  return path;
}

function refusal(fn: () => unknown): LbError {
  try {
    fn();
  } catch (err) {
    if (isLbError(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal, the plan was accepted');
}

const load = (path: string) => recomputePlanFile(path, readPlanFile(path), EMPTY_LIVE, host.ifindex);

describe('saved plan files', () => {
  it('an untouched plan reads back and recomputes to exactly what was planned', async () => {
    const prepared = await preparePlan({ instance: 'unit', configPath: config, host });
    const path = await savedPlan();
    const file = readPlanFile(path);
    expect(file.format_version).toBe('1.1');
    expect(file.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const again = load(path);
    expect(again.generation).toEqual(prepared.encoded.generation);
    expect(again.targetIds).toEqual(prepared.encoded.targetIds);
    expect(again.plan.summary).toEqual(prepared.plan.summary);
  });

  it('an edit without a new digest is refused when the file is read', async () => {
    const path = await savedPlan((f) => { f.desired.generation.listeners[0]!.key.port = 81; });
    const err = refusal(() => readPlanFile(path));
    expect(err.code).toBe('LB_APPLY_PLAN_MISMATCH');
    expect(err.message).toMatch(/was changed after `lb plan --out` wrote it: \/digest is sha256:/);
  });

  it('a file without a digest is refused', async () => {
    const path = await savedPlan((f) => { delete (f as Partial<PlanFile>).digest; });
    expect(refusal(() => readPlanFile(path)).message).toMatch(/has no digest/);
  });

  it('an edited generation with a recomputed digest is refused, naming where it disagrees', async () => {
    const path = await savedPlan((f) => { f.desired.generation.groups[0]!.group.targets[0]!.addr = '10.66.6.6'; }, { redigest: true });
    const err = refusal(() => load(path));
    expect(err.code).toBe('LB_APPLY_PLAN_MISMATCH');
    expect(err.data['pointer']).toBe('/desired/generation/groups/0/group/targets/0/addr');
    expect(err.message).toContain('the file has "10.66.6.6"; desired.state gives "10.0.1.1"');
  });

  it('an edited summary with a recomputed digest is refused', async () => {
    const path = await savedPlan((f) => { f.plan.summary = { add: 0, change: 0, destroy: 0 }; }, { redigest: true });
    const err = refusal(() => load(path));
    expect(err.code).toBe('LB_APPLY_PLAN_MISMATCH');
    expect(err.data['pointer']).toBe('/plan/summary/add');
  });

  it('edited target ids with a recomputed digest are refused', async () => {
    const path = await savedPlan((f) => { f.desired.target_ids['10.0.1.1:8080'] = 4000; }, { redigest: true });
    expect(refusal(() => load(path)).data['pointer']).toBe('/desired/target_ids/10.0.1.1:8080');
  });

  it('an edited desired.state (generation left alone) is refused: the generation no longer follows from it', async () => {
    const path = await savedPlan((f) => { f.desired.state.listeners[0]!.defaultTargets[0]!.weight = 7; }, { redigest: true });
    expect(refusal(() => load(path)).data['pointer']).toMatch(/^\/desired\/generation\/groups\/0\/group\/targets\/0\/weight$/);
  });

  it('a malformed desired.state is a clear refusal, not a crash', async () => {
    const path = await savedPlan((f) => { (f.desired.state as unknown as Record<string, unknown>)['listeners'] = 'none'; }, { redigest: true });
    const err = refusal(() => load(path));
    expect(err.code).toBe('LB_APPLY_PLAN_MISMATCH');
    expect(err.message).toMatch(/\/desired\/state does not encode/);
  });
});
