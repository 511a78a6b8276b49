/** Argument helpers shared by the CLI commands: every flag is checked before any work starts. */
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** "90s", "5m", "1h", "300" (seconds) -> seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`invalid duration "${text}": expected e.g. 90s, 5m or 1h`);
  const v = Number(m[1]);
  return m[2] === "h" ? v * 3600 : m[2] === "m" ? v * 60 : v;
}

export function parseIntArg(name: string, text: string | undefined, fallback: number, min = 0): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${text}"`);
  return v;
}

export function parseFloatArg(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got "${text}"`);
  return v;
}

/** Like parseIntArg, but undefined when the flag is absent. */
export function optionalInt(name: string, text: string | undefined, min = 0): number | undefined {
  return text === undefined ? undefined : parseIntArg(name, text, 0, min);
}

/** A finite number > 0 (learning rates, sizes in MB). */
export function parsePositiveArg(name: string, text: string | undefined, fallback: number): number {
  const v = parseFloatArg(name, text, fallback);
  if (!(v > 0)) throw new UsageError(`--${name} must be a number > 0, got "${text}"`);
  return v;
}

/** `value` if it is one of `allowed`, else a UsageError listing them. */
export function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`unknown --${name} "${value}" (expected ${allowed.join(", ")})`);
  return value as T;
}

/**
 * Checks that `dir` is a folder that exists and can be written, or one that can be created
 * (its nearest existing parent is a writable folder), without creating anything.
 */
export function checkWritableDir(name: string, dir: string): void {
  let at = resolve(dir);
  while (!existsSync(at)) {
    const up = dirname(at);
    if (up === at) break;
    at = up;
  }
  if (!statSync(at).isDirectory()) throw new UsageError(`--${name} ${dir}: ${at} is a file, not a folder`);
  try {
    accessSync(at, constants.W_OK);
  } catch {
    throw new UsageError(`--${name} ${dir}: ${at} is not writable; choose another folder`);
  }
}

/** Checks that `path` is an existing file. */
export function checkFile(name: string, path: string): void {
  if (!existsSync(path)) throw new UsageError(`--${name} ${path}: no such file`);
  if (!statSync(path).isFile()) throw new UsageError(`--${name} ${path}: not a file`);
}

/** Checks that `dir` is a model folder (it has a config.json) before anything reads it. */
export function checkModelDir(name: string, dir: string): void {
  if (!existsSync(join(dir, "config.json"))) {
    throw new UsageError(`--${name} ${dir}: no config.json there; give a model folder (from plinth pretrain or plinth import), e.g. runs/default from npm start`);
  }
}
