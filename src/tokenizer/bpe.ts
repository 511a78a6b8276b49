/**
 * A byte-level BPE tokenizer: text → pre-tokenizer chunks → UTF-8 bytes → byte tokens →
 * merges applied by rank (lowest first, leftmost on ties, one at a time, as Hugging Face
 * applies them) → ids. Added (special) tokens found in the text are kept whole.
 * Lossless on any input: `decodeBytes(encodeBytes(b))` gives back `b` exactly.
 */
import { BYTE_TO_CHAR, charsToBytes, PRETOKENIZE_PATTERN, textBlocks } from "./bytelevel.js";
import { decodeLossless, utf8Bytes, wellFormed } from "./lossless.js";
import { specFromHuggingFace, specToHuggingFace, serializeHuggingFace, type HuggingFaceTokenizerJSON } from "./hf.js";
import { readJSONFile, writeTextAtomic, tokenizerPath } from "./file.js";

/** A token matched whole in text before pre-tokenization (Hugging Face's added_tokens). */
export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

/** Everything that defines a tokenizer; what the trainer makes and the file format holds. */
export interface BPEModelSpec {
  /** id → token. Model tokens are strings of byte stand-ins; added tokens are their literal content. */
  vocab: readonly string[];
  /** In rank order: the first pair is merged first. */
  merges: readonly (readonly [string, string])[];
  added: readonly AddedToken[];
}

export interface EncodeOptions {
  /** Match added tokens in the text as whole tokens (default true); false treats them as plain text. */
  specialTokens?: boolean;
}

const NO_MERGE = 0x7fffffff;
/** Chunks shorter than this merge by a linear scan; longer ones (minified code, long runs) by a heap. */
const SCAN_LIMIT = 64;
const CACHE_ENTRIES = 1 << 16;
const CACHE_CHUNK_CHARS = 64;
/** A cached chunk's ids live in one arena: the map holds offset * CACHE_SPAN + count (a small integer). */
const CACHE_SPAN = 256;  // > the most ids of a cached chunk (3 UTF-8 bytes a character)
const CACHE_ARENA_MAX = 1 << 20;
const UTF8_LENIENT = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Ids appended in place (BPETokenizer.encodeInto): a typed array that grows and is reused from
 * one text to the next, so encoding a long stream of text makes no array of ids per text.
 */
export class IdBuffer {
  ids = new Int32Array(1 << 12);
  length = 0;

  push(id: number): void {
    if (this.length === this.ids.length) {
      const bigger = new Int32Array(2 * this.ids.length);
      bigger.set(this.ids);
      this.ids = bigger;
    }
    this.ids[this.length++] = id;
  }
}

/** Where encoding appends ids: an array, or an IdBuffer. */
type IdSink = { push(id: number): unknown };

export class BPETokenizer {
  readonly vocabSize: number;
  readonly addedTokens: readonly AddedToken[];
  private readonly vocab: readonly string[];
  private readonly merges: readonly (readonly [string, string])[];
  private readonly modelIds = new Map<string, number>();
  private readonly addedIds = new Map<string, number>();
  private readonly addedPattern: RegExp | null;
  private readonly byteIds = new Int32Array(256);
  private readonly tokenBytes: Uint8Array[];
  /** pair (a, b) → merge rank, keyed a * pairScale + b. */
  private readonly pairScale: number;
  private readonly mergeRanks = new Map<number, number>();
  /** merge rank → id of the merged token. */
  private readonly mergeResults: Int32Array;
  /**
   * Chunk -> where its ids are in `cacheIds`. Packed ids and copied keys keep the cache near 100
   * bytes an entry: a chunk matched out of the text is a slice that would keep the whole text alive
   * (V8's sliced strings), and an array of ids an entry costs several times its ids.
   */
  private readonly cache = new Map<string, number>();
  private cacheIds = new Int32Array(1 << 12);
  private cacheFill = 0;
  private scratch = new Uint8Array(1024);

