/**
 * Corpus preparation: sources -> exact dedup -> train/validation split by document (by
 * paragraph blocks when there are too few documents, e.g. one long file) ->
 * tokenized shards on disk (uint16 when the vocabulary fits, else int32) -> manifest.json
 * with the SHA-256 of every source file and of the tokenizer (lineage starts here).
 * A prepared folder whose manifest matches the same sources and tokenizer is reused.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, fsyncSync } from "node:fs";
import { join } from "node:path";
import { loadSources, sha256, splitByHash, type Doc, type SourceFile } from "./sources.js";
import { ShardedTokens, type ShardDType } from "./tokens.js";

export interface TokenizerLike {
  readonly vocabSize: number;
  /** id appended after every document */
  readonly eot: number;
  encode(text: string): ArrayLike<number>;
  /** A stable fingerprint of the vocabulary and merges. */
  fingerprint(): string;
}

export interface CorpusManifest {
  version: 1;
  sources: { spec: string; files: SourceFile[]; documents: number; skippedBinary: string[]; invalidUtf8Files: string[] }[];
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

export interface PreparedCorpus {
  dir: string;
  manifest: CorpusManifest;
  train: ShardedTokens;
  val: ShardedTokens;
  /** UTF-8 bytes per token on the validation split (for bits per byte). */
  bytesPerToken: number;
  reused: boolean;
}

class ShardWriter {
  readonly shards: string[] = [];
  tokens = 0;
  private fd = -1;
  private inShard = 0;
  private buf: Uint16Array | Int32Array;
  private fill = 0;
  constructor(private readonly dir: string, private readonly prefix: string, dtype: ShardDType, private readonly shardTokens: number) {
    this.buf = dtype === "uint16" ? new Uint16Array(1 << 16) : new Int32Array(1 << 16);
  }
  push(ids: ArrayLike<number>): void {
    for (let i = 0; i < ids.length; i++) {
      if (this.fd < 0 || this.inShard >= this.shardTokens) this.open();
      this.buf[this.fill++] = ids[i];
      this.inShard++;
      this.tokens++;
      if (this.fill === this.buf.length || this.inShard >= this.shardTokens) this.flush();
    }
  }
  private open(): void {
    this.close();
    const path = join(this.dir, `${this.prefix}-${String(this.shards.length).padStart(4, "0")}.bin`);
    this.shards.push(path);
    this.fd = openSync(path, "w");
    this.inShard = 0;
  }
  private flush(): void {
    if (this.fill === 0) return;
    writeSync(this.fd, new Uint8Array(this.buf.buffer, 0, this.fill * this.buf.BYTES_PER_ELEMENT));
    this.fill = 0;
  }
  close(): void {
    if (this.fd < 0) return;
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }
}

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
  onProgress?: (done: number, total: number) => void;
}

export function prepareCorpus(o: PrepareOptions): PreparedCorpus {
  const valFraction = o.valFraction ?? 0.02;
  const manifestPath = join(o.outDir, "manifest.json");
  const { sources, docs, duplicates } = loadSources(o.specs);
  const sourceInfo = sources.map((s) => ({ spec: s.spec, files: s.files, documents: s.docs.length, skippedBinary: s.skippedBinary, invalidUtf8Files: s.invalidUtf8Files }));
  const tokInfo = { fingerprint: o.tokenizer.fingerprint(), vocabSize: o.tokenizer.vocabSize };
  const dtype: ShardDType = o.tokenizer.vocabSize <= 65536 ? "uint16" : "int32";
  if (existsSync(manifestPath)) {
    const old = JSON.parse(readFileSync(manifestPath, "utf8")) as CorpusManifest;
    const same = JSON.stringify(old.sources.map((s) => s.files)) === JSON.stringify(sourceInfo.map((s) => s.files)) &&
      old.tokenizer.fingerprint === tokInfo.fingerprint && old.valFraction === valFraction &&
      old.train.shards.length > 0 && old.val.shards.length > 0 && [...old.train.shards, ...old.val.shards].every((p) => existsSync(p));
    if (same) return checkSize(open(o.outDir, old, true), o.minTokens);
  }
  const { train, val, unit, blockChars } = splitByHash(docs, valFraction);
  const tmp = join(o.outDir, `.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const write = (split: Doc[], name: string) => {
    const w = new ShardWriter(tmp, name, dtype, o.shardTokens ?? 1 << 24);
    let bytes = 0;
    split.forEach((d, i) => {
      w.push(o.tokenizer.encode(d.text));
      w.push([o.tokenizer.eot]);
      bytes += Buffer.byteLength(d.text, "utf8");
      o.onProgress?.(i + 1, split.length);
    });
    w.close();
    return { documents: split.length, bytes, tokens: w.tokens, shards: w.shards.map((p) => join(o.outDir, p.slice(tmp.length + 1))) };
  };
  const manifest: CorpusManifest = {
    version: 1, sources: sourceInfo, documents: docs.length, duplicatesDropped: duplicates, valFraction,
    split: unit === "block" ? { unit, blockChars } : { unit }, tokenizer: tokInfo, dtype,
    train: write(train, "train"), val: write(val, "val"),
  };
  for (const p of [...manifest.train.shards, ...manifest.val.shards]) renameSync(join(tmp, p.slice(o.outDir.length + 1)), p);
  rmSync(tmp, { recursive: true, force: true });
  const tmpManifest = `${manifestPath}.tmp-${process.pid}`;
  const fd = openSync(tmpManifest, "w");
  writeSync(fd, JSON.stringify(manifest, null, 2) + "\n");
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmpManifest, manifestPath);
  return checkSize(open(o.outDir, manifest, false), o.minTokens);
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

function open(dir: string, manifest: CorpusManifest, reused: boolean): PreparedCorpus {
  return {
    dir, manifest, reused,
    train: new ShardedTokens(manifest.train.shards, manifest.dtype),
    val: new ShardedTokens(manifest.val.shards, manifest.dtype),
    bytesPerToken: manifest.val.bytes / Math.max(1, manifest.val.tokens),
  };
}

export { sha256 };
