// The corpus preparation this project had before it streamed (src/data/prepare.ts at c39a1f0),
// kept verbatim as the reference the streaming path must equal: every source loaded into
// memory, deduplicated, split by splitByHash, each document encoded whole, shards and manifest
// written at the end.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { loadSources, splitByHash, type Doc } from "../../src/data/sources.js";
import type { CorpusManifest, TokenizerLike } from "../../src/data/prepare.js";
import type { ShardDType } from "../../src/data/tokens.js";

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

export function prepareInMemory(o: { specs: string[]; tokenizer: TokenizerLike; outDir: string; valFraction?: number; shardTokens?: number }): CorpusManifest {
  const valFraction = o.valFraction ?? 0.02;
  const manifestPath = join(o.outDir, "manifest.json");
  const { sources, docs, duplicates } = loadSources(o.specs);
  const sourceInfo = sources.map((s) => ({ spec: s.spec, files: s.files, documents: s.docs.length, skippedBinary: s.skippedBinary, invalidUtf8Files: s.invalidUtf8Files }));
  const tokInfo = { fingerprint: o.tokenizer.fingerprint(), vocabSize: o.tokenizer.vocabSize };
  const dtype: ShardDType = o.tokenizer.vocabSize <= 65536 ? "uint16" : "int32";
  const { train, val, unit, blockChars } = splitByHash(docs, valFraction);
  const tmp = join(o.outDir, `.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const write = (split: Doc[], name: string) => {
    const w = new ShardWriter(tmp, name, dtype, o.shardTokens ?? 1 << 24);
    let bytes = 0;
    split.forEach((d) => {
      w.push(o.tokenizer.encode(d.text));
      w.push([o.tokenizer.eot]);
      bytes += Buffer.byteLength(d.text, "utf8");
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
  return manifest;
}
