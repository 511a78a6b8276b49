/**
 * Tokenizer files on disk. Writes are atomic: a temporary file beside the target is
 * written and fsynced, then renamed over it, and the folder is fsynced, so a crash leaves
 * either the old file or the new one, never a torn one.
 */
import { writeFileAtomic } from "../io/atomic.js";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

export const TOKENIZER_FILE = "tokenizer.json";

/** A folder means the tokenizer.json inside it; anything else is the file itself. */
export function tokenizerPath(path: string): string {
  try {
    if (statSync(path).isDirectory()) return join(path, TOKENIZER_FILE);
  } catch {
    // not there yet: a file to create, or a missing file to report
  }
  return path;
}

/** Atomic save of a text file, creating its folder. */
export function writeTextAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, text);
}

/** Parsed JSON of a file, with errors that say which file and what went wrong. */
export function readJSONFile(path: string, operation: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`${operation}: no file at ${path}`);
    throw new Error(`${operation}: cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${operation}: ${path} is not valid JSON (${(e as Error).message})`);
  }
}
