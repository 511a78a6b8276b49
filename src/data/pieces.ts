/**
 * The second pass of corpus preparation: the text to tokenize, as pieces in corpus order, each
 * tagged with its split and whether an end-of-text token follows it. What the in-memory path
 * (sources.ts splitByHash, then encoding each document) would encode, cut at places where the
 * cut changes no token (cut.ts), so pieces can be tokenized separately and on any thread.
 *
 * Units (what an end-of-text token closes):
 *   document  each unique document, to the split its hash chose in the scan;
 *   block     runs of consecutive paragraph blocks of one document that fall on the same side
 *             (a corpus of too few documents), as splitByBlocks joins them.
 *
 * A position {doc, chars} says how far shards already go: every unit before it is written, and
 * the first `chars` characters of document `doc`. Replaying from a position skips the files
 * before it without reading them, and reads (without tokenizing) up to it inside its document.
 */
import { BlockCutter, PieceCutter } from "./cut.js";
import type { FileEntry } from "./pool.js";
import { compressionOf, FileReadError, newReport, type ReadOptions } from "./read.js";
import { hashFraction } from "./split.js";
import { itemDocs, prefetcher, type SourceItem, type StreamDoc } from "./stream.js";
import type { Scan } from "./scan.js";

export interface Position {
  doc: number;
  chars: number;
}

export interface Piece {
  /** The text, or a whole file (one document) for the tokenizer thread to read (see `pieces`). */
  text: string | FileEntry;
  /** 0 train, 1 validation. */
  side: 0 | 1;
  /** An end-of-text token follows (the unit ends here). */
  eot: boolean;
  /** Where the shards stand once this piece is written. */
  after: Position;
}

export type SplitPlan =
  | { unit: "document" }
  | { unit: "block"; blockChars: number; valFraction: number; forceVal: BlockRef | null; forceTrain: BlockRef | null };

export interface BlockRef {
  doc: number;
  block: number;
}

/** Counts characters held in cutters, so the caller can bound memory. */
export interface Meter {
  add(bytes: number): void;
}

/**
 * The documents of the scanned sources from document `from` on, with their indices; consume each
 * one's chunks. A file item that `whole` accepts is not read here: it comes as a FileEntry.
 */
export async function* replayDocs(scan: Scan, from: number, read: ReadOptions = {}, held?: (delta: number) => void, whole: (item: SourceItem, index: number) => boolean = () => false, pieceChars = 1 << 16): AsyncGenerator<{ index: number; doc: StreamDoc } | { index: number; file: FileEntry }> {
  const chunkBytes = read.chunkBytes ?? 1 << 18;
  // Items to read: documents in them, and not all before `from`.
  const counts = scan.itemDocs.flat(), wanted = new Array<boolean>(counts.length);
  let base = 0, itemIndex = -1;
  for (let s = 0; s < scan.listings.length; s++) {
    for (let i = 0; i < scan.listings[s].items.length; i++) {
      const item = scan.listings[s].items[i];
      itemIndex++;
      wanted[itemIndex] = counts[itemIndex] > 0 && base + counts[itemIndex] > from && !(counts[itemIndex] === 1 && item.kind === "file" && scan.itemHashes[s][i] !== null && whole(item, base));
      base += counts[itemIndex];
    }
  }
  const ahead = prefetcher(scan.listings, chunkBytes, 8 * chunkBytes, held);
  const isWanted = (i: number): boolean => wanted[i];
  base = 0;
  itemIndex = -1;
  for (let s = 0; s < scan.listings.length; s++) {
    const listing = scan.listings[s];
    for (let i = 0; i < listing.items.length; i++) {
      const item = listing.items[i], n = scan.itemDocs[s][i];
      itemIndex++;
      if (!wanted[itemIndex]) {
        if (n === 1 && base >= from && item.kind === "file" && scan.itemHashes[s][i] !== null && whole(item, base)) yield { index: base, file: { path: item.path, sha256: scan.itemHashes[s][i]!, chunkBytes, size: item.size, pieceChars } };
        base += n;
        continue;
      }
      const report = newReport();
      let k = 0;
      const changed = (why: string) => new Error(`corpus: ${"path" in item ? item.path : item.name} ${why} while the corpus was being prepared; run the preparation again`);
      try {
        for await (const doc of itemDocs(item, report, read, ahead.take(itemIndex, isWanted))) {
          if (k >= n) throw changed("changed (it has more documents now)");
          yield { index: base + k, doc };
          k++;
        }
      } catch (e) {
        if (e instanceof FileReadError) throw changed(`became unreadable (${e.reason})`);
        throw e;
      }
      const sha = scan.itemHashes[s][i];
      if (k !== n || (sha !== null && report.record?.sha256 !== sha)) throw changed("changed");
      base += n;
    }
  }
}