  constructor(spec: BPEModelSpec) {
    const { vocab, merges, added } = spec;
    this.vocab = vocab.slice();
    this.merges = merges.map(([a, b]) => [a, b] as const);
    this.addedTokens = added.map((t) => ({ ...t }));
    this.vocabSize = vocab.length;
    this.pairScale = vocab.length;
    if (vocab.length * vocab.length > Number.MAX_SAFE_INTEGER) throw new RangeError(`BPETokenizer: vocabulary of ${vocab.length} tokens is too large`);

    for (const t of added) {
      if (!Number.isInteger(t.id) || t.id < 0 || t.id >= vocab.length) throw new RangeError(`BPETokenizer: added token ${JSON.stringify(t.content)} has id ${t.id}, outside 0..${vocab.length - 1}`);
      if (t.content.length === 0) throw new Error(`BPETokenizer: added token ${t.id} is empty`);
      if (vocab[t.id] !== t.content) throw new Error(`BPETokenizer: added token ${JSON.stringify(t.content)} has id ${t.id}, but the vocabulary has ${JSON.stringify(vocab[t.id])} there`);
      if (this.addedIds.has(t.content)) throw new Error(`BPETokenizer: added token ${JSON.stringify(t.content)} appears twice`);
      this.addedIds.set(t.content, t.id);
    }
    this.tokenBytes = new Array<Uint8Array>(vocab.length);
    const encoder = new TextEncoder();
    for (let id = 0; id < vocab.length; id++) {
      const token = vocab[id];
      if (this.addedIds.get(token) === id) {
        this.tokenBytes[id] = encoder.encode(token);
        continue;
      }
      const bytes = token.length > 0 ? charsToBytes(token) : null;
      if (bytes === null) throw new Error(`BPETokenizer: token ${id} ${JSON.stringify(token)} is not a string of byte stand-ins (and is not an added token)`);
      const earlier = this.modelIds.get(token);
      if (earlier !== undefined) throw new Error(`BPETokenizer: token ${JSON.stringify(token)} appears twice, at ids ${earlier} and ${id}`);
      this.modelIds.set(token, id);
      this.tokenBytes[id] = bytes;
    }
    for (let b = 0; b < 256; b++) {
      const id = this.modelIds.get(BYTE_TO_CHAR[b]);
      if (id === undefined) throw new Error(`BPETokenizer: byte 0x${b.toString(16).padStart(2, "0")} (stand-in ${JSON.stringify(BYTE_TO_CHAR[b])}) has no token; a byte-level vocabulary needs all 256`);
      this.byteIds[b] = id;
    }

    this.mergeResults = new Int32Array(merges.length);
    merges.forEach(([a, b], rank) => {
      const left = this.modelIds.get(a), right = this.modelIds.get(b), merged = this.modelIds.get(a + b);
      const name = `merge ${rank} (${JSON.stringify(a)}, ${JSON.stringify(b)})`;
      if (left === undefined) throw new Error(`BPETokenizer: ${name}: ${JSON.stringify(a)} is not in the vocabulary`);
      if (right === undefined) throw new Error(`BPETokenizer: ${name}: ${JSON.stringify(b)} is not in the vocabulary`);
      if (merged === undefined) throw new Error(`BPETokenizer: ${name}: the merged token ${JSON.stringify(a + b)} is not in the vocabulary`);
      const key = left * this.pairScale + right;
      this.mergeRanks.set(key, rank); // a repeated pair takes its last rank, as Hugging Face's readers do
      this.mergeResults[rank] = merged;
    });

    this.addedPattern = addedTokenPattern([...this.addedIds.keys()]);
  }

  /** Text → ids. Lone surrogates in `text` encode as U+FFFD, as UTF-8 would. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.encodeString(wellFormed(text), options);
  }

  /**
   * Appends the ids of `text` to `out`, as `encode(text, { specialTokens: false })` gives them
   * (clear `out.length` first to reuse it).
   */
  encodeInto(text: string, out: IdBuffer): void {
    this.encodeOrdinary(wellFormed(text), out);
  }

  /** Any bytes → ids; `decodeBytes` gives back the same bytes, invalid UTF-8 included. */
  encodeBytes(bytes: Uint8Array, options: EncodeOptions = {}): number[] {
    return this.encodeString(decodeLossless(bytes), options);
  }

