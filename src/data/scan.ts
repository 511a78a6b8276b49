/**
 * The first pass of corpus preparation: read every source once, without tokenizing, and keep
 * only what is small: the manifest entries of the files, per document two bits (a duplicate?
 * in validation?) and a 128-bit digest for exact deduplication, per item its document count,
 * and totals. From this the second pass knows, before it reads a document again, whether to
 * skip it and which split it goes to; and whether the corpus has too few documents to split
 * whole (then it is split by paragraph blocks, as sources.ts splitByHash does in memory).
 *
 * A file that cannot be read, or whose compressed data is corrupt, is skipped and named in
 * its source's `unreadableFiles`; whatever it had added is rolled back.
 *
 * File items are scanned whole (scanFile) by a FileScanner, batches of them ahead of their turn
 * (on the tokenizer threads during preparation), and merged here in order, so deduplication
 * and the counts are those of one thread reading in order; JSONL and built-in items are scanned
 * on this thread.
 */
import { createHash } from "node:crypto";
import { Bits, DigestSet } from "./hashset.js";
import { FileReadError, newReport, readReused, type ReadOptions } from "./read.js";
import { noTextError, type SourceFile } from "./sources.js";
import { itemDocs, listSource, prefetcher, type SourceItem, type SourceListing, type StreamDoc } from "./stream.js";

export interface ScannedSource {
  spec: string;
  files: SourceFile[];
  /** Documents read, duplicates included. */
  documents: number;
  skippedBinary: string[];
  invalidUtf8Files: string[];
  /** Files skipped because they could not be read or decompressed (only present when there are some). */
  unreadableFiles?: { path: string; reason: string }[];
}

export interface Scan {
  listings: SourceListing[];
  sources: ScannedSource[];
  /** Documents of each item of each source; 0 for files that were skipped or empty. */
  itemDocs: number[][];
  /** SHA-256 of each file item as first read (null for built-ins and skipped files). */
  itemHashes: (string | null)[][];
  /** All documents in order, duplicates included: the index space of `dropped` and `val`. */
  documents: number;
  unique: number;
  duplicates: number;
  dropped: Bits;
  /** By document hash: whether a (unique) document goes to validation. */
  val: Bits;
  valDocuments: number;
  trainDocuments: number;
  uniqueChars: number;
  uniqueBytes: number;
  /** Identifies the input: the specs and every file's hash. */
  digest: string;
  /** Bytes held by the per-document structures. */
  indexBytes: number;
}

export interface ScanProgress {
  stage: "scan";
  /** Stored bytes read so far, and of all items (from their sizes on disk). */
  bytes: number;
  totalBytes: number;
  documents: number;
}

/** What the scan keeps of one document. */
export interface DocDigest {
  chars: number;
  bytes: number;
  hasText: boolean;
  /** SHA-256 of the text (its first 16 bytes are the deduplication key). */
  dedup: Uint8Array;
  /** The first 32 bits of SHA-256(id + "\0" + text): the split by document hash. */
  split: number;
}

/** One file item scanned whole (on a tokenizer thread, or on the calling thread without one). */
export interface FileScan {
  /** The file's document, or none (empty, binary, unreadable). */
  doc: DocDigest | null;
  record: SourceFile | null;
  binary: boolean;
  invalidUtf8: boolean;
  /** Stored bytes read (progress). */
  rawBytes: number;
  unreadable: { path: string; reason: string } | null;
}

/** Where file items are scanned: a batch of them, in order (pool.ts runs them on its threads). */
export type FileScanner = (items: FileItem[], read: ReadOptions) => Promise<FileScan[]>;

export type FileItem = Extract<SourceItem, { kind: "file" }>;

/** Reads the text of one document, feeding the two hashes; returns its sizes. */
async function digestDoc(doc: StreamDoc): Promise<DocDigest> {
  const dedup = createHash("sha256"), split = createHash("sha256").update(doc.id + "\0");
  let chars = 0, bytes = 0, hasText = false;
  for await (const chunk of doc.chunks) {
    dedup.update(chunk);
    split.update(chunk);
    chars += chunk.length;
    bytes += Buffer.byteLength(chunk);
    if (!hasText && /\S/.test(chunk)) hasText = true;
  }
  return { chars, bytes, hasText, dedup: dedup.digest(), split: split.digest().readUInt32BE(0) };
}

