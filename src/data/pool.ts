/**
 * Tokenization on worker threads. Each worker rebuilds the tokenizer from a recipe (its
 * Hugging Face tokenizer.json, or "bytes") and checks that its fingerprint matches; batches go
 * to the least busy worker and their results come back as one typed array per batch. The
 * caller writes results in the order it submitted them, so the shards do not depend on the
 * number of threads or on which worker finished first. A batch holds texts, or whole files that
 * the thread reads (checking they are what the scan read), decodes and encodes itself; the
 * threads also scan files for the first pass (scan.ts scanFile).
 *
 * A tokenizer without a recipe (a custom TokenizerLike) is run on the calling thread.
 */
import { Worker } from "node:worker_threads";
import { BPETokenizer, IdBuffer } from "../tokenizer/index.js";
import { ByteTextTokenizer, BPETextTokenizer } from "./tokenizer.js";
import type { TokenizerLike } from "./prepare.js";
import { PieceCutter } from "./cut.js";
import { FileReadError, fileText, newReport, readReused, type ReadOptions } from "./read.js";
import { scanFile, type FileItem, type FileScan } from "./scan.js";
import type { HeapPeak } from "./heap.js";
import type { ShardDType } from "./tokens.js";

export type TokenizerRecipe = { kind: "bpe"; json: unknown } | { kind: "bytes" };

export interface WorkerSetup {
  recipe: TokenizerRecipe;
  dtype: ShardDType;
  /** A thread collects its garbage whenever its heap and buffers have grown by this much (heap.ts). */
  heapSlackBytes: number;
}

/** A whole file to read and encode on the thread (its text is one document; `sha256` is what the scan read). */
export interface FileEntry {
  path: string;
  sha256: string;
  chunkBytes: number;
  /** Bytes on disk when listed (its text has at most as many characters). */
  size: number;
  /** Encoded in pieces of about this many characters (cut.ts PieceCutter). */
  pieceChars: number;
}

/** A text to encode, or a file to read and encode. */
export type Entry = string | FileEntry;

export type WorkerRequest = { id: number; texts: Entry[]; spare?: ArrayBuffer } | { id: number; scan: FileItem[]; read: ReadOptions } | { id: number; heap: true };



export type WorkerReply =
  | { id: number; ids: Uint16Array | Int32Array; counts: Int32Array; bytes: Float64Array }
  | { id: number; scans: FileScan[] }
  | { id: number; peak: HeapPeak }
  | { id: number; error: string; plain?: boolean };

export interface Encoded {
  /** The ids of every text, one after another. */
  ids: Uint16Array | Int32Array;
  /** How many ids each text has. */
  counts: Int32Array;
  /** UTF-8 bytes of each text. */
  bytes: Float64Array;
}

export function tokenizerFromRecipe(recipe: TokenizerRecipe): TokenizerLike {
  return recipe.kind === "bpe" ? new BPETextTokenizer(BPETokenizer.fromJSON(recipe.json)) : new ByteTextTokenizer();
}

/** An error whose message is the whole story (a file that changed), passed on as it is. */
export class PlainError extends Error {}

/** The text of a file entry: the document the scan read, or an error saying the file changed since. */
async function entryText(f: FileEntry): Promise<string> {
  const report = newReport();
  const changed = (why: string) => new PlainError(`corpus: ${f.path} ${why} while the corpus was being prepared; run the preparation again`);
  let text = "";
  try {
    for await (const chunk of fileText(f.path, report, { chunkBytes: f.chunkBytes }, readReused(f.path))) text += chunk;
  } catch (e) {
    if (e instanceof FileReadError) throw changed(`became unreadable (${e.reason})`);
    throw e;
  }
  if (text.length === 0 || report.record?.sha256 !== f.sha256) throw changed("changed");
  return text;
}

/** This thread's buffer for the ids of one text (encodeInto), reused: a thread encodes one text at a time. */
const sink = new IdBuffer();

