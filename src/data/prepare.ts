/**
 * Corpus preparation, streamed: sources -> exact dedup -> train/validation split by document
 * (by paragraph blocks when there are too few documents, e.g. one long file) -> tokenized
 * shards on disk (uint16 when the vocabulary fits, else int32) -> manifest.json with the
 * SHA-256 of every source file and of the tokenizer (lineage starts here).
 *
 *   1. scan (scan.ts): read every source once; keep per document only a digest and two bits.
 *      Files are read, hashed and decoded on the tokenizer threads (pool.ts), in batches, and
 *      merged here in order.
 *   2. tokenize (pieces.ts, pool.ts): read again; plain files up to a batch's size are read and
 *      encoded whole on the threads, larger or compressed ones (and JSONL, built-ins) are read
 *      here and cut into pieces; batches are tokenized on the threads and written here in batch
 *      order (shards.ts). This thread only merges and writes, so both passes run on every core.
 *
 * Memory is bounded by `memoryMb` (text in flight: read, queued, at the workers, and their ids),
 * whatever the corpus size; besides it: the worker threads themselves and the tokenizer (a fixed
 * cost, with the tokenizer's chunk cache, packed: ~100 bytes a chunk, 64K chunks), each thread's garbage up to a share of the bound
 * (heap.ts: a full collection when it has grown by memoryMb / 32, 2 to 16 MB), 24-32 bytes per
 * document for deduplication, and the manifest's record of every file. The shards are byte for byte those of the in-memory path
 * (sources.ts loadSources + splitByHash, then encoding each document) and the same for any
 * number of threads.
 *
 * A prepared folder whose manifest matches the same sources and tokenizer is reused; one whose
 * sources are a prefix of the new ones is extended (only the new documents are tokenized); a
 * preparation interrupted at any point (kill -9) resumes from its last complete shard (staging.ts).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename, join } from "node:path";
import type { IdBuffer } from "../tokenizer/index.js";
import { forcedBlocks, pieces, type Position, type SplitPlan } from "./pieces.js";
import { HeapGovernor, type HeapPeak } from "./heap.js";
import { TokenizePool, type Encoded, type Entry, type TokenizerRecipe } from "./pool.js";
import type { ReadOptions } from "./read.js";
import { scanSources, type FileItem, type Scan, type ScannedSource, type ScanProgress } from "./scan.js";
import { emptySplit, ShardWriter, type SplitState } from "./shards.js";
import type { SourceFile } from "./sources.js";
import { blockSizeFor, tooLittleTextError } from "./split.js";
import { commit, finishCommit, readProgress, resetStaging, STAGING, writeProgress, type ProgressRecord } from "./staging.js";
import { ShardedTokens, type ShardDType } from "./tokens.js";

export interface TokenizerLike {
  readonly vocabSize: number;
  /** id appended after every document */
  readonly eot: number;
  /**
   * Encoding must be local to byte-level BPE's pre-tokenizer chunks: encoding text cut before a
   * whitespace character that precedes a non-whitespace one gives the same ids as encoding it
   * whole (cut.ts). Both tokenizers here are.
   */
  encode(text: string): ArrayLike<number>;
  /** As encode, appending to a reused buffer (the tokenizer threads use it when there is one). */
  encodeInto?(text: string, out: IdBuffer): void;
  /** A stable fingerprint of the vocabulary and merges. */
  fingerprint(): string;
  /** How a worker thread rebuilds this tokenizer; without it, tokenization runs on the calling thread. */
  recipe?(): TokenizerRecipe;
}

export interface CorpusManifest {
  version: 1;
  sources: { spec: string; files: SourceFile[]; documents: number; skippedBinary: string[]; invalidUtf8Files: string[]; unreadableFiles?: { path: string; reason: string }[] }[];
  documents: number;
  duplicatesDropped: number;
  valFraction: number;
  /** What the split assigned by hash: whole documents, or blocks of about blockChars characters. */
  split?: { unit: "document" | "block"; blockChars?: number };
  tokenizer: { fingerprint: string; vocabSize: number };
  dtype: ShardDType;
  train: { documents: number; bytes: number; tokens: number; shards: string[] };
  val: { documents: number; bytes: number; tokens: number; shards: string[] };
}

