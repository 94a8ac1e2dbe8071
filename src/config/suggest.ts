// "Did you mean" for config keys and enum values: the closest candidate by optimal string
// alignment distance (Damerau–Levenshtein with adjacent transpositions), within a small budget.

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps cost 1. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1, cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to `word`, or null when none is close enough to be a plausible typo
 * (distance at most a third of the word's length, at least 1; case differences are free).
 *
 * @example
 * closestMatch("adress", ["address", "cert", "key"]) // "address"
 */
export function closestMatch(word: string, candidates: Iterable<string>): string | null {
  const budget = Math.max(1, Math.floor(word.length / 3));
  let best: string | null = null, bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) { best = candidate; bestDistance = distance; }
  }
  return bestDistance <= budget ? best : null;
}
