/**
 * One file as a stream of text: the bytes as stored are hashed (SHA-256, for the manifest),
 * decompressed when the name ends in .gz (node:zlib) or .zst (./zstd.ts), checked for a NUL
 * byte in the first 8 KiB (a binary file: no text), checked for valid UTF-8 and decoded. The
 * same rules as the in-memory loader (sources.ts readText): invalid UTF-8 decodes with U+FFFD
 * and is counted; a leading byte-order mark is not text.
 *
 * A file that cannot be read (permissions, I/O) or whose compressed data is corrupt throws
 * FileReadError naming the path; the caller decides whether that skips the file or stops.
 */
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import { closeSync, createReadStream, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { pipeline } from "node:stream";
import { createGunzip } from "node:zlib";
import { ZstdStream } from "./zstd.js";
import type { SourceFile } from "./sources.js";

export type Compression = "gz" | "zst" | null;

export function compressionOf(path: string): Compression {
  return /\.gz$/i.test(path) ? "gz" : /\.zst$/i.test(path) ? "zst" : null;
}

/** The name without its compression suffix (to tell a .jsonl.gz). */
export function withoutCompression(path: string): string {
  return path.replace(/\.(gz|zst)$/i, "");
}

export class FileReadError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
  }
}

/** What reading a file found out; filled in as the stream is consumed, complete at its end. */
export interface FileReport {
  record: SourceFile | null;
  binary: boolean;
  invalidUtf8: boolean;
  /** UTF-8 bytes of the decompressed content. */
  contentBytes: number;
}

export const newReport = (): FileReport => ({ record: null, binary: false, invalidUtf8: false, contentBytes: 0 });

export interface ReadOptions {
  /** Raw read size, bytes (default 256 KiB); also the decompressor's output chunk. */
  chunkBytes?: number;
  /** Called with the number of raw bytes read, as they are read (progress). */
  onRaw?: (bytes: number) => void;
}

/** A file's stored bytes read ahead (a small file, read whole while earlier ones are processed). */
export type Prefetched = Promise<Buffer>;

/**
 * Reads small files whole, so that a folder of many small files is not read through a stream
 * each (open, stat, read, close on the thread pool, and a 256 KiB buffer a file): the ones ahead
 * of `i` are read asynchronously, up to `maxBytes` (and 64 files), counted by `held`, when
 * `readAhead` is set (cold storage); otherwise file `i` is read when it is taken, synchronously
 * (from the page cache that is the cheapest way for the thread that splits and hashes the text).
 */
export class Prefetcher {
  private readonly pending = new Map<number, { data: Prefetched; size: number }>();
  private next = 0;
  private bytes = 0;
  constructor(
    private readonly files: readonly ({ path: string; size: number } | null)[],
    private readonly maxBytes: number,
    private readonly held: (delta: number) => void = () => {},
    private readonly readAhead = false,
  ) {}

  /** The bytes of file `i` if it was read ahead; reads further ahead, skipping files `wanted` rejects. */
  take(i: number, wanted: (i: number) => boolean = () => true): Prefetched | undefined {
    if (!this.readAhead) {
      const f = this.files[i];
      return f === null || f === undefined ? undefined : readWhole(f.path);
    }
    if (this.next <= i) this.next = i;
    const got = this.pending.get(i);
    if (got !== undefined) {
      this.pending.delete(i);
      this.bytes -= got.size;
      this.held(-got.size);
    }
    while (this.next < this.files.length && this.pending.size < 64) {
      const f = this.files[this.next];
      if (f !== null && wanted(this.next) && this.next !== i) {
        if (this.bytes + f.size > this.maxBytes) break;
        const data = readFile(f.path);
        data.catch(() => {});  // surfaced when taken
        this.pending.set(this.next, { data, size: f.size });
        this.bytes += f.size;
        this.held(f.size);
      }
      this.next++;
    }
    return got?.data;
  }
}

let scratch: Buffer | null = null;

/**
 * A file's bytes read now, synchronously, into this thread's one reusable buffer (grown to the
 * largest file read): many files read one after another then make no garbage. The bytes are valid
 * until the next call on this thread, so the caller must be done with them by then (a tokenizer
 * thread reads, hashes and decodes one file at a time).
 */
export function readReused(path: string): Prefetched {
  try {
    const fd = openSync(path, "r");
    try {
      const size = fstatSync(fd).size;
      if (scratch === null || scratch.length < size + 1) scratch = Buffer.allocUnsafeSlow(Math.max(size + 1, 1 << 16));
      let n = 0;
      for (;;) {
        if (n === scratch.length) {
          const bigger = Buffer.allocUnsafeSlow(2 * scratch.length);
          scratch.copy(bigger);
          scratch = bigger;
        }
        const got = readSync(fd, scratch, n, scratch.length - n, null);
        if (got === 0) break;
        n += got;
      }
      return Promise.resolve(scratch.subarray(0, n));
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const failed = Promise.reject(e);
    failed.catch(() => {});
    return failed;
  }
}

/** A file's bytes read now, synchronously, as a Prefetched (a failure is surfaced when awaited). */
export function readWhole(path: string): Prefetched {
  try {
    return Promise.resolve(readFileSync(path));
  } catch (e) {
    const failed = Promise.reject(e);
    failed.catch(() => {});
    return failed;
  }
}

const BINARY_PROBE = 8192;

function describe(e: unknown, compression: Compression): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code !== undefined && /^E[A-Z]+$/.test(err.code)) return `cannot be read (${err.code}: ${err.message.replace(/^\w+: /, "")})`;
  if (compression === "gz") return `corrupt gzip data (${err.message})`;
  if (compression === "zst") return `corrupt zstd data (${err.message.replace(/^zstd: /, "")})`;
  return err.message;
}

