/** Argument helpers shared by the CLI commands. */
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
