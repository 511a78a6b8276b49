/** Atomic JSON files (see atomic.ts). */
import { writeFileAtomic } from "./atomic.js";

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}