/** What one call did. */
export interface PrepareStats {
  /** "reused": nothing to do; "prepared": from scratch; "resumed": after an interruption; "extended": new sources appended. */
  how: "reused" | "prepared" | "resumed" | "extended";
  /** Documents, text bytes and tokens this call tokenized. */
  documents: number;
  bytes: number;
  tokens: number;
  threads: number;
  /** The memory bound, and the most that was held against it (text and ids in flight). */
  memoryBytes: number;
  peakHeldBytes: number;
  /** Bytes of the per-document index (digests and bits). */
  indexBytes: number;
  scanSeconds: number;
  tokenizeSeconds: number;
  /** Heap peaks, sampled: this thread's and each tokenizer thread's (see pool.ts HeapPeak). */
  heaps: { main: HeapPeak; threads: HeapPeak[] };
}

export interface PreparedCorpus {
  dir: string;
  manifest: CorpusManifest;
  train: ShardedTokens;
  val: ShardedTokens;
  /** UTF-8 bytes per token on the validation split (for bits per byte). */
  bytesPerToken: number;
  reused: boolean;
  stats: PrepareStats;
}

export type PrepareProgress = ScanProgress | { stage: "tokenize"; bytes: number; totalBytes: number; documents: number; tokens: number };

export interface PrepareOptions {
  specs: string[];
  tokenizer: TokenizerLike;
  outDir: string;
  valFraction?: number;
  shardTokens?: number;
  /**
   * Each split must hold at least this many tokens (a training window, ctx + 1); a corpus
   * too small for that is an error saying how much text is needed.
   */
  minTokens?: number;
  /** Bound on text in flight, in MB (2^20 bytes; default 256). */
  memoryMb?: number;
  /** Tokenizer threads (default one per core; 0 tokenizes on the calling thread). */
  threads?: number;
  onProgress?: (p: PrepareProgress) => void;
  /** Called each time the progress is made durable (tests use it to interrupt a preparation). */
  onCheckpoint?: (position: Position) => void;
}

const DEFAULT_MEMORY_MB = 256;

/** What a preparation is: it resumes only a preparation with an equal key. */
interface PrepKey {
  specs: string[];
  fingerprint: string;
  valFraction: number;
  shardTokens: number;
  dtype: ShardDType;
  /** The scan's digest of every source file. */
  input: string;
  plan: SplitPlan;
}

/** How the memory bound is shared out: read size, piece size, batch size. */
function budgetFor(memoryBytes: number, inFlight: number, dtype: ShardDType, plan: SplitPlan) {
  const perChar = 4 + (dtype === "uint16" ? 2 : 4);  // a batch's text here and at its worker, and its ids
  const readBytes = Math.min(1 << 18, Math.max(4096, Math.floor(memoryBytes / 32)));
  // Small pieces and batches are as fast as large ones (a batch of 128K characters is ~10 ms of
  // tokenizing, far above a message's cost) and keep every thread's heap and the ids in flight
  // small; the bound only makes them smaller still.
  const pieceChars = Math.min(1 << 16, Math.max(1024, Math.floor(memoryBytes / 64)));
  // The cutters' text (2 bytes a character), and small files read ahead (8 reads' worth).
  const cutters = 2 * (pieceChars + readBytes) + (plan.unit === "block" ? 2 * (2 * plan.blockChars + readBytes) : 0) + 8 * readBytes;
  const slot = Math.floor((memoryBytes - cutters) / (perChar * (inFlight + 1)));
  const batchChars = Math.min(1 << 17, slot - pieceChars);
  if (batchChars < 1024) {
    const need = Math.ceil((cutters + perChar * (inFlight + 1) * (pieceChars + 1024)) / 2 ** 20);
    throw new Error(`prepare: a memory bound of ${+(memoryBytes / 2 ** 20).toFixed(2)} MB is too small for ${inFlight} batches in flight; give at least ${need} MB (--prep-memory-mb) or fewer threads`);
  }
  return { perChar, readBytes, pieceChars, batchChars };
}

export async function prepareCorpus(o: PrepareOptions): Promise<PreparedCorpus> {
  const valFraction = o.valFraction ?? 0.02;
  const shardTokens = o.shardTokens ?? 1 << 24;
  const memoryBytes = Math.floor((o.memoryMb ?? DEFAULT_MEMORY_MB) * 2 ** 20);
  const threads = o.threads ?? availableParallelism();
  if (!(Number.isInteger(shardTokens) && shardTokens >= 1)) throw new Error(`prepare: shardTokens must be an integer >= 1, got ${shardTokens}`);
  if (!(Number.isInteger(threads) && threads >= 0)) throw new Error(`prepare: threads must be an integer >= 0, got ${threads}`);
  mkdirSync(o.outDir, { recursive: true });
  finishCommit(o.outDir);
  const t0 = performance.now();
  const dtype: ShardDType = o.tokenizer.vocabSize <= 65536 ? "uint16" : "int32";
  // One set of threads for both passes: they scan the files, then tokenize.
  // Each thread's garbage is collected when it has grown by a share of the bound (heap.ts).
  const heapSlack = Math.min(16 * 2 ** 20, Math.max(2 * 2 ** 20, Math.floor(memoryBytes / 32)));
  const pool = await TokenizePool.start(o.tokenizer, o.tokenizer.recipe === undefined ? 0 : threads, dtype, heapSlack);
  try {
    return await prepareWith(o, pool, { valFraction, shardTokens, memoryBytes, dtype, t0, governor: new HeapGovernor(heapSlack) });
  } finally {
    await pool.close();
  }
}