  /** The exact bytes of `ids` (added tokens as their UTF-8 content). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.bytesOf(ids[i]).length;
    const out = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.tokenBytes[ids[i]];
      out.set(bytes, at);
      at += bytes.length;
    }
    return out;
  }

  /** Text of `ids`; invalid UTF-8 renders as U+FFFD (decodeBytes keeps the exact bytes). */
  decode(ids: ArrayLike<number>): string {
    return UTF8_LENIENT.decode(this.decodeBytes(ids));
  }

  /** The id of a token, given as written in the vocabulary (byte stand-ins, or an added token's content). */
  tokenToId(token: string): number | undefined {
    return this.addedIds.get(token) ?? this.modelIds.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.vocab[id];
  }

  toSpec(): BPEModelSpec {
    return { vocab: this.vocab.slice(), merges: this.merges.map(([a, b]) => [a, b] as const), added: this.addedTokens.map((t) => ({ ...t })) };
  }

  /** This tokenizer in Hugging Face's tokenizer.json format. */
  toJSON(): HuggingFaceTokenizerJSON {
    return specToHuggingFace(this.toSpec());
  }

  /** Writes tokenizer.json atomically (temporary file, fsync, rename); a folder gets `tokenizer.json` inside. */
  save(path: string): string {
    const file = tokenizerPath(path);
    writeTextAtomic(file, serializeHuggingFace(this.toJSON()));
    return file;
  }

  static fromJSON(json: unknown, source = "tokenizer.json"): BPETokenizer {
    const spec = specFromHuggingFace(json, source);
    try {
      return new BPETokenizer(spec);
    } catch (e) {
      throw new Error(`${source}: ${(e as Error).message.replace(/^BPETokenizer: /, "")}`);
    }
  }

  /** Reads a tokenizer.json (or a folder holding one), validating it. */
  static load(path: string): BPETokenizer {
    const file = tokenizerPath(path);
    return BPETokenizer.fromJSON(readJSONFile(file, "BPETokenizer.load"), file);
  }

  private bytesOf(id: number): Uint8Array {
    const bytes = Number.isInteger(id) ? this.tokenBytes[id] : undefined;
    if (bytes === undefined) throw new RangeError(`BPETokenizer.decode: id ${id} is not in the vocabulary (0..${this.vocabSize - 1})`);
    return bytes;
  }

  private encodeString(text: string, options: EncodeOptions): number[] {
    const out: number[] = [];
    const pattern = options.specialTokens === false ? null : this.addedPattern;
    if (pattern === null) {
      this.encodeOrdinary(text, out);
      return out;
    }
    let at = 0;
    for (const match of text.matchAll(pattern)) {
      const start = match.index ?? 0;
      if (start > at) this.encodeOrdinary(text.slice(at, start), out);
      out.push(this.addedIds.get(match[0]) as number);
      at = start + match[0].length;
    }
    this.encodeOrdinary(at === 0 ? text : text.slice(at), out);
    return out;
  }

  private encodeOrdinary(text: string, out: IdSink): void {
    for (const block of textBlocks(text)) this.encodeBlock(block, out);
  }

