// The plan between two configs (`lb plan --repo --base --head`): compiled as the daemon compiles
// them, the head diffed against the base; DNS targets listed as runtime inputs, never resolved.
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../../src/core/config/check.js';
import type { LbConfig } from '../../../src/core/config/types.js';
import { changesAnything, planBetweenConfigs } from '../../../src/core/plan/between-configs.js';
import { betweenDocument, renderBetween, type BetweenHeader } from '../../../src/core/plan/render-between.js';

function config(targets: string, extra = ''): LbConfig {
  const text = `proxies:\n  - name: web\n    listen: {interfaces: [eth0], port: 80, protocol: tcp}\n    default-target:\n${targets}${extra}`;
  const r = checkConfig([{ file: 'prod/lb.yaml', text }]);
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics));
  return r.config;
}

const BASE = config('      - {ip: 10.0.0.1, port: 8080, weight: 50}\n      - {host: api.internal, port: 8080, weight: 50}\n');
const HEADER: BetweenHeader = { base: { ref: 'main', revision: 'a'.repeat(40) }, head: { ref: 'pr', revision: 'b'.repeat(40) }, path: 'prod', notes: [] };

describe('planBetweenConfigs', () => {
  it('diffs the head against the base and lists DNS targets apart, unresolved on both sides', () => {
    const head = config('      - {ip: 10.0.0.1, port: 8080, weight: 70}\n      - {host: api2.internal, port: 8080, weight: 50}\n');
    const p = planBetweenConfigs(BASE, head);
    expect(p.errors).toEqual([]);
    expect(p.plan.changes.map((c) => `${c.kind} ${c.name}`)).toEqual(['update listener eth0 *:80/tcp default-target 10.0.0.1:8080']);
    // No guessed addresses: no backend of either host is in the plan, and no "not resolved yet" warning either.
    expect(JSON.stringify(p.plan)).not.toContain('internal');
    expect(p.diagnostics.filter((d) => d.code === 'dns-unresolved')).toEqual([]);
    expect(p.dnsInputs.map((d) => `${d.change} ${d.target}`)).toEqual(['remove api.internal:8080', 'add api2.internal:8080']);
    expect(changesAnything(p)).toBe(true);
  });

  it('a re-weighted DNS target is a change though the plan itself is empty', () => {
    const head = config('      - {ip: 10.0.0.1, port: 8080, weight: 50}\n      - {host: api.internal, port: 8080, weight: 10}\n');
    const p = planBetweenConfigs(BASE, head);
    expect(p.plan.changes).toEqual([]);
    expect(p.dnsInputs).toEqual([{ proxy: 'web', group: 'default', target: 'api.internal:8080', change: 'update', weightBefore: 50, weightAfter: 10 }]);
    expect(changesAnything(p)).toBe(true);
    expect(changesAnything(planBetweenConfigs(BASE, BASE))).toBe(false);
  });

  it('plans everything as created against no base config', () => {
    const p = planBetweenConfigs(null, BASE);
    expect(p.plan.changes.map((c) => `${c.kind} ${c.type}`)).toEqual(['create interface', 'create settings', 'create listener', 'create target']);
    expect(p.dnsInputs.map((d) => d.change)).toEqual(['add']);
  });
});

describe('renderBetween', () => {
  const head = config('      - {ip: 10.0.0.1, port: 8080, weight: 70}\n      - {host: api.internal, port: 8080, weight: 50}\n');
  const p = planBetweenConfigs(BASE, head);

  it('text names both revisions, the notes and the runtime inputs', () => {
    const text = renderBetween(p, { ...HEADER, notes: ['node edge-1 is stalled'] }, 'text');
    expect(text).toContain(`Plan of pr (bbbbbbbbbbbb) against main (aaaaaaaaaaaa) (path prod):`);
    expect(text).toContain('Note: node edge-1 is stalled');
    expect(text).toContain('~     default-target 10.0.0.1:8080  weight: 50 -> 70');
    expect(text).toContain('    proxy "web", default target: api.internal:8080 (weight 50)');
    expect(renderBetween(planBetweenConfigs(BASE, BASE), HEADER, 'text')).toContain('No changes. The head compiles to the same data plane as the base.');
  });

  it('markdown has a heading, the change table, the notes as quotes and a runtime-inputs table', () => {
    const md = renderBetween(p, { ...HEADER, notes: ['node edge-1 drifted'] }, 'markdown');
    expect(md.split('\n')[0]).toBe('### lb plan main (aaaaaaaaaaaa) → pr (bbbbbbbbbbbb) (path prod): 0 to add, 1 to change, 0 to destroy.');
    expect(md).toContain('| `~` update | `listener eth0 *:80/tcp default-target 10.0.0.1:8080` | weight: 50 -> 70 |');
    expect(md).toContain('> **Note:** node edge-1 drifted');
    expect(md).toContain('| unchanged | proxy "web", default target: api.internal:8080 (weight 50) |');
  });

  it('json is the plan document with the revisions and runtime inputs', () => {
    const doc = betweenDocument(p, HEADER);
    expect(JSON.parse(renderBetween(p, HEADER, 'json'))).toEqual(doc);
    expect(doc).toMatchObject({ format_version: '1.0', has_changes: true, base: HEADER.base, head: HEADER.head, path: 'prod', summary: { change: 1 } });
    expect(doc.runtime_inputs).toEqual([{ kind: 'dns', proxy: 'web', group: 'default', target: 'api.internal:8080', change: 'none', weight_before: 50, weight_after: 50 }]);
  });
});
