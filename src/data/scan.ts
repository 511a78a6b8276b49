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
 */
import { createHash } from "node:crypto";
import { Bits, DigestSet } from "./hashset.js";
import { FileReadError, newReport, type ReadOptions } from "./read.js";
import { noTextError, type SourceFile } from "./sources.js";
import { itemDocs, listSource, prefetcher, type SourceListing, type StreamDoc } from "./stream.js";

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

export interface ScanOptions {
  valFraction: number;
  read?: ReadOptions;
  onProgress?: (p: ScanProgress) => void;
}

/** Reads the text of one document, feeding the two hashes; returns its sizes. */
async function digestDoc(doc: StreamDoc): Promise<{ chars: number; bytes: number; hasText: boolean; dedup: Buffer; split: Buffer }> {
  const dedup = createHash("sha256"), split = createHash("sha256").update(doc.id + "\0");
  let chars = 0, bytes = 0, hasText = false;
  for await (const chunk of doc.chunks) {
    dedup.update(chunk);
    split.update(chunk);
    chars += chunk.length;
    bytes += Buffer.byteLength(chunk);
    if (!hasText && /\S/.test(chunk)) hasText = true;
  }
  return { chars, bytes, hasText, dedup: dedup.digest(), split: split.digest() };
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
  let itemIndex = 0;
  for (const listing of listings) {
    const src: ScannedSource = { spec: listing.spec, files: [...listing.records], documents: 0, skippedBinary: [], invalidUtf8Files: [] };
    const docsOf: number[] = [], hashesOf: (string | null)[] = [];
    for (const item of listing.items) {
      const before: Record<"documents" | "unique" | "duplicates" | "valDocuments" | "trainDocuments" | "uniqueChars" | "uniqueBytes" | "srcDocs" | "mark" | "bits", number> & { hasText: boolean } = {
        documents: s.documents, unique: s.unique, duplicates: s.duplicates, valDocuments: s.valDocuments, trainDocuments: s.trainDocuments,
        uniqueChars: s.uniqueChars, uniqueBytes: s.uniqueBytes, hasText, srcDocs: src.documents, mark: seen.mark(), bits: s.dropped.length,
      };
      const report = newReport();
      let count = 0;
      try {
        for await (const doc of itemDocs(item, report, read, ahead.take(itemIndex++))) {
          const d = await digestDoc(doc);
          if (doc.dropIfEmpty && d.chars === 0) continue;
          count++;
          s.documents++;
          src.documents++;
          const isNew = seen.add(d.dedup);
          s.dropped.push(!isNew);
          if (!isNew) {
            s.duplicates++;
            s.val.push(false);
            continue;
          }
          const inVal = d.split.readUInt32BE(0) / 2 ** 32 < o.valFraction;
          s.val.push(inVal);
          s.unique++;
          if (inVal) s.valDocuments++;
          else s.trainDocuments++;
          s.uniqueChars += d.chars;
          s.uniqueBytes += d.bytes;
          hasText ||= d.hasText;
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
