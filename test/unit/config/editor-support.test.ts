// What editors need from lb's config files (docs/config.md, "Editors"): the example configs name
// the schema in a yaml-language-server modeline, and the schema gives every key a description
// and examples (shown on hover and offered as completions), each example valid for its key.
// Every key docs/config.md documents has its description in the schema.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Ajv2020Module from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { ANNOTATION_KEYWORDS, CONFIG_SCHEMA } from '../../../src/core/config/schema.js';

type Schema = Record<string, unknown>;

/** Every declared property: its JSON pointer in the schema, its name and its schema. */
function properties(): Array<{ pointer: string; name: string; schema: Schema }> {
  const out: Array<{ pointer: string; name: string; schema: Schema }> = [];
  const walk = (s: unknown, pointer: string): void => {
    if (s === null || typeof s !== 'object') return;
    if (Array.isArray(s)) return s.forEach((x, i) => walk(x, `${pointer}/${i}`));
    const o = s as Schema;
    if (o.properties && typeof o.properties === 'object') {
      for (const [name, p] of Object.entries(o.properties as Record<string, Schema>)) out.push({ pointer: `${pointer}/properties/${name}`, name, schema: p });
    }
    for (const [k, v] of Object.entries(o)) walk(v, `${pointer}/${k}`);
  };
  walk(CONFIG_SCHEMA, '#');
  return out;
}

describe('the schema for editors', () => {
  const all = properties();

  it('gives every key a description and at least one example', () => {
    expect(all.length).toBeGreaterThan(70);
    expect(all.filter((p) => typeof p.schema.description !== 'string').map((p) => p.pointer)).toEqual([]);
    expect(all.filter((p) => !Array.isArray(p.schema.examples) || p.schema.examples.length === 0).map((p) => p.pointer)).toEqual([]);
  });

  it('each example is valid for its key', () => {
    const ajv = new Ajv2020Module.default({ strict: false, allErrors: true });
    ajv.addVocabulary([...ANNOTATION_KEYWORDS]);
    ajv.addSchema(CONFIG_SCHEMA);
    const id = CONFIG_SCHEMA.$id as string;
    const invalid: string[] = [];
    for (const p of all) {
      const validate = ajv.compile({ $ref: `${id}${p.pointer.replace(/^#/, '#')}` });
      for (const ex of p.schema.examples as unknown[]) {
        if (!validate(ex)) invalid.push(`${p.pointer}: ${JSON.stringify(ex)}: ${ajv.errorsText(validate.errors)}`);
      }
    }
    expect(invalid).toEqual([]);
  });

  it('the example check can fail: an out-of-range port is not a valid listen.port', () => {
    const ajv = new Ajv2020Module.default({ strict: false });
    ajv.addVocabulary([...ANNOTATION_KEYWORDS]);
    ajv.addSchema(CONFIG_SCHEMA);
    expect(ajv.compile({ $ref: `${CONFIG_SCHEMA.$id as string}#/$defs/listen/properties/port` })(70000)).toBe(false);
  });
});

describe('docs/config.md and the schema', () => {
  it('every key of the reference tables has a description in the schema', () => {
    const doc = readFileSync('docs/config.md', 'utf8');
    const reference = doc.slice(doc.indexOf('## Reference'));
    const keys = new Set<string>();
    for (const line of reference.split('\n')) {
      const cell = /^\| (`[^|]+`) \|/.exec(line)?.[1];
      if (cell) for (const m of cell.matchAll(/`([a-z0-9-]+)`/g)) keys.add(m[1]!);
    }
    expect(keys.size).toBeGreaterThan(50); // distinct names: port, enabled, path, ... appear in several tables
    const described = new Set(properties().filter((p) => typeof p.schema.description === 'string' && p.schema.description.length >= 10).map((p) => p.name));
    expect([...keys].filter((k) => !described.has(k))).toEqual([]);
  });
});

describe('the example configs', () => {
  // lb configs, not the CI templates beside them (examples/repo/.github, .gitea, .gitlab-ci.yml).
  const files = readdirSync('examples', { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.ya?ml$/.test(f) && !/(^|\/)\.(github|gitea|gitlab-ci\.yml)/.test(f)).map((f) => join('examples', f));

  it('name the schema in a yaml-language-server modeline on their first line', () => {
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const first = readFileSync(f, 'utf8').split('\n')[0]!;
      const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
      expect(m, `${f}: ${first}`).not.toBeNull();
      expect(resolve(dirname(f), m![1]!)).toBe(resolve('schemas/lb-config.schema.json'));
    }
  });
});
