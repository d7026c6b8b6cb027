import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { encodeState } from '../../../src/core/compile/encode.js';
import type { Diagnostic } from '../../../src/core/config/diagnostics.js';
import { encodeGeneration } from '../../../src/core/generation.js';
import { diffStates } from '../../../src/core/plan/plan.js';
import { PLAN_FORMAT_VERSION, planDocument, renderJson } from '../../../src/core/plan/render-json.js';
import { renderMarkdown } from '../../../src/core/plan/render-markdown.js';
import { NO_CHANGES, renderText } from '../../../src/core/plan/render-text.js';
import { EMPTY_STATE, type LogicalState } from '../../../src/core/state.js';
import { ifindex } from './golden-support.js';

const live: LogicalState = {
  interfaces: ['eth0'],
  settings: { tcpIdleSec: 300, udpIdleSec: 60, tcpFinSec: 10 },
  listeners: [{
    iface: 'eth0', vip: '0.0.0.0', port: 80, proto: 'tcp', proxy: 'web', persist: false,
    defaultTargets: [{ addr: '10.0.0.1', port: 80, weight: 50 }, { addr: '10.0.0.2', port: 80, weight: 50 }], sourceRoutes: [],
  }],
};
const desired: LogicalState = structuredClone(live);
desired.listeners[0]!.defaultTargets[0]!.weight = 80;
desired.listeners[0]!.sourceRoutes = [{ prefix: '10.0.0.0/8', targets: [{ addr: '10.0.0.3', port: 80, weight: 1 }] }];
const plan = diffStates(desired, live);

const warning: Diagnostic = {
  severity: 'warning', stage: 'compile', code: 'dns-unresolved', file: 'lb.yaml', pointer: '/proxies/0/default-target/1', line: 7, column: 9,
  message: 'api.internal (proxy "web") has no resolved address yet',
};

describe('renderText', () => {
  it('uses no colour unless asked, and ANSI colours when asked', () => {
    const plain = renderText(plan);
    expect(plain).not.toContain('\u001b[');
    expect(plain).toContain('  ~     default-target 10.0.0.1:80  weight: 50 -> 80\n');
    expect(plain.trimEnd().split('\n').at(-1)).toBe('Plan: 2 to add, 1 to change, 0 to destroy.');
    const coloured = renderText(plan, { color: true });
    expect(coloured).toContain('\u001b[33m~ ');
    expect(coloured).toContain('\u001b[32m+ ');
    expect(stripVTControlCharacters(coloured)).toBe(plain);
  });

  it('says so when nothing changes', () => {
    expect(renderText(diffStates(live, live))).toBe(`${NO_CHANGES}\n`);
  });

  it('prints diagnostics after the plan', () => {
    const text = renderText(plan, { diagnostics: [warning] });
    expect(text.trimEnd().split('\n').at(-1)).toBe('lb.yaml:7:9: warning: /proxies/0/default-target/1: api.internal (proxy "web") has no resolved address yet');
  });

  it('verbose: lists the raw entries that differ, per map', () => {
    const env = { ifindex, liveTargetIds: new Map<string, number>() };
    const before = encodeState(live, env);
    const after = encodeState(desired, { ifindex, liveTargetIds: before.targetIds });
    const text = renderText(plan, { raw: { before: encodeGeneration(1, before.generation), after: encodeGeneration(1, after.generation) } });
    const raw = text.slice(text.indexOf('Map entries'));
    expect(raw).toContain('  lb_settings: unchanged');
    // The listener now has source routes: same key, new flags (LB_LF_SRC_ROUTES).
    expect(raw).toContain('    - 020000000000000000500601 => 00000000000000000000000000000000');
    expect(raw).toContain('    + 020000000000000000500601 => 00000000000000000100000000000000');
    expect(raw).toMatch(/lb_src_routes:\n {4}\+ 28000000000000800a000000 => 01000000\n/);
    expect(raw).toMatch(/lb_groups:\n/);
    expect(raw).toContain('×00]');
    // A first apply: every entry is new.
    const first = renderText(diffStates(live, EMPTY_STATE), { raw: { after: encodeGeneration(0, before.generation) } });
    expect(first).toContain('  lb_settings:\n    + (this generation) => 2c0100003c0000000a0000000000000000000000000000000000000000000000\n');
    expect(first).toContain('  lb_listeners:\n    + 020000000000000000500600 => 00000000000000000000000000000000\n');
  });
});

describe('renderJson', () => {
  it('is versioned and carries changes with before/after, the summary and the diagnostics', () => {
    const doc = JSON.parse(renderJson(plan, { diagnostics: [warning] }));
    expect(doc.format_version).toBe(PLAN_FORMAT_VERSION);
    expect(doc.has_changes).toBe(true);
    expect(doc.summary).toEqual({ add: 2, change: 1, destroy: 0 });
    expect(doc.changes[0]).toMatchObject({
      kind: 'create', type: 'source-route', address: { proxy: 'web', listener: 'eth0 *:80/tcp', listener_key: 'eth0|0.0.0.0|80|tcp', route: '10.0.0.0/8' }, before: null,
    });
    expect(doc.changes.at(-1)).toMatchObject({ kind: 'update', before: { weight: 50 }, after: { weight: 80 }, changed: ['weight'] });
    expect(doc.diagnostics).toEqual([{ severity: 'warning', code: 'dns-unresolved', message: warning.message, file: 'lb.yaml', pointer: warning.pointer, line: 7, column: 9 }]);
    expect(planDocument(diffStates(live, live))).toMatchObject({ has_changes: false, changes: [], diagnostics: [] });
  });
});

describe('renderMarkdown', () => {
  it('has a summary line, a table per proxy, and the full plan collapsed', () => {
    const md = renderMarkdown(plan, { title: 'lb plan for node-1' });
    expect(md.split('\n')[0]).toBe('### lb plan for node-1: 2 to add, 1 to change, 0 to destroy.');
    expect(md).toContain('#### Proxy "web"\n\n| Action | Resource | Values |');
    expect(md).toContain('| `~` update | `listener eth0 *:80/tcp default-target 10.0.0.1:80` | weight: 50 -> 80 |');
    expect(md).toMatch(/<details><summary>Full plan<\/summary>\n\n```diff\n[\s\S]*\n! {5}default-target 10\.0\.0\.1:80 {2}weight: 50 -> 80\n[\s\S]*```\n\n<\/details>\n$/);
  });

  it('without changes: one line', () => {
    expect(renderMarkdown(diffStates(live, live))).toBe(`### lb plan: ${NO_CHANGES}\n`);
  });
});