/** The chunks of a document, none longer than `max` characters (a built-in document arrives whole). */
async function* sliced(chunks: AsyncIterable<string> | Iterable<string>, max: number): AsyncGenerator<string> {
  for await (const chunk of chunks) {
    if (chunk.length <= max) yield chunk;
    else for (let i = 0; i < chunk.length; i += max) yield chunk.slice(i, i + max);
  }
}

async function drain(chunks: AsyncIterable<string> | Iterable<string>): Promise<void> {
  for await (const _ of chunks) void _;
}

/**
 * The pieces to tokenize from `from` on (see the module comment). A plain file of at most
 * `wholeBytes` split by document comes unread, as a FileEntry: the tokenizer thread reads it
 * (checking it is what the scan read) and encodes it whole, which gives the ids of its pieces.
 */
export async function* pieces(scan: Scan, plan: SplitPlan, from: Position, pieceChars: number, meter: Meter, read: ReadOptions = {}, wholeBytes = 0): AsyncGenerator<Piece> {
  const whole = (item: SourceItem, index: number): boolean =>
    plan.unit === "document" && item.kind === "file" && item.size <= wholeBytes && compressionOf(item.path) === null && (index > from.doc || (index === from.doc && from.chars === 0));
  for await (const r of replayDocs(scan, from.doc, read, (n) => meter.add(n), whole, pieceChars)) {
    const index = r.index;
    if ("file" in r) {
      if (!scan.dropped.get(index)) yield { text: r.file, side: scan.val.get(index) ? 1 : 0, eot: true, after: { doc: index + 1, chars: 0 } };
      continue;
    }
    const doc = r.doc;
    if (index < from.doc || scan.dropped.get(index)) {
      await drain(doc.chunks);
      continue;
    }
    const skip = index === from.doc ? from.chars : 0;
    doc.chunks = sliced(doc.chunks, Math.max(1024, read.chunkBytes ?? 1 << 18));
    if (plan.unit === "document") yield* documentPieces(doc, index, scan.val.get(index) ? 1 : 0, skip, pieceChars, meter);
    else yield* blockPieces(doc, index, plan, skip, pieceChars, meter);
  }
}

/**
 * Feeds text to a piece cutter, the meter following what the cutter holds; returns the pieces it
 * completes, each ending `after` the document offset reached (counted on from `at`).
 */
function cut(cutter: PieceCutter, text: string, meter: Meter, side: 0 | 1, index: number, at: number): { pieces: Piece[]; at: number } {
  const before = cutter.held;
  const out = cutter.push(text);
  meter.add(2 * (cutter.held - before));
  const pieces: Piece[] = [];
  for (const p of out) {
    meter.add(-2 * p.length);
    at += p.length;
    pieces.push({ text: p, side, eot: false, after: { doc: index, chars: at } });
  }
  return { pieces, at };
}

async function* documentPieces(doc: StreamDoc, index: number, side: 0 | 1, skip: number, pieceChars: number, meter: Meter): AsyncGenerator<Piece> {
  const cutter = new PieceCutter(pieceChars);
  let seen = 0;  // characters of the document read so far
  let at = skip;  // where the cutter's text starts in the document
  for await (const chunk of doc.chunks) {
    const start = seen;
    seen += chunk.length;
    if (seen <= skip) continue;
    const r = cut(cutter, start < skip ? chunk.slice(skip - start) : chunk, meter, side, index, at);
    at = r.at;
    yield* r.pieces;
  }
  const last = cutter.end();
  meter.add(-2 * last.length);
  yield { text: last, side, eot: true, after: { doc: index + 1, chars: 0 } };
}

