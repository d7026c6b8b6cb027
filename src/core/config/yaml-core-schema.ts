// A js-yaml schema that resolves plain scalars exactly as the `yaml` package's YAML 1.2 core schema
// does (the position-keeping reader in yaml-reader.ts), so the fast reader and it agree on every
// value. js-yaml's own CORE_SCHEMA differs: it reads 0b11, -0x1F and 1_000-style numbers that the
// core schema leaves as strings, and leaves -.5 a string. Pure.
//
// Only implicit types: any explicit tag (!!str, !vault) is unknown here, so js-yaml throws and the
// caller falls back to the `yaml` package, which reports or resolves it as it always has.

import { Schema, Type } from 'js-yaml';

// The tests are the `yaml` package's (yaml/dist/schema/core/*.js, common/null.js), in its order.
const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const INT_OCT = /^0o[0-7]+$/;
const INT = /^[-+]?[0-9]+$/;
const INT_HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT_NAN = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;

// js-yaml keeps one implicit type per tag, so each tag's forms share a type; the int and float
// forms never match the same text, so the order between them does not matter.
const nullType = new Type('tag:yaml.org,2002:null', {
  kind: 'scalar',
  resolve: (s: string) => NULL.test(s),
  construct: () => null,
});

const boolType = new Type('tag:yaml.org,2002:bool', {
  kind: 'scalar',
  resolve: (s: string) => BOOL.test(s),
  construct: (s: string) => s[0] === 't' || s[0] === 'T',
});

const intType = new Type('tag:yaml.org,2002:int', {
  kind: 'scalar',
  resolve: (s: string) => INT_OCT.test(s) || INT.test(s) || INT_HEX.test(s),
  construct: (s: string) =>
    INT_OCT.test(s) ? parseInt(s.substring(2), 8) : INT_HEX.test(s) ? parseInt(s.substring(2), 16) : parseInt(s, 10),
});

const floatType = new Type('tag:yaml.org,2002:float', {
  kind: 'scalar',
  resolve: (s: string) => FLOAT_NAN.test(s) || FLOAT_EXP.test(s) || FLOAT.test(s),
  construct: (s: string) => {
    if (!FLOAT_NAN.test(s)) return parseFloat(s);
    if (s.slice(-3).toLowerCase() === 'nan') return NaN;
    return s[0] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  },
});

export const YAML_CORE_SCHEMA = new Schema({ implicit: [nullType, boolType, intType, floatType], explicit: [] });