/**
 * The entries' ids packed into one typed array (a view of it: its buffer may be longer), with each
 * one's count and UTF-8 bytes: what a worker sends back (and the calling thread makes for a
 * tokenizer without a recipe). Ids go straight into the packed array, which grows as needed, so
 * a batch holds no list of per-text arrays.
 */
export async function encodeEntries(tokenizer: TokenizerLike, entries: Entry[], dtype: ShardDType, afterEach: () => void = () => {}, spare?: ArrayBuffer): Promise<Encoded> {
  const bytes = new Float64Array(entries.length);
  const counts = new Int32Array(entries.length);
  const width = dtype === "uint16" ? 2 : 4;
  // Sizes rounded up to a power of two, so that a buffer given back (`spare`, see TokenizePool.recycle) fits the next batches.
  const make = (n: number): Uint16Array | Int32Array => {
    const size = 2 ** Math.ceil(Math.log2(Math.max(n, 4096)));
    return dtype === "uint16" ? new Uint16Array(size) : new Int32Array(size);
  };
  const need = entries.reduce((n, e) => n + (typeof e === "string" ? e.length : e.size), 16);
  let ids = spare !== undefined && spare.byteLength >= need * width ? (dtype === "uint16" ? new Uint16Array(spare) : new Int32Array(spare)) : make(need);
  let at = 0;
  const append = (part: ArrayLike<number>): void => {
    if (at + part.length > ids.length) {
      const bigger = make(Math.max(at + part.length, 2 * ids.length));
      bigger.set(ids.subarray(0, at));
      ids = bigger;
    }
    ids.set(part, at);
    at += part.length;
  };
  const encode = (text: string): void => {
    if (tokenizer.encodeInto === undefined) return append(tokenizer.encode(text));
    sink.length = 0;
    tokenizer.encodeInto(text, sink);
    append(sink.ids.subarray(0, sink.length));
  };
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const start = at;
    if (typeof e === "string") {
      bytes[i] = Buffer.byteLength(e);
      encode(e);
    } else {
      // A whole file is encoded in pieces, as the calling thread would cut it: the same ids, and
      // each encode's garbage (its pre-tokenizer chunks) stays small.
      const text = await entryText(e);
      bytes[i] = Buffer.byteLength(text);
      const cutter = new PieceCutter(e.pieceChars);
      for (const piece of cutter.push(text)) {
        encode(piece);
        afterEach();
      }
      encode(cutter.end());
    }
    counts[i] = at - start;
    afterEach();
  }
  return { ids: ids.subarray(0, at), counts, bytes };
}

/** Scans file items one after another (scan.ts scanFile). */
export async function scanFiles(items: FileItem[], read: ReadOptions, afterEach: () => void = () => {}): Promise<FileScan[]> {
  const out: FileScan[] = [];
  for (const it of items) {
    out.push(await scanFile(it, read, afterEach));
    afterEach();
  }
  return out;
}

interface Pending {
  resolve: (e: never) => void;
  reject: (e: Error) => void;
  worker: number;
}

