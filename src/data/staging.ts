/**
 * Where a preparation in progress lives, so that it can be killed at any moment and nothing
 * already prepared is lost:
 *
 *   <out>/manifest.json, <out>/train-NNNN.bin, <out>/val-NNNN.bin   the prepared corpus, untouched
 *                                                                    until the new one is complete
 *   <out>/.prep/progress.json   the partial manifest: what the preparation is (its key), where its
 *                               shards stand (per split: shard names, tokens in the last one,
 *                               totals) and the source position they reach; rewritten atomically
 *                               (temporary file, fsync, rename) each time a shard fills
 *   <out>/.prep/*.bin           the shards written so far
 *   <out>/.prep/manifest.json   written once every shard is complete: the commit record. Its shards
 *                               are then moved into <out> and it replaces <out>/manifest.json; a run
 *                               that finds it (the commit was interrupted) completes the commit first.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Position } from "./pieces.js";
import type { SplitState } from "./shards.js";

export const STAGING = ".prep";

export interface ProgressRecord {
  version: 1;
  /** What is being prepared; a preparation resumes only with an equal key. */
  key: unknown;
  position: Position;
  train: SplitState;
  val: SplitState;
  /** Where this preparation started (an extended corpus starts after the documents it had). */
  started: Position;
}

export interface CommitRecord {
  /** The manifest to install as <out>/manifest.json. */
  manifest: unknown;
  /** Shard files to move from the staging folder into <out>. */
  moves: string[];
  /** Every shard of the corpus (anything else named like a shard in <out> is left over and removed). */
  keep: string[];
}

export function writeJSONAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, JSON.stringify(value, null, 2) + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function readProgress(outDir: string): ProgressRecord | null {
  const path = join(outDir, STAGING, "progress.json");
  if (!existsSync(path)) return null;
  try {
    const p = JSON.parse(readFileSync(path, "utf8")) as ProgressRecord;
    return p.version === 1 ? p : null;
  } catch {
    return null;  // a progress file is only ever replaced whole; an unreadable one means start again
  }
}

export function writeProgress(outDir: string, p: ProgressRecord): void {
  writeJSONAtomic(join(outDir, STAGING, "progress.json"), p);
}

/** Empties the staging folder (a preparation of something else, or none yet). */
export function resetStaging(outDir: string): string {
  const dir = join(outDir, STAGING);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Records the commit, then carries it out. */
export function commit(outDir: string, record: CommitRecord): void {
  writeJSONAtomic(join(outDir, STAGING, "manifest.json"), record);
  finishCommit(outDir, record);
}

/** Completes a commit that was recorded but interrupted (or does nothing). */
export function finishCommit(outDir: string, recorded?: CommitRecord): void {
  const dir = join(outDir, STAGING);
  const recordPath = join(dir, "manifest.json");
  if (recorded === undefined && !existsSync(recordPath)) return;
  const record = recorded ?? JSON.parse(readFileSync(recordPath, "utf8")) as CommitRecord;
  for (const name of record.moves) {
    const from = join(dir, name);
    if (existsSync(from)) renameSync(from, join(outDir, name));
  }
  writeJSONAtomic(join(outDir, "manifest.json"), record.manifest);
  const keep = new Set(record.keep);
  for (const f of readdirSync(outDir)) if (/^(train|val)-\d{4}\.bin$/.test(f) && !keep.has(f)) rmSync(join(outDir, f));
  rmSync(dir, { recursive: true, force: true });
}
