// "Did you mean": the closest allowed name to a misspelt key or enum value.

/** The candidate closest to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  // Folding only shortens a word by its underscores and dashes; a word far longer than every
  // candidate is no typo of one (and folding a 200 KB key would be wasted work).
  if (!candidates.some((c) => word.length <= 2 * c.length + 3)) return undefined;
  const folded = fold(word);
  const exact = candidates.find((c) => foldCandidate(c) === folded);
  if (exact !== undefined) return exact;
  const limit = word.length <= 4 ? 1 : word.length <= 8 ? 2 : 3;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(folded, foldCandidate(c), limit);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** camelCase, snake_case and case differences are spelling, not meaning. */
function fold(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/_/g, '-').toLowerCase();
}

/**
 * Candidates are the schema's own names (keys, enum members): a small fixed set, folded once.
 * Thousands of unknown keys in one config would otherwise fold every candidate for each.
 */
const foldedCandidates = new Map<string, string>();
const MAX_FOLDED_CANDIDATES = 10_000;

function foldCandidate(c: string): string {
  const known = foldedCandidates.get(c);
  if (known !== undefined) return known;
  const folded = fold(c);
  if (foldedCandidates.size < MAX_FOLDED_CANDIDATES) foldedCandidates.set(c, folded);
  return folded;
}

/**
 * Optimal string alignment distance (Levenshtein with adjacent transpositions), or Infinity once
 * it must exceed `limit`. Three rows, and a stop as soon as a whole row exceeds the limit (a row's
 * minimum never decreases): a run of thousands of unknown keys asks for it thousands of times.
 */
function distance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return Infinity;
  const cols = b.length + 1;
  let before = new Array<number>(cols).fill(0);
  let previous = Array.from({ length: cols }, (_, j) => j);
  let current = new Array<number>(cols).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    let rowMin = i;
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, before[j - 2]! + 1);
      current[j] = v;
      if (v < rowMin) rowMin = v;
    }
    if (rowMin > limit) return Infinity;
    [before, previous, current] = [previous, current, before];
  }
  const d = previous[b.length]!;
  return d <= limit ? d : Infinity;
}
