/** Request-body field readers: each names the parameter and what was expected when it is wrong. */
import { apiError } from "./errors.js";

export type Body = Record<string, unknown>;

export function bodyOf(raw: unknown): Body {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw apiError("invalid_value", `The request body must be a JSON object, got ${raw === undefined ? "nothing" : Array.isArray(raw) ? "an array" : typeof raw}.`);
  }
  return raw as Body;
}

export function str(b: Body, name: string, opts: { required: true }): string;
export function str(b: Body, name: string, opts?: { required?: false }): string | undefined;
export function str(b: Body, name: string, { required = false } = {}): string | undefined {
  const v = b[name];
  if (v === undefined || v === null) {
    if (required) throw apiError("missing_required_parameter", `Missing required parameter: '${name}'.`, name);
    return undefined;
  }
  if (typeof v !== "string") throw apiError("invalid_value", `Invalid type for '${name}': expected a string, but got ${JSON.stringify(v)}.`, name);
  return v;
}

export function num(b: Body, name: string, { min = -Infinity, max = Infinity, integer = false, fallback }: { min?: number; max?: number; integer?: boolean; fallback: number }): number {
  const v = b[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw apiError("invalid_value", `Invalid type for '${name}': expected ${integer ? "an integer" : "a number"}, but got ${JSON.stringify(v)}.`, name);
  }
  if (v < min || v > max) throw apiError("invalid_value", `Invalid value for '${name}': ${v} is outside [${min}, ${max}].`, name);
  return v;
}

export function bool(b: Body, name: string, fallback: boolean): boolean {
  const v = b[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw apiError("invalid_value", `Invalid type for '${name}': expected a boolean, but got ${JSON.stringify(v)}.`, name);
  return v;
}

/** A string or a non-empty list of strings (prompt, input, stop). */
export function strings(b: Body, name: string, { required = false, max = Infinity } = {}): string[] | undefined {
  const v = b[name];
  if (v === undefined || v === null) {
    if (required) throw apiError("missing_required_parameter", `Missing required parameter: '${name}'.`, name);
    return undefined;
  }
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || list.some((s) => typeof s !== "string")) {
    throw apiError("invalid_value", `Invalid type for '${name}': expected a string or a non-empty array of strings, but got ${JSON.stringify(v)}.`, name);
  }
  if (list.length > max) throw apiError("invalid_value", `Invalid value for '${name}': at most ${max} entries, got ${list.length}.`, name);
  return list as string[];
}
