/**
 * Token shards written as they fill, resumable. A split (train or val) is a list of shard files
 * `<split>-NNNN.bin` of `shardTokens` tokens each (the last one partial), raw little-endian
 * uint16 or int32. The writer appends to the last shard, starts the next when it is full, and
 * can report a state (shard names, tokens in the last one, totals) from which a later process
 * reopens the split exactly there: the last shard is cut back to its recorded length and
 * shards written after the state was taken are deleted.
 *
 * Shards are written into a staging folder. With `staged` > 0 the first shards of the split
 * live in the corpus folder already (an earlier preparation that this one extends) and are
 * never written to.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readdirSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ShardDType } from "./tokens.js";

export interface SplitState {
  /** Shard file names, in order. */
  shards: string[];
  /** Index of the first shard held in the staging folder (earlier ones are final). */
  staged: number;
  /** Tokens in the last shard. */
  last: number;
  tokens: number;
  documents: number;
  /** UTF-8 bytes of the text these tokens encode. */
  bytes: number;
}

export const emptySplit = (): SplitState => ({ shards: [], staged: 0, last: 0, tokens: 0, documents: 0, bytes: 0 });

export const shardName = (prefix: string, index: number): string => `${prefix}-${String(index).padStart(4, "0")}.bin`;

export class ShardWriter {
  /** Shards finished (closed full) since the last `takeFinished()`. */
  private finished = 0;
  private fd = -1;
  private readonly buf: Uint16Array | Int32Array;
  private fill = 0;
  private readonly state: SplitState;

  constructor(private readonly staging: string, private readonly prefix: string, dtype: ShardDType, private readonly shardTokens: number, from: SplitState) {
    this.state = { ...from, shards: [...from.shards] };
    this.buf = dtype === "uint16" ? new Uint16Array(1 << 13) : new Int32Array(1 << 13);
    // Anything past the recorded state was written after it and is not part of the corpus.
    const known = new Set(this.state.shards.slice(this.state.staged));
    const mine = new RegExp(`^${prefix}-\\d{4}\\.bin$`);
    for (const f of existsSync(staging) ? readdirSync(staging) : []) if (mine.test(f) && !known.has(f)) rmSync(join(staging, f));
    const s = this.state;
    if (s.shards.length > s.staged && s.last < shardTokens) {
      const path = join(staging, s.shards[s.shards.length - 1]);
      const width = this.buf.BYTES_PER_ELEMENT;
      if (!existsSync(path) || statSync(path).size < s.last * width) {
        throw new Error(`corpus: ${path} holds fewer tokens than the preparation recorded (${s.last}); its staging folder is damaged: delete ${staging} to prepare the corpus again`);
      }
      this.fd = openSync(path, "r+");
      ftruncateSync(this.fd, s.last * width);
      this.fd = reopenForAppend(this.fd, path);
    }
  }

  /** Appends token ids. */
  push(ids: Uint16Array | Int32Array | number[]): void {
    const s = this.state;
    let at = 0;
    while (at < ids.length) {
      if (this.fd < 0) this.open();
      const n = Math.min(ids.length - at, this.buf.length - this.fill, this.shardTokens - s.last);
      if (Array.isArray(ids)) for (let i = 0; i < n; i++) this.buf[this.fill + i] = ids[at + i];
      else this.buf.set(ids.subarray(at, at + n), this.fill);
      this.fill += n;
      at += n;
      s.last += n;
      s.tokens += n;
      if (this.fill === this.buf.length) this.flush();
      if (s.last === this.shardTokens) this.closeShard();
    }
  }

  /** Counts a document (after its end-of-text token) and the bytes of its text. */
  count(documents: number, bytes: number): void {
    this.state.documents += documents;
    this.state.bytes += bytes;
  }

  /** How many shards filled up since the last call. */
  takeFinished(): number {
    const n = this.finished;
    this.finished = 0;
    return n;
  }

  /** Writes what is buffered and makes it durable; returns the state a resume starts from. */
  sync(): SplitState {
    this.flush();
    if (this.fd >= 0) fsyncSync(this.fd);
    return { ...this.state, shards: [...this.state.shards] };
  }

  close(): SplitState {
    const s = this.sync();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    return s;
  }

  /** Closes the open shard without writing what is buffered (after a failure; a resume cuts it back anyway). */
  abandon(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.fill = 0;
  }

  private open(): void {
    const s = this.state;
    const name = shardName(this.prefix, s.shards.length);
    s.shards.push(name);
    s.last = 0;
    this.fd = openSync(join(this.staging, name), "w");
  }

  private flush(): void {
    if (this.fill === 0) return;
    const bytes = new Uint8Array(this.buf.buffer, 0, this.fill * this.buf.BYTES_PER_ELEMENT);
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done);
    this.fill = 0;
  }

  private closeShard(): void {
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
    this.finished++;
  }
}

function reopenForAppend(fd: number, path: string): number {
  closeSync(fd);
  return openSync(path, "a");
}