async function prepareWith(o: PrepareOptions, pool: TokenizePool, c: { valFraction: number; shardTokens: number; memoryBytes: number; dtype: ShardDType; t0: number; governor: HeapGovernor }): Promise<PreparedCorpus> {
  const { valFraction, shardTokens, memoryBytes, dtype, t0, governor } = c;
  const files = pool.threads > 0 ? { scanner: (items: FileItem[], read: ReadOptions) => pool.scan(items, read), inFlight: 2 * pool.threads } : undefined;
  const scan = await scanSources(o.specs, { valFraction, onProgress: (p) => {
    governor.check();
    o.onProgress?.(p);
  }, read: { chunkBytes: Math.min(1 << 18, Math.max(4096, Math.floor(memoryBytes / 32))) }, files });
  const scanSeconds = (performance.now() - t0) / 1000;
  const tokInfo = { fingerprint: o.tokenizer.fingerprint(), vocabSize: o.tokenizer.vocabSize };
  const stats: PrepareStats = { how: "reused", documents: 0, bytes: 0, tokens: 0, threads: 0, memoryBytes, peakHeldBytes: 0, indexBytes: scan.indexBytes, scanSeconds, tokenizeSeconds: 0, heaps: { main: governor.peak, threads: [] } };
  const manifestPath = join(o.outDir, "manifest.json");
  const old = existsSync(manifestPath) ? JSON.parse(readFileSync(manifestPath, "utf8")) as CorpusManifest : null;
  const inputs = (sources: CorpusManifest["sources"]) => JSON.stringify(sources.map((s) => [s.files, s.unreadableFiles ?? []]));
  if (old !== null && inputs(old.sources) === inputs(scan.sources) && old.tokenizer.fingerprint === tokInfo.fingerprint && old.valFraction === valFraction &&
    old.train.shards.length > 0 && old.val.shards.length > 0 && [...old.train.shards, ...old.val.shards].every((p) => existsSync(p))) {
    return checkSize(open(o.outDir, old, stats), o.minTokens);
  }

  let plan: SplitPlan;
  if (scan.valDocuments > 0 && scan.trainDocuments > 0) plan = { unit: "document" };
  else {
    const blockChars = blockSizeFor(scan.uniqueChars);
    const f = await forcedBlocks(scan, blockChars, valFraction);
    if (f.blocks < 2) throw tooLittleTextError(scan.uniqueChars, scan.unique);
    plan = { unit: "block", blockChars, valFraction, forceVal: f.forceVal, forceTrain: f.forceTrain };
  }
  const key: PrepKey = { specs: o.specs, fingerprint: tokInfo.fingerprint, valFraction, shardTokens, dtype, input: scan.digest, plan };
  let progress = readProgress(o.outDir);
  if (progress !== null && JSON.stringify(progress.key) === JSON.stringify(key)) stats.how = "resumed";
  else {
    const staging = resetStaging(o.outDir);
    const extended = old !== null ? extension(old, scan, key, staging, o.outDir, shardTokens) : null;
    stats.how = extended !== null ? "extended" : "prepared";
    progress = extended ?? { version: 1, key, position: { doc: 0, chars: 0 }, train: emptySplit(), val: emptySplit(), started: { doc: 0, chars: 0 } };
    writeProgress(o.outDir, progress);
  }
  const t1 = performance.now();
  const { train, val } = await tokenize(o, pool, governor, scan, plan, progress, dtype, shardTokens, memoryBytes, stats);
  stats.tokenizeSeconds = (performance.now() - t1) / 1000;
  stats.heaps.threads = await pool.heapPeaks();

  const split = (s: SplitState) => ({ documents: s.documents, bytes: s.bytes, tokens: s.tokens, shards: s.shards.map((n) => join(o.outDir, n)) });
  const manifest: CorpusManifest = {
    version: 1, sources: scan.sources.map(manifestSource), documents: scan.unique, duplicatesDropped: scan.duplicates, valFraction,
    split: plan.unit === "block" ? { unit: "block", blockChars: plan.blockChars } : { unit: "document" }, tokenizer: tokInfo, dtype,
    train: split(train), val: split(val),
  };
  commit(o.outDir, {
    manifest,
    moves: [...train.shards.slice(train.staged), ...val.shards.slice(val.staged)],
    keep: [...train.shards, ...val.shards],
  });
  return checkSize(open(o.outDir, manifest, stats), o.minTokens);
}

