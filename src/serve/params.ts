/**
 * Request readers: body fields and query parameters. Each names the parameter and what was
 * expected when it is wrong, so every bad value is a 400 in OpenAI's shape with `param` set.
 *
 *     const b = bodyOf(req.body);  num(b, "n", { min: 1, max: 8, integer: true, fallback: 1 });
 *     app.get("/v1/things", { config: { query: { limit: q.int(1, 100), after: q.str() } } }, ...)   // checked by app.ts for every /v1 route
 */
import { apiError } from "./errors.js";

export type Body = Record<string, unknown>;

/** A value as an error message shows it: JSON, shortened, with what JSON cannot show (1e999 parses as Infinity) spelled out. */
export function describe(v: unknown): string {
  if (typeof v === "number" && !Number.isFinite(v)) return Number.isNaN(v) ? "NaN" : `a number too large to represent (it overflows to ${v})`;
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

const kindOf = (v: unknown): string => v === null ? "null" : Array.isArray(v) ? "an array" : v === undefined ? "nothing" : typeof v === "string" ? "a string" : typeof v === "number" ? "a number" : typeof v === "boolean" ? "a boolean" : typeof v;

/**
 * JSON bodies: a UTF-8 byte-order mark is skipped; an empty body, invalid JSON, and keys that
 * could reach an object's prototype (`__proto__`, `constructor.prototype`) are 400s that say which.
 */
export function parseJsonBody(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === "") throw apiError("invalid_json", "The request body is empty. Send a JSON object with Content-Type: application/json.");
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (e) {
    throw apiError("invalid_json", `We could not parse the JSON body of your request: ${(e as Error).message}. Send a JSON object with Content-Type: application/json.`);
  }
  const stack: [unknown, string][] = [[value, ""]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push([x, `${path}[${i}]`]));
      continue;
    }
    for (const [k, x] of Object.entries(v)) {
      const at = path === "" ? k : `${path}.${k}`;
      const poisoned = k === "__proto__" || (k === "constructor" && x !== null && typeof x === "object" && Object.hasOwn(x, "prototype"));
      if (poisoned) throw apiError("invalid_value", `The JSON body has a key '${k === "__proto__" ? at : `${at}.prototype`}': keys named __proto__ (or constructor.prototype) could alter object prototypes, so this server refuses them. Rename the key.`, at);
      stack.push([x, at]);
    }
  }
  return value;
}

export function bodyOf(raw: unknown, name?: string): Body {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    if (name !== undefined) throw apiError("invalid_value", `Invalid type for '${name}': expected an object, but got ${kindOf(raw)}.`, name);
    throw apiError("invalid_value", `The request body must be a JSON object, got ${kindOf(raw)}.`);
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
  if (typeof v !== "string") throw apiError("invalid_value", `Invalid type for '${name}': expected a string, but got ${describe(v)}.`, name);
  return v;
}

export function num(b: Body, name: string, { min = -Infinity, max = Infinity, integer = false, fallback }: { min?: number; max?: number; integer?: boolean; fallback: number }): number {
  const v = b[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v === "number" && !Number.isFinite(v)) throw apiError("invalid_value", `Invalid value for '${name}': ${describe(v)}; expected ${integer ? "an integer" : "a number"} in [${min}, ${max}].`, name);
  if (typeof v !== "number" || (integer && !Number.isInteger(v))) {
    throw apiError("invalid_value", `Invalid type for '${name}': expected ${integer ? "an integer" : "a number"}, but got ${describe(v)}.`, name);
  }
  if (v < min || v > max) throw apiError("invalid_value", `Invalid value for '${name}': ${v} is outside [${min}, ${max}].`, name);
  return v;
}

export function bool(b: Body, name: string, fallback: boolean): boolean {
  const v = b[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw apiError("invalid_value", `Invalid type for '${name}': expected a boolean, but got ${describe(v)}.`, name);
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
    throw apiError("invalid_value", `Invalid type for '${name}': expected a string or a non-empty array of strings, but got ${describe(v)}.`, name);
  }
  if (list.length > max) throw apiError("invalid_value", `Invalid value for '${name}': at most ${max} entries, got ${list.length}.`, name);
  return list as string[];
}

// ---- query parameters ----

/** One query parameter's reader: the raw string in, the value out, or an error message. */
export interface QueryField<T> {
  parse(raw: string): T | { error: string };
}

export type QuerySpec = Record<string, QueryField<unknown>>;
export type QueryValues<S extends QuerySpec> = { [K in keyof S]?: S[K] extends QueryField<infer T> ? T : never };

const fail = (error: string) => ({ error });

/** Query parameter readers: integers in a range, bounded strings, one of a few words. */
export const q = {
  int: (min: number, max: number): QueryField<number> => ({
    parse: (raw) => {
      if (!/^-?\d{1,16}$/.test(raw)) return fail(`expected an integer from ${min} to ${max}, got ${describe(raw)}`);
      const v = Number(raw);
      return v < min || v > max ? fail(`${v} is outside [${min}, ${max}]`) : v;
    },
  }),
  str: (maxLength = 256, pattern?: RegExp): QueryField<string> => ({
    parse: (raw) => {
      if (raw.length === 0) return fail("expected a value, got an empty string");
      if (raw.length > maxLength) return fail(`at most ${maxLength} characters, got ${raw.length}`);
      if (/[\x00-\x1f\x7f]/.test(raw)) return fail("control characters are not allowed");
      return pattern !== undefined && !pattern.test(raw) ? fail(`${describe(raw)} does not match ${pattern.source}`) : raw;
    },
  }),
  oneOf: <T extends string>(...values: T[]): QueryField<T> => ({
    parse: (raw) => (values as string[]).includes(raw) ? (raw as T) : fail(`expected one of ${values.join(", ")}, got ${describe(raw)}`),
  }),
};

/**
 * A request's query parameters, checked against the route's spec: an unknown name, a name
 * given twice, or a bad value is a 400 naming the parameter. Names not given are absent.
 */
export function query<S extends QuerySpec>(raw: unknown, spec: S): QueryValues<S> {
  const out: Record<string, unknown> = {};
  const given = raw === null || typeof raw !== "object" ? {} : (raw as Record<string, unknown>);
  for (const [name, v] of Object.entries(given)) {
    const field = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (field === undefined) {
      const known = Object.keys(spec);
      throw apiError("unknown_parameter", `Unrecognized query parameter: '${name}'. ${known.length === 0 ? "This endpoint takes no query parameters." : `This endpoint takes ${known.map((k) => `'${k}'`).join(", ")}.`}`, name);
    }
    if (Array.isArray(v)) throw apiError("invalid_value", `Invalid value for query parameter '${name}': given ${v.length} times; give it once.`, name);
    const parsed = field.parse(typeof v === "string" ? v : String(v));
    if (parsed !== null && typeof parsed === "object" && "error" in parsed) throw apiError("invalid_value", `Invalid value for query parameter '${name}': ${(parsed as { error: string }).error}.`, name);
    out[name] = parsed;
  }
  return out as QueryValues<S>;
}