/** The decompressed bytes of a file, in chunks; hashes the stored bytes into `hash` as they pass. */
async function* contentBytes(path: string, compression: Compression, o: ReadOptions, onStored: (chunk: Buffer) => void, prefetched?: Prefetched): AsyncGenerator<Uint8Array> {
  const chunkBytes = o.chunkBytes ?? 1 << 18;
  if (prefetched !== undefined) {
    const data = await prefetched;
    onStored(data);
    if (compression === null) yield data;
    else if (compression === "zst") {
      const z = new ZstdStream();
      yield* z.push(data);
      z.end();
    } else {
      const gunzip = createGunzip({ chunkSize: chunkBytes });
      gunzip.end(data);
      yield* gunzip as AsyncIterable<Buffer>;
    }
    return;
  }
  const raw = createReadStream(path, { highWaterMark: chunkBytes });
  if (compression === null) {
    for await (const chunk of raw as AsyncIterable<Buffer>) {
      onStored(chunk);
      yield chunk;
    }
    return;
  }
  if (compression === "zst") {
    const z = new ZstdStream();
    for await (const chunk of raw as AsyncIterable<Buffer>) {
      onStored(chunk);
      for (const out of z.push(chunk)) yield out;
    }
    z.end();
    return;
  }
  raw.on("data", (chunk) => onStored(chunk as Buffer));
  const gunzip = pipeline(raw, createGunzip({ chunkSize: chunkBytes }), () => {});
  for await (const chunk of gunzip as AsyncIterable<Buffer>) yield chunk;
}

/**
 * The text of `path`, in chunks (never splitting a UTF-16 surrogate pair). Yields nothing for
 * a binary file. `report` is complete once the generator has finished.
 */
export async function* fileText(path: string, report: FileReport, o: ReadOptions = {}, prefetched?: Prefetched): AsyncGenerator<string> {
  const compression = compressionOf(path);
  const sha = createHash("sha256");
  let stored = 0;
  const onStored = (chunk: Buffer): void => {
    sha.update(chunk);
    stored += chunk.length;
    o.onRaw?.(chunk.length);
  };
  const decoder = new TextDecoder("utf-8");  // replaces invalid sequences; drops a leading BOM
  let head: Uint8Array[] | null = [];  // the first bytes, until the binary probe is decided
  let headLength = 0;
  let carry: Uint8Array | null = null;  // an incomplete UTF-8 sequence at the end of the last chunk
  const decode = (bytes: Uint8Array): string => {
    report.contentBytes += bytes.length;
    let whole = bytes;
    if (carry !== null) {
      whole = Buffer.concat([carry, bytes]);
      carry = null;
    }
    const tail = incompleteTail(whole);
    if (!report.invalidUtf8 && !isUtf8(whole.subarray(0, whole.length - tail))) report.invalidUtf8 = true;
    if (tail > 0) carry = whole.slice(whole.length - tail);
    return decoder.decode(bytes, { stream: true });
  };
  try {
    for await (const chunk of contentBytes(path, compression, o, onStored, prefetched)) {
      if (report.binary) continue;  // read to the end all the same: the manifest hashes the whole file
      if (head !== null) {
        head.push(chunk);
        headLength += chunk.length;
        if (headLength < BINARY_PROBE) continue;
        const first = head.length === 1 ? head[0] : Buffer.concat(head);
        head = null;
        if (first.subarray(0, BINARY_PROBE).includes(0)) {
          report.binary = true;
          continue;
        }
        const text = decode(first);
        if (text.length > 0) yield text;
        continue;
      }
      const text = decode(chunk);
      if (text.length > 0) yield text;
    }
  } catch (e) {
    if (e instanceof FileReadError) throw e;
    throw new FileReadError(path, describe(e, compression));
  }
  if (head !== null) {
    const first = head.length === 1 ? head[0] : Buffer.concat(head);
    if (first.subarray(0, BINARY_PROBE).includes(0)) report.binary = true;
    else {
      const text = decode(first);
      if (text.length > 0) yield text;
    }
  }
  if (!report.binary) {
    if (carry !== null) report.invalidUtf8 = true;
    const rest = decoder.decode();
    if (rest.length > 0) yield rest;
  }
  report.record = { path, sha256: sha.digest("hex"), bytes: stored };
}

/** How many bytes at the end of `b` start a UTF-8 sequence that the next chunk would complete. */
function incompleteTail(b: Uint8Array): number {
  const n = b.length;
  for (let i = 1; i <= Math.min(3, n); i++) {
    const c = b[n - i];
    if ((c & 0xc0) === 0x80) continue;  // a continuation byte: look further back
    if (c < 0x80) return 0;
    const length = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return length > i ? i : 0;
  }
  return 0;
}

/**
 * Lines of a text stream, with their 1-based numbers; the last line need not end in "\n".
 * (As the in-memory loader's `text.split("\n")`.)
 */
export async function* lines(chunks: AsyncIterable<string>): AsyncGenerator<{ line: string; number: number }> {
  let pending = "";
  let number = 0;
  for await (const chunk of chunks) {
    let start = 0;
    let nl = chunk.indexOf("\n");
    if (nl < 0) {
      pending += chunk;
      continue;
    }
    while (nl >= 0) {
      const line = pending + chunk.slice(start, nl);
      pending = "";
      yield { line, number: ++number };
      start = nl + 1;
      nl = chunk.indexOf("\n", start);
    }
    pending = chunk.slice(start);
  }
  yield { line: pending, number: ++number };
}