function manifestSource(s: ScannedSource): CorpusManifest["sources"][number] {
  return { spec: s.spec, files: s.files, documents: s.documents, skippedBinary: s.skippedBinary, invalidUtf8Files: s.invalidUtf8Files, ...(s.unreadableFiles ? { unreadableFiles: s.unreadableFiles } : {}) };
}

/**
 * When the old corpus's sources are the first of the new ones (same files, tokenizer, fraction,
 * split by document) and its shards are as a fresh preparation would have cut them, the new
 * preparation starts where it ended: its last partial shard of each split is copied into the
 * staging folder to be appended to, and only the new sources' documents are tokenized.
 */
function extension(old: CorpusManifest, scan: Scan, key: PrepKey, staging: string, outDir: string, shardTokens: number): ProgressRecord | null {
  const k = old.sources.length;
  if (key.plan.unit !== "document" || (old.split?.unit ?? "document") !== "document" || old.dtype !== key.dtype) return null;
  if (old.tokenizer.fingerprint !== key.fingerprint || old.valFraction !== key.valFraction) return null;
  if (k === 0 || k >= scan.sources.length) return null;
  for (let i = 0; i < k; i++) {
    const a = old.sources[i], b = scan.sources[i];
    if (a.spec !== b.spec || JSON.stringify([a.files, a.unreadableFiles ?? []]) !== JSON.stringify([b.files, b.unreadableFiles ?? []])) return null;
  }
  const doc = scan.sources.slice(0, k).reduce((n, s) => n + s.documents, 0);
  let unique = 0;
  for (let i = 0; i < doc; i++) if (!scan.dropped.get(i)) unique++;
  if (unique !== old.train.documents + old.val.documents) return null;
  const width = old.dtype === "uint16" ? 2 : 4;
  const splitState = (part: CorpusManifest["train"]): SplitState | null => {
    const names = part.shards.map((p) => basename(p));
    const sizes = names.map((n) => (existsSync(join(outDir, n)) ? statSync(join(outDir, n)).size / width : -1));
    if (sizes.some((n, i) => (i < sizes.length - 1 ? n !== shardTokens : n < 1 || n > shardTokens))) return null;
    if (sizes.reduce((a, b) => a + b, 0) !== part.tokens) return null;
    const last = sizes[sizes.length - 1];
    const staged = last < shardTokens ? names.length - 1 : names.length;
    if (staged < names.length) copyFileSync(join(outDir, names[staged]), join(staging, names[staged]));
    return { shards: names, staged, last, tokens: part.tokens, documents: part.documents, bytes: part.bytes };
  };
  const train = splitState(old.train), val = splitState(old.val);
  if (train === null || val === null) return null;
  const position = { doc, chars: 0 };
  return { version: 1, key, position, train, val, started: position };
}

