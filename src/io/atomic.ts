/**
 * Atomic file writes: write a temporary file beside the target, fsync it, rename it over
 * the target, fsync the folder. A reader (or a crash at any point) sees the old file or
 * the new one, never a torn one. On failure the temporary file is removed.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";

let writes = 0;

export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tmp = `${path}.tmp-${process.pid}-${(writes++).toString(36)}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "w");
    for (let at = 0; at < view.length;) at += writeSync(fd, view, at, Math.min(view.length - at, 1 << 30));
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) try { closeSync(fd); } catch { /* already failing: the first error is the one to report */ }
    try { unlinkSync(tmp); } catch { /* the temporary file may not exist yet */ }
    throw e;
  }
  if (process.platform === "win32") return; // folders cannot be opened for fsync there
  const dirFd = openSync(dirname(path), "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
