/**
 * Streaming Zstandard decompression that notices corruption: fzstd (pure JavaScript) decodes
 * each frame, and this walks the frame structure alongside it (RFC 8878: magic, header, block
 * headers, checksum), so that a truncated file, bytes that are not zstd, and a frame whose
 * XXH64 content checksum does not match its output (a flipped bit inside a block, which fzstd
 * alone would decode into plausible garbage) are errors. Concatenated and skippable frames are
 * read as the zstd tool reads them. Frames written without a checksum (`zstd --no-check`) are
 * decoded unchecked. The checksum is the low 32 bits of the output's XXH64 (seed 0), from
 * xxhash-wasm's streaming hasher.
 */
import { Decompress } from "fzstd";
import xxhash, { type XXHash } from "xxhash-wasm";

const { create64 } = await xxhash();

const ZSTD_MAGIC = 0xfd2fb528;

type State = "magic" | "descriptor" | "header" | "skip-size" | "skip" | "block-header" | "block" | "checksum";

export class ZstdStream {
  private state: State = "magic";
  /** Bytes gathered for the field being read (magic, header, block header, checksum). */
  private field = new Uint8Array(18);
  private fieldLength = 0;
  private need = 4;
  /** Bytes left in the current block body or skippable frame. */
  private left = 0;
  private lastBlock = false;
  private hasChecksum = false;
  private frame: Decompress | null = null;
  private hash: XXHash<bigint> | null = null;
  private frames = 0;
  private out: Uint8Array[] = [];

  /** Decompresses the next bytes; returns the output they complete. Throws on corrupt data. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.out = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.state === "block" || this.state === "skip") {
        const n = Math.min(this.left, chunk.length - at);
        if (this.state === "block") this.feed(chunk.subarray(at, at + n), false);
        at += n;
        this.left -= n;
        if (this.left === 0) {
          if (this.state === "block") this.endBlock();
          else this.endSkip();
        }
        continue;
      }
      const n = Math.min(this.need - this.fieldLength, chunk.length - at);
      this.field.set(chunk.subarray(at, at + n), this.fieldLength);
      this.fieldLength += n;
      at += n;
      if (this.fieldLength === this.need) this.fieldDone();
    }
    return this.out;
  }

  /** Call at the end of the input: throws if it stopped inside a frame. */
  end(): void {
    if (this.state !== "magic" || this.fieldLength !== 0) {
      throw new Error(`zstd: unexpected end of data inside frame ${this.frames + 1} (the file is truncated)`);
    }
  }

  private feed(bytes: Uint8Array, final: boolean): void {
    this.frame!.push(bytes, final);
  }

  private fieldDone(): void {
    const f = this.field;
    const bytes = f.slice(0, this.fieldLength);
    this.fieldLength = 0;
    switch (this.state) {
      case "magic": {
        const magic = (f[0] | (f[1] << 8) | (f[2] << 16) | (f[3] << 24)) >>> 0;
        if (magic === ZSTD_MAGIC) {
          this.frame = new Decompress((data) => {
            this.hash?.update(data);
            if (data.length > 0) this.out.push(data);
          });
          this.feed(bytes, false);
          this.state = "descriptor";
          this.need = 1;
          return;
        }
        if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
          this.state = "skip-size";
          this.need = 4;
          return;
        }
        throw new Error(`zstd: frame ${this.frames + 1} does not start with the zstd magic number (0x${magic.toString(16)}): not zstd data, or corrupt`);
      }
      case "descriptor": {
        const d = f[0];
        if (d & 0x08) throw new Error(`zstd: frame ${this.frames + 1}: reserved bit set in the frame header (corrupt)`);
        const singleSegment = (d >> 5) & 1;
        const fcs = [singleSegment, 2, 4, 8][d >> 6];
        const dict = [0, 1, 2, 4][d & 3];
        this.hasChecksum = ((d >> 2) & 1) === 1;
        this.hash = this.hasChecksum ? create64() : null;
        this.feed(bytes, false);
        const rest = (singleSegment ? 0 : 1) + dict + fcs;
        if (rest > 0) {
          this.state = "header";
          this.need = rest;
        } else {
          this.state = "block-header";
          this.need = 3;
        }
        return;
      }
      case "header":
        this.feed(bytes, false);
        this.state = "block-header";
        this.need = 3;
        return;
      case "skip-size":
        this.left = (f[0] | (f[1] << 8) | (f[2] << 16) | (f[3] << 24)) >>> 0;
        this.state = "skip";
        if (this.left === 0) this.endSkip();
        return;
      case "block-header": {
        const h = f[0] | (f[1] << 8) | (f[2] << 16);
        this.lastBlock = (h & 1) === 1;
        const type = (h >> 1) & 3;
        if (type === 3) throw new Error(`zstd: frame ${this.frames + 1}: reserved block type (corrupt)`);
        this.feed(bytes, false);
        this.left = type === 1 ? 1 : h >>> 3;
        this.state = "block";
        if (this.left === 0) this.endBlock();
        return;
      }
      case "checksum":
        this.finishFrame(bytes);
        return;
      default:
        throw new Error(`zstd: internal state ${this.state}`);
    }
  }

  private endSkip(): void {
    this.state = "magic";
    this.need = 4;
  }

  private endBlock(): void {
    if (!this.lastBlock) {
      this.state = "block-header";
      this.need = 3;
    } else if (this.hasChecksum) {
      this.state = "checksum";
      this.need = 4;
    } else {
      this.finishFrame(new Uint8Array(0));
    }
  }

  private finishFrame(checksum: Uint8Array): void {
    this.feed(checksum, true);
    if (this.hash !== null) {
      const lo = Number(this.hash.digest() & 0xffffffffn);
      const stored = (checksum[0] | (checksum[1] << 8) | (checksum[2] << 16) | (checksum[3] << 24)) >>> 0;
      if (stored !== lo) {
        throw new Error(`zstd: frame ${this.frames + 1}: content checksum mismatch (stored ${stored.toString(16)}, computed ${lo.toString(16)}): the file is corrupt`);
      }
    }
    this.frames++;
    this.frame = null;
    this.hash = null;
    this.state = "magic";
    this.need = 4;
  }
}

/** Decompresses a whole zstd buffer (for the in-memory loaders). */
export function zstdDecompress(data: Uint8Array): Buffer {
  const z = new ZstdStream();
  const parts = z.push(data);
  z.end();
  return Buffer.concat(parts);
}
