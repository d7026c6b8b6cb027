// The schema as ajv compiles it: every $ref replaced by the definition it names.
//
// ajv compiles each $ref target into a function of its own, and with allErrors it joins the
// errors of a failing call to the list so far with concat, a copy of every error found so far, for
// every failing item. That is quadratic: 8000 targets lacking ip and host took 1.8 s in ajv alone
// (4000: 80 ms), 20k invalid proxies far longer. The schema has no recursion, so the validator is
// compiled from a copy without $ref: every error goes straight into one list. Pure; the schema
// file itself keeps its $refs for editors and readers.

type Schema = Record<string, unknown>;

/** What may sit next to a $ref and be kept over the definition's own: annotations only. */
const ANNOTATIONS = new Set(['description', 'default', 'title', 'examples']);

/** Keywords whose values are data, not schemas: never searched for $ref. */
const DATA_KEYWORDS = new Set(['enum', 'const', 'default', 'examples']);

const LOCAL_DEF = '#/$defs/';

export function inlineRefs(root: Schema): Schema {
  const defs = (root.$defs ?? {}) as Record<string, unknown>;
  const inlined = new Map<string, unknown>();
  const inProgress = new Set<string>();

  const definition = (name: string): unknown => {
    const known = inlined.get(name);
    if (known !== undefined) return known;
    inProgress.add(name);
    const value = visit(defs[name]);
    inProgress.delete(name);
    inlined.set(name, value);
    return value;
  };

  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(visit);
    if (node === null || typeof node !== 'object') return node;
    const schema = node as Schema;
    const ref = schema.$ref;
    if (typeof ref === 'string' && ref.startsWith(LOCAL_DEF)) {
      const name = ref.slice(LOCAL_DEF.length);
      // A recursive or unknown reference stays a $ref; ajv resolves it as before.
      if (Object.hasOwn(defs, name) && !inProgress.has(name)) return merge(definition(name) as Schema, schema);
    }
    const out: Schema = {};
    for (const [key, value] of Object.entries(schema)) out[key] = key === '$defs' || DATA_KEYWORDS.has(key) ? value : visit(value);
    return out;
  };

  return visit(root) as Schema;
}

/** The definition with the $ref's annotations; anything else next to a $ref keeps its own level. */
function merge(target: Schema, refNode: Schema): Schema {
  const siblings = Object.fromEntries(Object.entries(refNode).filter(([key]) => key !== '$ref'));
  const onlyAnnotations = Object.keys(siblings).every((key) => ANNOTATIONS.has(key));
  return onlyAnnotations ? { ...target, ...siblings } : { allOf: [target], ...siblings };
}
