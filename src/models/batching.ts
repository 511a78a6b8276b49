/**
 * Sequences of different lengths batched without padding: the indices of equal-length
 * sequences, in batches of at most maxBatch, in order of first appearance.
 *
 *     for (const batch of lengthBatches(seqs.map((s) => s.length), 32)) model.hidden(ids(batch.map((i) => seqs[i])));
 */
export function lengthBatches(lengths: readonly number[], maxBatch = Infinity): number[][] {
  if (!(maxBatch >= 1)) throw new RangeError(`lengthBatches: maxBatch must be >= 1, got ${maxBatch}`);
  const byLength = new Map<number, number[]>();
  lengths.forEach((n, i) => {
    const group = byLength.get(n);
    if (group === undefined) byLength.set(n, [i]);
    else group.push(i);
  });
  const out: number[][] = [];
  for (const members of byLength.values()) {
    for (let b0 = 0; b0 < members.length; b0 += maxBatch) out.push(members.slice(b0, b0 + maxBatch));
  }
  return out;
}
