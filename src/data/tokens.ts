/**
 * Token sources for training: an in-memory stream, or shards on disk read by window
 * (so a corpus larger than RAM trains: only the windows of the current batch are read).
 * Shard files are raw little-endian uint16 (vocab ≤ 65536) or int32 tokens.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";

export interface TokenSource {
  readonly length: number;
  /** Copies tokens [start, start + out.length) into out. */
  read(start: number, out: Int32Array): void;
}

export class MemoryTokens implements TokenSource {
  constructor(readonly tokens: Int32Array) {}
  get length(): number {
    return this.tokens.length;
  }
  read(start: number, out: Int32Array): void {
    if (start < 0 || start + out.length > this.tokens.length) {
      throw new RangeError(`MemoryTokens.read: [${start}, ${start + out.length}) is outside the ${this.tokens.length} tokens`);
    }
    out.set(this.tokens.subarray(start, start + out.length));
  }
}

export type ShardDType = "uint16" | "int32";

/** Several shard files viewed as one stream. Reads go through pread; nothing is held in memory. */
export class ShardedTokens implements TokenSource {
  private readonly fds: number[];
  private readonly starts: number[];
  readonly length: number;
  private readonly width: number;
  private buf = Buffer.alloc(0);

  constructor(readonly paths: string[], readonly dtype: ShardDType) {
    if (paths.length === 0) throw new Error("ShardedTokens: no shard files, so this split of the corpus is empty; prepare the corpus again from more text (more --data)");
    this.width = dtype === "uint16" ? 2 : 4;
    this.starts = [];
    let total = 0;
    for (const p of paths) {
      const size = statSync(p).size;
      if (size % this.width !== 0) throw new Error(`ShardedTokens: ${p} has ${size} bytes, not a whole number of ${dtype} tokens`);
      this.starts.push(total);
      total += size / this.width;
    }
    this.length = total;
    this.fds = paths.map((p) => openSync(p, "r"));
  }

  read(start: number, out: Int32Array): void {
    if (start < 0 || start + out.length > this.length) {
      throw new RangeError(`ShardedTokens.read: [${start}, ${start + out.length}) is outside the ${this.length} tokens`);
    }
    let done = 0;
    while (done < out.length) {
      const pos = start + done;
      let s = this.starts.length - 1;
      while (this.starts[s] > pos) s--;
      const shardEnd = s + 1 < this.starts.length ? this.starts[s + 1] : this.length;
      const n = Math.min(out.length - done, shardEnd - pos);
      const bytes = n * this.width;
      if (this.buf.length < bytes) this.buf = Buffer.alloc(bytes);
      const got = readSync(this.fds[s], this.buf, 0, bytes, (pos - this.starts[s]) * this.width);
      if (got !== bytes) throw new Error(`ShardedTokens: short read from ${this.paths[s]} (${got} of ${bytes} bytes)`);
      for (let i = 0; i < n; i++) out[done + i] = this.width === 2 ? this.buf.readUInt16LE(i * 2) : this.buf.readInt32LE(i * 4);
      done += n;
    }
  }

  close(): void {
    for (const fd of this.fds) closeSync(fd);
    this.fds.length = 0;
  }
}