  private encodeBlock(text: string, out: IdSink): void {
    const chunks = text.match(PRETOKENIZE_PATTERN);
    if (chunks === null) return;
    const cache = this.cache;
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c];
      const at = cache.get(chunk);
      if (at !== undefined) {
        const arena = this.cacheIds, start = (at / CACHE_SPAN) | 0, end = start + (at % CACHE_SPAN);
        for (let i = start; i < end; i++) out.push(arena[i]);
        continue;
      }
      const ids = this.encodeChunk(chunk);
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
      if (chunk.length <= CACHE_CHUNK_CHARS) this.remember(chunk, ids);
    }
  }

  private remember(chunk: string, ids: number[]): void {
    if (this.cacheFill + ids.length > this.cacheIds.length) {
      if (this.cacheIds.length < CACHE_ARENA_MAX) {
        const bigger = new Int32Array(2 * this.cacheIds.length);
        bigger.set(this.cacheIds.subarray(0, this.cacheFill));
        this.cacheIds = bigger;
      } else this.clearCache();
    }
    if (this.cache.size >= CACHE_ENTRIES) this.clearCache();  // cheaper than LRU bookkeeping on every hit
    this.cacheIds.set(ids, this.cacheFill);
    // A copy of the key: ("x" + chunk) is flattened into a string of its own before it is sliced.
    const key = chunk.length < 13 ? chunk : ("x" + chunk).slice(1);
    this.cache.set(key, this.cacheFill * CACHE_SPAN + ids.length);
    this.cacheFill += ids.length;
  }

  private clearCache(): void {
    this.cache.clear();
    this.cacheFill = 0;
  }

  private encodeChunk(chunk: string): number[] {
    if (this.scratch.length < chunk.length * 3) this.scratch = new Uint8Array(chunk.length * 3);
    const n = utf8Bytes(chunk, this.scratch);
    const symbols = new Array<number>(n);
    for (let i = 0; i < n; i++) symbols[i] = this.byteIds[this.scratch[i]];
    if (n < 2) return symbols;
    return n < SCAN_LIMIT ? this.mergeByScan(symbols) : this.mergeByHeap(symbols);
  }

  private rankOf(left: number, right: number): number {
    const rank = this.mergeRanks.get(left * this.pairScale + right);
    return rank === undefined ? NO_MERGE : rank;
  }

  private mergeByScan(symbols: number[]): number[] {
    const ranks = new Array<number>(symbols.length - 1);
    for (let i = 0; i < ranks.length; i++) ranks[i] = this.rankOf(symbols[i], symbols[i + 1]);
    for (;;) {
      let best = NO_MERGE, at = -1;
      for (let i = 0; i < ranks.length; i++) if (ranks[i] < best) (best = ranks[i]), (at = i);
      if (at < 0) return symbols;
      symbols[at] = this.mergeResults[best];
      symbols.splice(at + 1, 1);
      ranks.splice(at, 1);
      if (at > 0) ranks[at - 1] = this.rankOf(symbols[at - 1], symbols[at]);
      if (at < ranks.length) ranks[at] = this.rankOf(symbols[at], symbols[at + 1]);
    }
  }

  /** Same result as mergeByScan in O(n log n): a heap of (rank, position) over a linked list. */
  private mergeByHeap(input: number[]): number[] {
    const n = input.length;
    const symbol = Int32Array.from(input), next = new Int32Array(n), prev = new Int32Array(n);
    for (let i = 0; i < n; i++) (next[i] = i + 1 < n ? i + 1 : -1), (prev[i] = i - 1);
    const heap = new MinHeap();
    const POSITIONS = 2 ** 31; // an entry is rank * POSITIONS + position: rank first, then leftmost
    for (let i = 0; i + 1 < n; i++) {
      const rank = this.rankOf(symbol[i], symbol[i + 1]);
      if (rank !== NO_MERGE) heap.push(rank * POSITIONS + i);
    }
    while (heap.size > 0) {
      const entry = heap.pop();
      const rank = Math.floor(entry / POSITIONS), i = entry - rank * POSITIONS;
      const j = next[i];
      // Entries go stale as neighbours merge; one is still good if its pair still has its rank.
      if (symbol[i] < 0 || j < 0 || this.rankOf(symbol[i], symbol[j]) !== rank) continue;
      symbol[i] = this.mergeResults[rank];
      symbol[j] = -1;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) {
        const r = this.rankOf(symbol[prev[i]], symbol[i]);
        if (r !== NO_MERGE) heap.push(r * POSITIONS + prev[i]);
      }
      if (next[i] >= 0) {
        const r = this.rankOf(symbol[i], symbol[next[i]]);
        if (r !== NO_MERGE) heap.push(r * POSITIONS + i);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(symbol[i]);
    return out;
  }
}

class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const a = this.items;
    let i = a.push(value) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= value) break;
      a[i] = a[parent];
      i = parent;
    }
    a[i] = value;
  }

  pop(): number {
    const a = this.items;
    const top = a[0], last = a.pop() as number;
    if (a.length === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= a.length) break;
      if (child + 1 < a.length && a[child + 1] < a[child]) child++;
      if (a[child] >= last) break;
      a[i] = a[child];
      i = child;
    }
    a[i] = last;
    return top;
  }
}

/** Matches any of `contents` literally, leftmost first and the longest where several start at one place. */
export function addedTokenPattern(contents: readonly string[]): RegExp | null {
  if (contents.length === 0) return null;
  const escaped = [...contents].sort((x, y) => y.length - x.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(escaped.join("|"), "g");
}