/** Scans one file: its document's digests and what reading it found out. */
export async function scanFile(item: FileItem, read: ReadOptions = {}, onChunk: () => void = () => {}): Promise<FileScan> {
  const report = newReport();
  let rawBytes = 0;
  const o: ReadOptions = { chunkBytes: read.chunkBytes, onRaw: (n) => {
    rawBytes += n;
    onChunk();
  } };
  const chunkBytes = read.chunkBytes ?? 1 << 18;
  let doc: DocDigest | null = null;
  try {
    for await (const d of itemDocs(item, report, o, item.size <= chunkBytes ? readReused(item.path) : undefined)) {
      const digest = await digestDoc(d);
      if (!(d.dropIfEmpty && digest.chars === 0)) doc = digest;
    }
  } catch (e) {
    if (!(e instanceof FileReadError)) throw e;
    return { doc: null, record: null, binary: false, invalidUtf8: false, rawBytes, unreadable: { path: e.path, reason: e.reason } };
  }
  return { doc, record: report.record, binary: report.binary, invalidUtf8: report.invalidUtf8, rawBytes, unreadable: null };
}

/** Scans file items in batches ahead of their turn, `inFlight` batches at a time; results are taken in order. */
class FileScans {
  private readonly results = new Map<number, Promise<FileScan>>();
  private next = 0;
  private running = 0;
  constructor(private readonly items: SourceItem[], private readonly scanner: FileScanner, private readonly read: ReadOptions, private readonly inFlight: number, private readonly batchBytes: number) {}

  /** The scan of item `i` (a file item). */
  take(i: number): Promise<FileScan> {
    this.fill(i);
    const r = this.results.get(i)!;
    this.results.delete(i);
    void r.finally(() => this.fill(i + 1)).catch(() => {});
    return r;
  }

  private fill(from: number): void {
    if (this.next < from) this.next = from;
    while (this.running < this.inFlight && this.results.size < 128 * this.inFlight && this.next < this.items.length) {
      const batch: number[] = [];
      let bytes = 0;
      while (this.next < this.items.length && batch.length < 64 && bytes < this.batchBytes) {
        const it = this.items[this.next];
        if (it.kind === "file") {
          batch.push(this.next);
          bytes += it.size;
        }
        this.next++;
      }
      if (batch.length === 0) continue;
      const done = this.scanner(batch.map((k) => this.items[k] as FileItem), this.read);
      this.running++;
      void done.finally(() => this.running--).catch(() => {});
      batch.forEach((k, j) => this.results.set(k, done.then((r) => r[j])));
    }
  }
}

export interface ScanOptions {
  valFraction: number;
  read?: ReadOptions;
  onProgress?: (p: ScanProgress) => void;
  /** Scans file items elsewhere (tokenizer threads), `inFlight` batches at a time; without it, on this thread. */
  files?: { scanner: FileScanner; inFlight: number };
}

