// How lb writes YAML (lb convert --to yaml, lb fmt): block style, short collections of plain
// values in flow style (`{ip: 10.0.0.1, port: 8080}`, `[eth0, eth1]`), strings quoted only where a
// plain scalar would read as something else, and always with double quotes. Pure.

import { Document, isCollection, isMap, isPair, isScalar, isSeq, Scalar, visit, type Node } from 'yaml';

/** A collection is written in flow style when its flow form is at most this long. */
export const FLOW_MAX_CHARS = 60;

/** Options of every Document.toString() lb makes. */
export const YAML_OUTPUT = {
  flowCollectionPadding: false,
  lineWidth: 0, // never fold long strings: a folded string reads back the same, but diffs worse
  defaultStringType: 'PLAIN',
  defaultKeyType: 'PLAIN',
  doubleQuotedAsJSON: true,
  singleQuote: false,
} as const;

function hasComment(n: unknown): boolean {
  const c = n as { commentBefore?: string | null; comment?: string | null };
  return (c.commentBefore ?? '') !== '' || (c.comment ?? '') !== '';
}

/** The flow text of a collection of scalars (what the length rule measures). */
function flowLength(node: Node): number {
  const comment = node.comment; // a comment after the collection is not part of its flow form
  node.comment = '';
  try {
    return new Document(node).toString({ ...YAML_OUTPUT, collectionStyle: 'flow' }).trimEnd().length;
  } finally {
    node.comment = comment;
  }
}

/**
 * Sets each collection's style: flow when it holds only scalars, has no comments on it or in it,
 * and is short; block otherwise. The root stays block. Scalars lose any source quoting style, so
 * quoting is decided by the output rules alone (stable whatever the input wrote).
 */
export function styleYaml(doc: Document): void {
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string') node.type = undefined;
      else if (node.type !== undefined && node.type !== Scalar.PLAIN) node.type = undefined;
      // Numbers and booleans are written from their value (0x10 -> 16), the way they read back.
      delete (node as { format?: string }).format;
      delete (node as { source?: string }).source;
    },
  });
  // In `[eth0, eth1] # note` the parser gives the note to the last item; it is the collection's.
  visit(doc, {
    Collection(_key, node) {
      if (!node.flow) return;
      const last = node.items.at(-1);
      const holder = isPair(last) ? last.value : last;
      if (isScalar(holder) && (holder.comment ?? '') !== '' && (node.comment ?? '') === '') {
        node.comment = holder.comment;
        holder.comment = '';
      }
    },
  });
  visit(doc, {
    Map(_key, node) {
      node.flow = false;
    },
    Seq(_key, node) {
      node.flow = false;
    },
  });
  const root = doc.contents;
  visit(doc, {
    Map(_key, node) {
      if (node === root) return;
      node.flow = isFlowable(node);
    },
    Seq(_key, node) {
      if (node === root) return;
      node.flow = isFlowable(node);
    },
  });
  // A comment after a block collection would land below it; it belongs on the line of its key.
  visit(doc, {
    Pair(_key, pair) {
      const v = pair.value;
      if (isCollection(v) && !v.flow && (v.comment ?? '') !== '' && isScalar(pair.key)) {
        pair.key.comment = pair.key.comment ? `${pair.key.comment}\n${v.comment}` : v.comment;
        v.comment = '';
      }
    },
  });
}

function isFlowable(node: Node): boolean {
  // A comment after the collection (node.comment) ends the flow line; one before it does not fit.
  if (!isCollection(node) || (node.commentBefore ?? '') !== '') return false;
  for (const item of node.items) {
    if (isPair(item)) {
      if (!isScalar(item.key) || !isScalar(item.value) || hasComment(item.key) || hasComment(item.value)) return false;
    } else if (!isScalar(item) || hasComment(item)) return false;
  }
  if ((isMap(node) || isSeq(node)) && node.items.length === 0) return true;
  return flowLength(node) <= FLOW_MAX_CHARS;
}

export function yamlText(doc: Document): string {
  return doc.toString(YAML_OUTPUT);
}
