/**
 * Learns byte-level BPE merges from text, GPT-2 style.
 *
 * Text is split by the pre-tokenizer into chunks; identical chunks are counted once and
 * weighted by their count ("words"). Every adjacent symbol pair is counted over the words;
 * the most frequent pair is merged into a new token, and only the words holding that pair
 * are rewritten, adjusting the pair counts around each merge site. A max-heap keyed by
 * count picks the next pair; entries go stale as counts fall and are re-queued at their
 * current count when popped. Ties go to the pair with the smaller ids, so training is
 * deterministic.
 *
 * Ids: special tokens first, then the 256 byte tokens (in stand-in order, as GPT-2 and
 * Hugging Face's trainer place them), then one token per merge.
 */
import { BYTE_TO_CHAR, BYTES_IN_VOCAB_ORDER, pretokenize, textBlocks } from "./bytelevel.js";
import { utf8Bytes, wellFormed } from "./lossless.js";
import { addedTokenPattern, BPETokenizer } from "./bpe.js";

export interface TrainProgress {
  stage: "count" | "merge";
  /** count: texts read so far; merge: merges learned so far. */
  done: number;
  /** merge: merges wanted (vocabSize − specials − 256); count: 0 (the corpus length is not known up front). */
  total: number;
}

export interface TrainBPEOptions {
  /** Tokens in the result, special and byte tokens included. */
  vocabSize: number;
  /**
   * Pairs seen fewer times than this are never merged (default 2). Training stops early,
   * with a smaller vocabulary, when no pair is left that is frequent enough.
   */
  minFrequency?: number;
  /** Matched whole when encoding; given the first ids, in this order. */
  specialTokens?: string[];
  onProgress?: (progress: TrainProgress) => void;
}

export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ["<|endoftext|>", "[CLS]", "[SEP]", "[MASK]", "[PAD]"];

export function trainBPE(texts: Iterable<string>, options: TrainBPEOptions): BPETokenizer {
  const { vocabSize, minFrequency = 2, specialTokens = [...DEFAULT_SPECIAL_TOKENS], onProgress } = options;
  const base = specialTokens.length + 256;
  if (!Number.isInteger(vocabSize) || vocabSize < base) {
    throw new RangeError(`trainBPE: vocabSize ${vocabSize} is too small: ${specialTokens.length} special tokens + 256 byte tokens need at least ${base}`);
  }
  if (vocabSize > 1 << 24) throw new RangeError(`trainBPE: vocabSize ${vocabSize} is larger than the ${1 << 24} supported`);
  if (!Number.isInteger(minFrequency) || minFrequency < 0) throw new RangeError(`trainBPE: minFrequency ${minFrequency} is not a non-negative integer`);
  specialTokens.forEach((t, i) => {
    if (typeof t !== "string" || t.length === 0) throw new Error(`trainBPE: specialTokens[${i}] is ${JSON.stringify(t)}, not a non-empty string`);
    if (specialTokens.indexOf(t) !== i) throw new Error(`trainBPE: special token ${JSON.stringify(t)} is listed twice`);
  });

  const chunkCounts = countChunks(texts, specialTokens, onProgress);
  if (chunkCounts.size === 0) throw new Error("trainBPE: the corpus is empty: no text to learn merges from");

  const vocab: string[] = [...specialTokens];
  const byteIds = new Int32Array(256);
  for (const b of BYTES_IN_VOCAB_ORDER) (byteIds[b] = vocab.length), vocab.push(BYTE_TO_CHAR[b]);
  const ids = new Map<string, number>(vocab.slice(specialTokens.length).map((t, i) => [t, specialTokens.length + i]));

  const words = new Words(chunkCounts, byteIds, vocabSize);
  const merges: [string, string][] = [];
  const wanted = vocabSize - base;
  while (vocab.length < vocabSize) {
    const top = words.popBest();
    if (top === null || top.count < Math.max(1, minFrequency)) break;
    const token = vocab[top.left] + vocab[top.right];
    let id = ids.get(token);
    if (id === undefined) {
      // Two different merge paths can spell the same token; then it keeps one id, as in Hugging Face's trainer.
      id = vocab.length;
      vocab.push(token);
      ids.set(token, id);
    }
    merges.push([vocab[top.left], vocab[top.right]]);
    words.merge(top.left, top.right, id);
    if (onProgress && merges.length % 256 === 0) onProgress({ stage: "merge", done: merges.length, total: wanted });
  }
  onProgress?.({ stage: "merge", done: merges.length, total: wanted });
  return new BPETokenizer({ vocab, merges, added: specialTokens.map((content, id) => ({ id, content, special: true })) });
}

function countChunks(texts: Iterable<string>, specialTokens: readonly string[], onProgress?: (p: TrainProgress) => void): Map<string, number> {
  const counts = new Map<string, number>();
  const specials = addedTokenPattern(specialTokens);
  let done = 0;
  for (const raw of texts) {
    if (typeof raw !== "string") throw new TypeError(`trainBPE: text ${done} is ${typeof raw}, not a string`);
    // Special tokens in the corpus are cut out: encoding keeps them whole, so their pieces should not be learned.
    const pieces = specials === null ? [raw] : raw.split(specials);
    for (const piece of pieces) {
      for (const block of textBlocks(wellFormed(piece))) {
        for (const chunk of pretokenize(block)) counts.set(chunk, (counts.get(chunk) ?? 0) + 1);
      }
    }
    done++;
    if (onProgress && done % 1000 === 0) onProgress({ stage: "count", done, total: 0 });
  }
  return counts;
}