async function* blockPieces(doc: StreamDoc, index: number, plan: Extract<SplitPlan, { unit: "block" }>, skip: number, pieceChars: number, meter: Meter): AsyncGenerator<Piece> {
  const blocks = new BlockCutter(plan.blockChars);
  let cutter: PieceCutter | null = null;
  let side: 0 | 1 = 0;
  let pos = 0;  // characters of the document in blocks handled so far
  let at = 0;  // end of the last piece given out
  let blockNo = 0;
  const sideOf = (text: string, k: number): 0 | 1 => {
    if (plan.forceVal !== null && plan.forceVal.doc === index && plan.forceVal.block === k) return 1;
    if (plan.forceTrain !== null && plan.forceTrain.doc === index && plan.forceTrain.block === k) return 0;
    return hashFraction(text) < plan.valFraction ? 1 : 0;
  };
  const pushed: Piece[] = [];
  const endRun = (lastOfDocument: boolean): void => {
    if (cutter === null) return;
    const last = cutter.end();
    meter.add(-2 * last.length);
    // A run that ended at or before the resume point had its end-of-text written already.
    if (pos > skip) pushed.push({ text: last, side, eot: true, after: lastOfDocument ? { doc: index + 1, chars: 0 } : { doc: index, chars: pos } });
    at = pos;
    cutter = null;
  };
  const onBlock = (block: string): void => {
    const s = sideOf(block, blockNo++);
    if (cutter !== null && s !== side) endRun(false);
    if (cutter === null) {
      cutter = new PieceCutter(pieceChars);
      side = s;
      at = Math.max(pos, skip);
    }
    const start = pos;
    pos += block.length;
    if (pos <= skip) return;
    const r = cut(cutter, start < skip ? block.slice(skip - start) : block, meter, side, index, at);
    at = r.at;
    pushed.push(...r.pieces);
  };
  for await (const chunk of doc.chunks) {
    const before = blocks.held;
    const done = blocks.push(chunk);
    meter.add(2 * (blocks.held - before));
    for (const b of done) {
      meter.add(-2 * b.length);
      onBlock(b);
    }
    yield* pushed.splice(0);
  }
  for (const b of blocks.end()) {
    meter.add(-2 * b.length);
    onBlock(b);
  }
  endRun(true);
  yield* pushed.splice(0);
}

/**
 * The block pass of a corpus split by blocks: every block's hash, to find the one block forced
 * into validation (when no block's hash falls under valFraction) or into training (when every
 * one does), as splitByBlocks does. Throws when there are fewer than two blocks.
 */
export async function forcedBlocks(scan: Scan, blockChars: number, valFraction: number, read: ReadOptions = {}): Promise<{ blocks: number; forceVal: BlockRef | null; forceTrain: BlockRef | null }> {
  let blocks = 0, anyVal = false, anyTrain = false;
  let min = Infinity, max = -Infinity;
  let minRef: BlockRef | null = null, maxRef: BlockRef | null = null;
  for await (const r of replayDocs(scan, 0, read)) {
    if ("file" in r) continue;  // (none: no item is taken whole here)
    const { index, doc } = r;
    if (scan.dropped.get(index)) {
      await drain(doc.chunks);
      continue;
    }
    const cutter = new BlockCutter(blockChars);
    let k = 0;
    const onBlock = (b: string): void => {
      const h = hashFraction(b);
      if (h < valFraction) anyVal = true;
      else anyTrain = true;
      if (h < min) (min = h), (minRef = { doc: index, block: k });  // the first of equal hashes, as a stable sort puts it
      if (h >= max) (max = h), (maxRef = { doc: index, block: k });  // the last of equal hashes
      k++;
      blocks++;
    };
    for await (const chunk of doc.chunks) for (const b of cutter.push(chunk)) onBlock(b);
    for (const b of cutter.end()) onBlock(b);
  }
  return { blocks, forceVal: anyVal ? null : minRef, forceTrain: anyVal && !anyTrain ? maxRef : null };
}