export async function scanSources(specs: string[], o: ScanOptions): Promise<Scan> {
  if (specs.length === 0) throw new Error("no data sources given");
  const listings = specs.map(listSource);
  const totalBytes = listings.reduce((n, l) => n + l.items.reduce((m, it) => m + it.size, 0), 0);
  const seen = new DigestSet();
  const s: Scan = {
    listings, sources: [], itemDocs: [], itemHashes: [], documents: 0, unique: 0, duplicates: 0, dropped: new Bits(), val: new Bits(),
    valDocuments: 0, trainDocuments: 0, uniqueChars: 0, uniqueBytes: 0, digest: "", indexBytes: 0,
  };
  let hasText: boolean = false;
  let bytesRead = 0;
  const progress = (): void => o.onProgress?.({ stage: "scan", bytes: bytesRead, totalBytes, documents: s.documents });
  const read: ReadOptions = { ...o.read, onRaw: (n) => {
    bytesRead += n;
    o.read?.onRaw?.(n);
  } };
  const chunkBytes = o.read?.chunkBytes ?? 1 << 18;
  const ahead = prefetcher(listings, chunkBytes, 16 * chunkBytes);
  const local: FileScanner = async (items, r) => {
    const out: FileScan[] = [];
    for (const it of items) out.push(await scanFile(it, r));
    return out;
  };
  const allItems = listings.flatMap((l) => l.items);
  const fileScans = new FileScans(allItems, o.files?.scanner ?? local, { chunkBytes }, o.files?.inFlight ?? 1, 16 * chunkBytes);
  const addDoc = (src: ScannedSource, d: DocDigest): void => {
    s.documents++;
    src.documents++;
    const isNew = seen.add(d.dedup);
    s.dropped.push(!isNew);
    if (!isNew) {
      s.duplicates++;
      s.val.push(false);
      return;
    }
    const inVal = d.split / 2 ** 32 < o.valFraction;
    s.val.push(inVal);
    s.unique++;
    if (inVal) s.valDocuments++;
    else s.trainDocuments++;
    s.uniqueChars += d.chars;
    s.uniqueBytes += d.bytes;
    hasText ||= d.hasText;
  };
  let itemIndex = 0;
  for (const listing of listings) {
    const src: ScannedSource = { spec: listing.spec, files: [...listing.records], documents: 0, skippedBinary: [], invalidUtf8Files: [] };
    const docsOf: number[] = [], hashesOf: (string | null)[] = [];
    for (const item of listing.items) {
      const index = itemIndex++;
      if (item.kind === "file") {
        const f = await fileScans.take(index);
        bytesRead += f.rawBytes;
        o.read?.onRaw?.(f.rawBytes);
        if (f.unreadable !== null) {
          (src.unreadableFiles ??= []).push(f.unreadable);
          docsOf.push(0);
          hashesOf.push(null);
        } else {
          if (f.doc !== null) addDoc(src, f.doc);
          if (f.record !== null) {
            src.files.push(f.record);
            if (f.binary) src.skippedBinary.push(item.path);
            if (f.invalidUtf8) src.invalidUtf8Files.push(item.path);
          }
          docsOf.push(f.doc !== null ? 1 : 0);
          hashesOf.push(f.record?.sha256 ?? null);
        }
        progress();
        continue;
      }
      const before: Record<"documents" | "unique" | "duplicates" | "valDocuments" | "trainDocuments" | "uniqueChars" | "uniqueBytes" | "srcDocs" | "mark" | "bits", number> & { hasText: boolean } = {
        documents: s.documents, unique: s.unique, duplicates: s.duplicates, valDocuments: s.valDocuments, trainDocuments: s.trainDocuments,
        uniqueChars: s.uniqueChars, uniqueBytes: s.uniqueBytes, hasText, srcDocs: src.documents, mark: seen.mark(), bits: s.dropped.length,
      };
      const report = newReport();
      let count = 0;
      try {
        for await (const doc of itemDocs(item, report, read, ahead.take(index))) {
          const d = await digestDoc(doc);
          if (doc.dropIfEmpty && d.chars === 0) continue;
          count++;
          addDoc(src, d);
        }
      } catch (e) {
        if (!(e instanceof FileReadError)) throw e;
        Object.assign(s, { documents: before.documents, unique: before.unique, duplicates: before.duplicates, valDocuments: before.valDocuments, trainDocuments: before.trainDocuments, uniqueChars: before.uniqueChars, uniqueBytes: before.uniqueBytes });
        hasText = before.hasText;
        src.documents = before.srcDocs;
        seen.rollback(before.mark);
        s.dropped.truncate(before.bits);
        s.val.truncate(before.bits);
        (src.unreadableFiles ??= []).push({ path: e.path, reason: e.reason });
        docsOf.push(0);
        hashesOf.push(null);
        progress();
        continue;
      }
      if (item.kind === "builtin") bytesRead += item.size;
      if (report.record !== null && item.kind !== "builtin") {
        src.files.push(report.record);
        if (report.binary) src.skippedBinary.push(item.path);
        if (report.invalidUtf8) src.invalidUtf8Files.push(item.path);
      }
      docsOf.push(count);
      hashesOf.push(report.record?.sha256 ?? null);
      progress();
    }
    s.sources.push(src);
    s.itemDocs.push(docsOf);
    s.itemHashes.push(hashesOf);
  }
  if (!hasText) throw noTextError(s.sources);
  const digest = createHash("sha256");
  for (const x of s.sources) {
    digest.update(JSON.stringify([x.spec, x.unreadableFiles ?? []]));
    for (const f of x.files) digest.update(`\0${f.path}\0${f.sha256}\0${f.bytes}`);
  }
  s.digest = digest.digest("hex");
  s.indexBytes = seen.bytes + s.dropped.bytes + s.val.bytes;
  return s;
}
