/**
 * Sources as streams of documents, for corpus preparation: the same specs, documents, ids and
 * order as the in-memory loader (sources.ts), but a document's text arrives in chunks as it
 * is read, so no more than a chunk of any file is in memory.
 *
 *   listSource(spec)        the items a source reads, in order: files (text or JSONL), or a
 *                           built-in corpus (whose npm package loads it whole; all are small)
 *   itemDocs(item, report)  an item's documents; consume each document's chunks before
 *                           asking for the next
 */
import { existsSync, statSync } from "node:fs";
import { fileText, lines, Prefetcher, type FileReport, type Prefetched, type ReadOptions } from "./read.js";
import { builtinDocs, builtinParts, builtinRecords, jsonlValue, parseJsonlSpec, sourcePaths, type SourceFile } from "./sources.js";

export type SourceItem =
  | { kind: "file"; path: string; size: number }
  | { kind: "jsonl"; path: string; field: string; spec: string; size: number }
  | { kind: "builtin"; name: string; size: number };

export interface SourceListing {
  spec: string;
  items: SourceItem[];
  /** Manifest entries known from the listing (built-ins); files add theirs as they are read. */
  records: SourceFile[];
}

export interface StreamDoc {
  id: string;
  chunks: AsyncIterable<string> | Iterable<string>;
  /** A file that turns out empty is no document; an empty JSONL field or built-in text is one. */
  dropIfEmpty: boolean;
}

const sizeOf = (path: string): number => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

/** The items of one source spec (see sources.ts for the forms a spec takes). */
export function listSource(spec: string): SourceListing {
  const parts = builtinParts(spec);
  if (parts !== null) {
    const perPart = parts.map(builtinRecords);
    const items: SourceItem[] = parts.map((name, i) => ({ kind: "builtin", name, size: perPart[i].reduce((n, r) => n + r.bytes, 0) }));
    return { spec, items, records: perPart.flat() };
  }
  const jsonl = parseJsonlSpec(spec);
  if (jsonl !== null && existsSync(jsonl.path)) return { spec, items: [{ kind: "jsonl", path: jsonl.path, field: jsonl.field, spec, size: sizeOf(jsonl.path) }], records: [] };
  const paths = sourcePaths(spec);
  return { spec, items: paths.map((path) => ({ kind: "file", path, size: sizeOf(path) })), records: [] };
}

/**
 * The documents of one item. For files, `report` is filled in as the text is read (complete
 * when the last document's chunks are consumed). A read or decompression failure throws
 * FileReadError; a JSONL line that is not JSON, or lacks the field, throws a plain Error
 * naming path:line, as the in-memory loader does.
 */
export async function* itemDocs(item: SourceItem, report: FileReport, o: ReadOptions = {}, prefetched?: Prefetched): AsyncGenerator<StreamDoc> {
  if (item.kind === "builtin") {
    for (const d of builtinDocs(item.name)) yield { id: d.id, chunks: [d.text], dropIfEmpty: false };
    return;
  }
  if (item.kind === "file") {
    yield { id: item.path, chunks: fileText(item.path, report, o, prefetched), dropIfEmpty: true };
    return;
  }
  const { path, field, spec } = item;
  for await (const { line, number } of lines(fileText(path, report, o, prefetched))) {
    if (line.trim() === "") continue;
    yield { id: `${path}:${number}`, chunks: [jsonlValue(line, number, path, field, spec)], dropIfEmpty: false };
  }
  if (report.binary) throw new Error(`source ${spec}: ${path} is binary, not JSONL`);
}

/**
 * A read-ahead over the items of several listings, numbered in order across them: small files
 * (at most `smallBytes`) are read whole, up to `maxBytes` ahead.
 */
export function prefetcher(listings: SourceListing[], smallBytes: number, maxBytes: number, held?: (delta: number) => void): Prefetcher {
  const files = listings.flatMap((l) => l.items.map((it) => (it.kind !== "builtin" && it.size <= smallBytes ? { path: it.path, size: it.size } : null)));
  return new Prefetcher(files, maxBytes, held);
}
