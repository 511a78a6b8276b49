/**
 * Labeled tasks: a name, its labels, and train/test examples (single text or a text pair).
 * Loaders read JSONL or CSV rows `{text, label}` or `{text_a, text_b, label}`; nothing
 * about a task is hard-coded beyond its loader. Splits are seeded and deterministic.
 *
 *     const task = loadTaskFiles({ name: "reviews", train: "train.jsonl", test: "test.csv" });
 *     const shots = sampleKShot(task, 8, 0);    // 8 training examples per label
 */
import { existsSync, readFileSync } from "node:fs";
import { extname } from "node:path";
import { Rng } from "../tensor/rng.js";

export interface TextExample {
  text: string;
  label: string;
  /** The unit a split keeps together, e.g. the address a paragraph comes from. */
  group?: string;
}
export interface PairExample {
  textA: string;
  textB: string;
  label: string;
  group?: string;
}
export type Example = TextExample | PairExample;

export interface TaskPrompt {
  /** Causal-LM prompt with {text} (or {text_a}/{text_b}); the verbalizer follows it. */
  template: string;
  /** Masked-LM cloze with one [MASK]. */
  cloze: string;
  verbalizers: Record<string, string>;
}

export interface Task {
  name: string;
  labels: string[];
  train: Example[];
  test: Example[];
  /** The prompt zero- and few-shot methods use, for a task that ships one (suite tasks). */
  prompt?: TaskPrompt;
}

export class TaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TaskError";
  }
}

export const isPair = (e: Example): e is PairExample => "textA" in e;

/** The example's text as one string (a pair joined by `separator`). */
export function exampleText(e: Example, separator = "\n"): string {
  return isPair(e) ? `${e.textA}${separator}${e.textB}` : e.text;
}

// ---------------------------------------------------------------- rows from files

/** One parsed row with the 1-based line of the file it starts on. */
export interface SourceRow {
  line: number;
  fields: Record<string, unknown>;
}

/**
 * RFC 4180 CSV: comma-separated fields, optionally quoted; a quoted field may hold commas,
 * newlines and doubled quotes (""). CRLF or LF line ends. Returns records with the line
 * each starts on; blank lines are skipped.
 */
export function parseCSV(text: string, source = "<csv>"): { line: number; cells: string[] }[] {
  const records: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let cell = "";
  let line = 1, start = 1;
  let i = 0;
  let quoted = false, wasQuoted = false, any = false;
  const endCell = () => {
    cells.push(cell);
    cell = "";
    wasQuoted = false;
  };
  const endRecord = () => {
    endCell();
    if (any) records.push({ line: start, cells });
    cells = [];
    any = false;
  };
  if (text.charCodeAt(0) === 0xfeff) i = 1;  // byte-order mark
  for (; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        if (ch === "\n") line++;
        cell += ch;
      }
      continue;
    }
    if (ch === '"') {
      if (cell.length > 0 || wasQuoted) throw new TaskError(`${source}:${line}: a quote inside an unquoted field (quote the whole field and double inner quotes)`);
      quoted = wasQuoted = any = true;
    } else if (ch === ",") {
      any = true;
      endCell();
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      endRecord();
      line++;
      start = line;
    } else {
      if (wasQuoted) throw new TaskError(`${source}:${line}: text after the closing quote of a field`);
      cell += ch;
      any = true;
    }
  }
  if (quoted) throw new TaskError(`${source}:${start}: a quoted field is never closed`);
  endRecord();
  return records;
}