export class TokenizePool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly pending = new Map<number, Pending>();
  /** Id buffers written out and given back, to go to the next batches (their threads fill them again). */
  private readonly spares: ArrayBuffer[] = [];
  private nextId = 0;
  private failure: Error | null = null;

  private constructor(private readonly tokenizer: TokenizerLike, private readonly dtype: ShardDType) {}

  /** Threads actually used: 0 means the calling thread. */
  get threads(): number {
    return this.workers.length;
  }

  /** Starts `threads` workers (0, or a tokenizer without a recipe: none, encode on this thread). */
  static async start(tokenizer: TokenizerLike, threads: number, dtype: ShardDType, heapSlackBytes = 16 * 2 ** 20): Promise<TokenizePool> {
    const pool = new TokenizePool(tokenizer, dtype);
    const recipe = tokenizer.recipe?.();
    if (threads < 1 || recipe === undefined) return pool;
    const setup: WorkerSetup = { recipe, dtype, heapSlackBytes };
    const url = new URL("./tokenize_worker.js", import.meta.url);
    const ready: Promise<void>[] = [];
    for (let i = 0; i < threads; i++) {
      // A small young generation: encoding allocates fast, and V8 would otherwise grow it to 16 MB x 3 per thread.
      const w = new Worker(url, { workerData: setup, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
      pool.workers.push(w);
      pool.busy.push(0);
      ready.push(new Promise((resolve, reject) => {
        const onFirst = (msg: { ready?: string }): void => {
          w.off("error", reject);
          if (msg.ready !== tokenizer.fingerprint()) reject(new Error(`prepare: a tokenizer thread rebuilt a different tokenizer (fingerprint ${msg.ready} vs ${tokenizer.fingerprint()})`));
          else {
            w.on("message", (reply: WorkerReply) => pool.onReply(reply));
            resolve();
          }
        };
        w.once("message", onFirst);
        w.once("error", reject);
      }));
      w.on("error", (e) => pool.fail(e));
      w.on("exit", (code) => {
        if (code !== 0) pool.fail(new Error(`prepare: a tokenizer thread exited with code ${code}`));
      });
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /** Encodes texts and files (read whole on the thread). */
  encode(entries: Entry[]): Promise<Encoded> {
    const spare = this.spares.pop();
    if (this.workers.length === 0) return this.failure !== null ? Promise.reject(this.failure) : encodeEntries(this.tokenizer, entries, this.dtype, () => {}, spare);
    return this.send((id) => ({ id, texts: entries, spare }), undefined, spare !== undefined ? [spare] : []);
  }

  /**
   * Gives back the ids of an encoded batch once they are written: their buffer goes (moved, not
   * copied) with a later batch to be filled again, so neither thread makes a buffer a batch, and
   * none waits here for a collection to free it.
   */
  recycle(ids: Uint16Array | Int32Array): void {
    if (this.spares.length < 2 * Math.max(1, this.workers.length) && ids.buffer instanceof ArrayBuffer && ids.buffer.byteLength > 0) this.spares.push(ids.buffer);
  }

  /** Scans file items (their documents' digests), on a thread when there are some. */
  scan(items: FileItem[], read: ReadOptions): Promise<FileScan[]> {
    if (this.workers.length === 0) return this.failure !== null ? Promise.reject(this.failure) : scanFiles(items, read);
    return this.send((id) => ({ id, scan: items, read: { chunkBytes: read.chunkBytes } }));
  }

  /** Each thread's heap peaks so far (none without threads). */
  async heapPeaks(): Promise<HeapPeak[]> {
    const out: HeapPeak[] = [];
    for (let w = 0; w < this.workers.length; w++) out.push(await this.send<HeapPeak>((id) => ({ id, heap: true }), w));
    return out;
  }

  private send<T>(request: (id: number) => WorkerRequest, to?: number, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure !== null) return Promise.reject(this.failure);
    let w = to ?? 0;
    if (to === undefined) for (let i = 1; i < this.workers.length; i++) if (this.busy[i] < this.busy[w]) w = i;
    const id = this.nextId++;
    this.busy[w]++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (e: never) => void, reject, worker: w });
      this.workers[w].postMessage(request(id), transfer);
    });
  }

  async close(): Promise<void> {
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
  }

  private onReply(reply: WorkerReply): void {
    const p = this.pending.get(reply.id);
    if (p === undefined) return;
    this.pending.delete(reply.id);
    this.busy[p.worker]--;
    if ("error" in reply) p.reject(new Error(reply.plain === true ? reply.error : `prepare: tokenizing failed: ${reply.error}`));
    else if ("scans" in reply) p.resolve(reply.scans as never);
    else if ("peak" in reply) p.resolve(reply.peak as never);
    else p.resolve({ ids: reply.ids, counts: reply.counts, bytes: reply.bytes } as never);
  }

  private fail(e: Error): void {
    if (this.failure !== null) return;
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