/** The unique chunks as symbol sequences, with their pair counts and a heap over them. */
class Words {
  private readonly symbols: Int32Array[] = [];
  private readonly lengths: Int32Array;
  private readonly weights: Float64Array;
  /** pair key → weighted count, and → the words that (may) hold the pair. */
  private readonly pairCounts = new Map<number, number>();
  private readonly pairWords = new Map<number, number[]>();
  private readonly scale: number;
  private readonly visited: Int32Array;
  private visit = 0;
  private readonly heap = new PairHeap();
  /** Keys whose count grew during the current merge (they hold the merged token); queued after it. */
  private readonly grown = new Set<number>();

  constructor(chunkCounts: Map<string, number>, byteIds: Int32Array, vocabSize: number) {
    this.scale = vocabSize;
    this.lengths = new Int32Array(chunkCounts.size);
    this.weights = new Float64Array(chunkCounts.size);
    this.visited = new Int32Array(chunkCounts.size);
    let scratch = new Uint8Array(1024);
    let w = 0;
    for (const [chunk, count] of chunkCounts) {
      if (scratch.length < chunk.length * 3) scratch = new Uint8Array(chunk.length * 3);
      const n = utf8Bytes(chunk, scratch);
      const s = new Int32Array(n);
      for (let i = 0; i < n; i++) s[i] = byteIds[scratch[i]];
      this.symbols.push(s);
      this.lengths[w] = n;
      this.weights[w] = count;
      for (let i = 0; i + 1 < n; i++) this.add(s[i], s[i + 1], count, w);
      w++;
    }
    for (const [key, count] of this.pairCounts) this.heap.push(count, Math.floor(key / this.scale), key % this.scale);
  }

  /** The most frequent pair, or null when no pair is left. */
  popBest(): { left: number; right: number; count: number } | null {
    while (this.heap.size > 0) {
      const { count, left, right } = this.heap.pop();
      const current = this.pairCounts.get(left * this.scale + right) ?? 0;
      if (current === count) return { left, right, count };
      if (current > 0) this.heap.push(current, left, right);
    }
    return null;
  }

  /** Rewrites every word holding (left, right) with `merged` in its place, updating pair counts. */
  merge(left: number, right: number, merged: number): void {
    const key = left * this.scale + right;
    const holders = this.pairWords.get(key) ?? [];
    this.pairWords.delete(key);
    this.visit++;
    for (const w of holders) {
      if (this.visited[w] === this.visit) continue;
      this.visited[w] = this.visit;
      const s = this.symbols[w], len = this.lengths[w], weight = this.weights[w];
      let out = 0;
      for (let i = 0; i < len;) {
        if (i + 1 < len && s[i] === left && s[i + 1] === right) {
          // s[out - 1] is already rewritten, so back-to-back merges (a b a b → c c) count right.
          if (out > 0) (this.add(s[out - 1], left, -weight, w), this.add(s[out - 1], merged, weight, w));
          if (i + 2 < len) (this.add(right, s[i + 2], -weight, w), this.add(merged, s[i + 2], weight, w));
          this.add(left, right, -weight, w);
          s[out++] = merged;
          i += 2;
        } else s[out++] = s[i++];
      }
      this.lengths[w] = out;
    }
    this.pairCounts.delete(key);
    for (const k of this.grown) {
      const count = this.pairCounts.get(k) ?? 0;
      if (count > 0) this.heap.push(count, Math.floor(k / this.scale), k % this.scale);
    }
    this.grown.clear();
  }

  private add(a: number, b: number, delta: number, word: number): void {
    const key = a * this.scale + b;
    const count = (this.pairCounts.get(key) ?? 0) + delta;
    if (count === 0) this.pairCounts.delete(key);
    else this.pairCounts.set(key, count);
    if (delta <= 0) return; // words that lose a pair stay listed; merge() skips them cheaply
    let list = this.pairWords.get(key);
    if (list === undefined) this.pairWords.set(key, (list = []));
    if (list[list.length - 1] !== word) list.push(word);
    this.grown.add(key);
  }
}

/** Max-heap of (count, left, right): higher count first, then smaller left, then smaller right. */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly lefts: number[] = [];
  private readonly rights: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private before(i: number, count: number, left: number, right: number): boolean {
    const c = this.counts[i];
    if (c !== count) return c > count;
    const l = this.lefts[i];
    return l !== left ? l < left : this.rights[i] < right;
  }

  private set(i: number, count: number, left: number, right: number): void {
    this.counts[i] = count;
    this.lefts[i] = left;
    this.rights[i] = right;
  }

  push(count: number, left: number, right: number): void {
    let i = this.counts.length;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.before(parent, count, left, right)) break;
      this.set(i, this.counts[parent], this.lefts[parent], this.rights[parent]);
      i = parent;
    }
    this.set(i, count, left, right);
  }

  pop(): { count: number; left: number; right: number } {
    const top = { count: this.counts[0], left: this.lefts[0], right: this.rights[0] };
    const count = this.counts.pop() as number, left = this.lefts.pop() as number, right = this.rights.pop() as number;
    const n = this.counts.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(child + 1, this.counts[child], this.lefts[child], this.rights[child])) child++;
      if (!this.before(child, count, left, right)) break;
      this.set(i, this.counts[child], this.lefts[child], this.rights[child]);
      i = child;
    }
    this.set(i, count, left, right);
    return top;
  }
}