/** The rows of JSONL text, one JSON object per non-blank line; errors name source:line. */
export function parseJsonlRows(text: string, source: string): SourceRow[] {
  const rows: SourceRow[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === "") return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new TaskError(`${source}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new TaskError(`${source}:${i + 1}: expected a JSON object per line, got ${JSON.stringify(v).slice(0, 80)}`);
    rows.push({ line: i + 1, fields: v as Record<string, unknown> });
  });
  return rows;
}

/** Rows of a .jsonl or .csv file (CSV: the first record is the header). */
export function readRows(path: string): SourceRow[] {
  if (!existsSync(path)) throw new TaskError(`${path}: no such file`);
  const text = readFileSync(path, "utf8");
  const ext = extname(path).toLowerCase();
  if (ext === ".jsonl" || ext === ".ndjson") return parseJsonlRows(text, path);
  if (ext === ".csv") {
    const records = parseCSV(text, path);
    if (records.length === 0) return [];
    const header = records[0].cells.map((h) => h.trim());
    return records.slice(1).map(({ line, cells }) => {
      if (cells.length !== header.length) throw new TaskError(`${path}:${line}: ${cells.length} fields, but the header (${header.join(",")}) has ${header.length}`);
      return { line, fields: Object.fromEntries(header.map((h, j) => [h, cells[j]])) };
    });
  }
  throw new TaskError(`${path}: unknown format "${ext}"; expected .jsonl or .csv`);
}

function labelOf(v: unknown, where: string): string {
  if (typeof v === "string" && v.trim() !== "") return v.trim();
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  if (typeof v === "boolean") return String(v);
  throw new TaskError(`${where}: "label" is missing or empty (got ${JSON.stringify(v)})`);
}

function textOf(v: unknown, field: string, where: string): string {
  if (typeof v !== "string") throw new TaskError(`${where}: "${field}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

/** Rows {text, label} or {text_a, text_b, label} -> examples; errors name source:line. */
export function rowsToExamples(rows: SourceRow[], source: string): Example[] {
  return rows.map(({ line, fields }) => {
    const where = `${source}:${line}`;
    const label = labelOf(fields.label, where);
    if ("text_a" in fields || "text_b" in fields) {
      return { textA: textOf(fields.text_a, "text_a", where), textB: textOf(fields.text_b, "text_b", where), label };
    }
    if (!("text" in fields)) throw new TaskError(`${where}: a row needs "text" (or "text_a" and "text_b") and "label"; got fields ${Object.keys(fields).join(", ") || "(none)"}`);
    return { text: textOf(fields.text, "text", where), label };
  });
}

// ---------------------------------------------------------------- building and checking tasks

/**
 * Checks a task and fixes its label order: `labels` if given (every example's label must be
 * one of them), else the sorted training labels. Every label must occur in the training split.
 */
export function makeTask(name: string, train: Example[], test: Example[], labels?: string[]): Task {
  if (train.length === 0) throw new TaskError(`task ${name}: the training split is empty`);
  if (test.length === 0) throw new TaskError(`task ${name}: the test split is empty`);
  const seen = new Set(train.map((e) => e.label));
  const order = labels ?? [...seen].sort();
  if (new Set(order).size !== order.length) throw new TaskError(`task ${name}: labels ${JSON.stringify(order)} list a label twice`);
  if (order.length < 2) throw new TaskError(`task ${name}: needs at least 2 labels, got ${JSON.stringify(order)}`);
  const known = new Set(order);
  for (const [split, list] of [["train", train], ["test", test]] as const) {
    list.forEach((e, i) => {
      if (!known.has(e.label)) throw new TaskError(`task ${name}: unknown label ${JSON.stringify(e.label)} in ${split} example ${i}; labels are ${JSON.stringify(order)}`);
    });
  }
  for (const l of order) {
    if (!seen.has(l)) throw new TaskError(`task ${name}: label ${JSON.stringify(l)} is missing from the training split`);
  }
  return { name, labels: [...order], train, test };
}

export function labelIndex(task: Pick<Task, "labels" | "name">, label: string): number {
  const i = task.labels.indexOf(label);
  if (i < 0) throw new TaskError(`task ${task.name}: unknown label ${JSON.stringify(label)}; labels are ${JSON.stringify(task.labels)}`);
  return i;
}

/** A seeded Fisher-Yates shuffle (a copy). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const rng = new Rng(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** A stratified seeded split: about `testFraction` of each label's examples go to test. */
export function splitExamples(examples: Example[], testFraction: number, seed: number): { train: Example[]; test: Example[] } {
  if (!(testFraction > 0 && testFraction < 1)) throw new RangeError(`splitExamples: testFraction ${testFraction} must be in (0, 1)`);
  const byLabel = new Map<string, Example[]>();
  for (const e of examples) byLabel.set(e.label, [...(byLabel.get(e.label) ?? []), e]);
  const train: Example[] = [], test: Example[] = [];
  for (const label of [...byLabel.keys()].sort()) {
    const list = shuffled(byLabel.get(label)!, seed);
    const nTest = list.length < 2 ? 0 : Math.max(1, Math.round(list.length * testFraction));
    test.push(...list.slice(0, nTest));
    train.push(...list.slice(nTest));
  }
  return { train: shuffled(train, seed + 1), test: shuffled(test, seed + 2) };
}

export interface TaskFiles {
  name: string;
  train: string;
  /** Without a test file, a stratified `testFraction` of the training file is held out. */
  test?: string;
  labels?: string[];
  testFraction?: number;
  seed?: number;
}

/** A task from JSONL/CSV files. */
export function loadTaskFiles({ name, train, test, labels, testFraction = 0.2, seed = 0 }: TaskFiles): Task {
  const trainRows = rowsToExamples(readRows(train), train);
  if (trainRows.length === 0) throw new TaskError(`task ${name}: ${train} holds no rows (the dataset is empty)`);
  if (labels !== undefined) checkLabels(name, labels, readRows(train), train);
  if (test === undefined) {
    const split = splitExamples(trainRows, testFraction, seed);
    return makeTask(name, split.train, split.test, labels);
  }
  const testRowsRaw = readRows(test);
  const testRows = rowsToExamples(testRowsRaw, test);
  if (testRows.length === 0) throw new TaskError(`task ${name}: ${test} holds no rows (the dataset is empty)`);
  const order = labels ?? [...new Set(trainRows.map((e) => e.label))].sort();
  checkLabels(name, order, testRowsRaw, test);
  return makeTask(name, trainRows, testRows, labels);
}

/** Unknown labels, reported with file:line. */
function checkLabels(name: string, labels: string[], rows: SourceRow[], source: string): void {
  const known = new Set(labels);
  for (const r of rows) {
    const l = labelOf(r.fields.label, `${source}:${r.line}`);
    if (!known.has(l)) {
      throw new TaskError(`${source}:${r.line}: unknown label ${JSON.stringify(l)} in task ${name}; labels are ${JSON.stringify(labels)} (a label missing from the training split?)`);
    }
  }
}

/** k training examples per label, seeded; all of a label's examples if it has fewer than k. */
export function sampleKShot(task: Task, k: number, seed: number): Example[] {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`sampleKShot: k must be a non-negative integer, got ${k}`);
  const out: Example[] = [];
  for (const label of task.labels) {
    out.push(...shuffled(task.train.filter((e) => e.label === label), seed).slice(0, k));
  }
  return shuffled(out, seed + 7919);
}