async function tokenize(o: PrepareOptions, pool: TokenizePool, governor: HeapGovernor, scan: Scan, plan: SplitPlan, progress: ProgressRecord, dtype: ShardDType, shardTokens: number, memoryBytes: number, stats: PrepareStats): Promise<{ train: SplitState; val: SplitState }> {
  const staging = join(o.outDir, STAGING);
  const inFlight = pool.threads === 0 ? 1 : 2 * pool.threads;
  const b = budgetFor(memoryBytes, inFlight, dtype, plan);
  stats.threads = pool.threads;
  let held = 0;
  const meter = { add(n: number): void {
    held += n;
    if (held > stats.peakHeldBytes) stats.peakHeldBytes = held;
  } };
  const writers = [new ShardWriter(staging, "train", dtype, shardTokens, progress.train), new ShardWriter(staging, "val", dtype, shardTokens, progress.val)];
  const eot = [o.tokenizer.eot];
  const doneBytes = progress.train.bytes + progress.val.bytes;
  const totalBytes = Math.max(0, scan.uniqueBytes - doneBytes);
  let position = progress.position;
  const report = (): void => o.onProgress?.({
    stage: "tokenize", bytes: stats.bytes, totalBytes, documents: progress.train.documents + progress.val.documents + stats.documents, tokens: progress.train.tokens + progress.val.tokens + stats.tokens,
  });
  type Batch = { pieces: { text: Entry; side: 0 | 1; eot: boolean }[]; chars: number; after: Position; result?: Promise<Encoded> };
  const queue: Batch[] = [];
  let batch: Batch = { pieces: [], chars: 0, after: position };
  const checkpoint = (): void => {
    const [train, val] = writers.map((w) => w.sync());
    writeProgress(o.outDir, { ...progress, position, train, val });
    o.onCheckpoint?.(position);
  };
  const writeOldest = async (): Promise<void> => {
    const done = queue.shift()!;
    const { ids, counts, bytes: textBytes } = await done.result!;
    let at = 0;
    done.pieces.forEach((p, i) => {
      const w = writers[p.side];
      w.push(ids.subarray(at, at + counts[i]));
      at += counts[i];
      const bytes = textBytes[i];
      if (p.eot) w.push(eot);
      w.count(p.eot ? 1 : 0, bytes);
      stats.bytes += bytes;
      stats.documents += p.eot ? 1 : 0;
      stats.tokens += counts[i] + (p.eot ? 1 : 0);
    });
    pool.recycle(ids);
    meter.add(-done.chars * b.perChar);
    governor.check();
    position = done.after;
    report();
    const finished = writers[0].takeFinished() + writers[1].takeFinished();
    if (finished > 0) checkpoint();
  };
  const dispatch = async (): Promise<void> => {
    if (batch.pieces.length > 0) {
      batch.result = pool.encode(batch.pieces.map((p) => p.text));
      batch.result.catch(() => {});  // surfaced when written
      queue.push(batch);
      batch = { pieces: [], chars: 0, after: position };
    }
    while (queue.length > inFlight) await writeOldest();
  };
  let closed = false;
  try {
    // Files up to a batch's size are read and encoded whole by the tokenizer threads (their UTF-8
    // size bounds their characters); larger ones are read here and cut into pieces.
    const wholeBytes = pool.threads > 0 ? b.batchChars : 0;
    for await (const p of pieces(scan, plan, position, b.pieceChars, meter, { chunkBytes: b.readBytes }, wholeBytes)) {
      const chars = typeof p.text === "string" ? p.text.length : p.text.size;
      meter.add(chars * b.perChar);
      governor.check();
      batch.pieces.push({ text: p.text, side: p.side, eot: p.eot });
      batch.chars += chars;
      batch.after = p.after;
      if (batch.chars >= b.batchChars || batch.pieces.length >= 4096) await dispatch();
    }
    await dispatch();
    while (queue.length > 0) await writeOldest();
    const [train, val] = writers.map((w) => w.close());
    closed = true;
    return { train, val };
  } finally {
    if (!closed) for (const w of writers) w.abandon();
  }
}


/** Throws, saying how much more text is needed, when a split is shorter than one window. */
function checkSize(c: PreparedCorpus, minTokens: number | undefined): PreparedCorpus {
  if (minTokens === undefined) return c;
  const m = c.manifest;
  for (const [name, part] of [["training", m.train], ["validation", m.val]] as const) {
    if (part.tokens >= minTokens) continue;
    const share = name === "validation" ? m.valFraction : 1 - m.valFraction;
    const bytesPerToken = (m.train.bytes + m.val.bytes) / Math.max(1, m.train.tokens + m.val.tokens);
    const needKB = Math.ceil((minTokens * bytesPerToken) / share / 1024);
    c.train.close();
    c.val.close();
    throw new Error(
      `corpus: the ${name} split holds ${part.tokens.toLocaleString("en-US")} tokens, fewer than one training window of ` +
      `${minTokens} (--ctx + 1), from ${(m.train.bytes + m.val.bytes).toLocaleString("en-US")} bytes of text; give more text with --data ` +
      `(about ${needKB.toLocaleString("en-US")} KB or more at this --ctx) or a smaller --ctx`,
    );
  }
  return c;
}

function open(dir: string, manifest: CorpusManifest, stats: PrepareStats): PreparedCorpus {
  return {
    dir, manifest, reused: stats.how === "reused", stats,
    train: new ShardedTokens(manifest.train.shards, manifest.dtype),
    val: new ShardedTokens(manifest.val.shards, manifest.dtype),
    bytesPerToken: manifest.val.bytes / Math.max(1, manifest.val.tokens),
  };
}

export { sha256 } from "./sources.js";
