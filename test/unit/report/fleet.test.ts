// One row per node for reviewers: applied vs desired, Ready, drift, report age and the flags;
// the notes a plan against the node's applied revision carries.
import { describe, expect, it } from 'vitest';
import { formatAge, nodeNotes, nodeRow, renderFleetMarkdown, rowFlags } from '../../../src/report/fleet.js';
import { sampleReport } from '../../lib/status-fixtures.js';

const NOW = new Date('2026-12-07T12:00:00.000Z');
const at = (agoSec: number): string => new Date(NOW.getTime() - agoSec * 1000).toISOString();
const FRESH = { timestamps: { lastAttemptedAt: null, lastAppliedAt: null, generatedAt: at(10) } };

describe('nodeRow', () => {
  it('a node in step: Ready, not behind, fresh, no flags, no notes', () => {
    const row = nodeRow(sampleReport('a', { timestamps: { lastAttemptedAt: null, lastAppliedAt: null, generatedAt: at(30) } }), NOW);
    expect(row).toMatchObject({ node: 'a', ready: 'True', reason: 'ReconciliationSucceeded', stalled: false, drift: 0, ageSec: 30, stale: false, behind: false });
    expect(rowFlags(row)).toEqual([]);
    expect(nodeNotes(row)).toEqual([]);
  });

  it('stale after the limit (default 15 minutes, or given)', () => {
    const r = sampleReport('a', { timestamps: { lastAttemptedAt: null, lastAppliedAt: null, generatedAt: at(901) } });
    expect(nodeRow(r, NOW).stale).toBe(true);
    expect(nodeRow(r, NOW, 3600).stale).toBe(false);
    expect(nodeRow({ ...r, timestamps: { ...r.timestamps, generatedAt: 'garbage' } }, NOW)).toMatchObject({ stale: true, ageSec: Number.POSITIVE_INFINITY });
  });

  it('behind, drifted (healed drift is no flag), never applied', () => {
    const behind = nodeRow(sampleReport('b', { ...FRESH, desiredRevision: 'c'.repeat(40), conditions: [], drift: { entries: 1, healed: false, detectedAt: at(5) } }), NOW);
    expect(behind).toMatchObject({ ready: 'Unknown', behind: true, drift: 1 });
    expect(rowFlags(behind)).toEqual(['BEHIND', 'DRIFT']);
    expect(nodeNotes(behind)).toEqual([
      `node b runs ${'a'.repeat(12)} but should run ${'c'.repeat(12)} (Ready Unknown)`,
      'node b found 1 drifted entry in its data plane (not healed): the live state differs from its applied revision',
    ]);
    const healed = nodeRow(sampleReport('h', { ...FRESH, drift: { entries: 2, healed: true, detectedAt: at(5) } }), NOW);
    expect(rowFlags(healed)).toEqual([]);
    const fresh = nodeRow(sampleReport('n', { lastAppliedRevision: null }), NOW);
    expect(nodeNotes(fresh)[0]).toBe('node n has not applied any revision yet; the base is an empty data plane');
  });
});

describe('renderFleetMarkdown and formatAge', () => {
  it('a table row per node, flags in bold; an empty branch says so', () => {
    const row = nodeRow(sampleReport('a|b', { timestamps: { lastAttemptedAt: null, lastAppliedAt: null, generatedAt: at(7200) } }), NOW);
    const md = renderFleetMarkdown([row], 'lb fleet');
    expect(md).toContain(`| a\\|b | \`${'a'.repeat(12)}\` | \`${'a'.repeat(12)}\` | True (ReconciliationSucceeded) | none | 2h ago | **STALE** |`);
    expect(renderFleetMarkdown([], 'lb fleet')).toContain('No node has reported yet.');
  });

  it('ages in the largest whole unit', () => {
    expect([0, 59, 60, 3599, 3600, 86400, Number.POSITIVE_INFINITY].map(formatAge)).toEqual(['0s', '59s', '1m', '59m', '1h', '1d', 'unknown']);
  });
});
