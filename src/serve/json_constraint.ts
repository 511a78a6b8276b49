/**
 * `response_format` json_object and json_schema by constrained decoding. An incremental JSON
 * validator (a state machine over bytes, driven by a schema) says, for each token of the
 * byte-level BPE vocabulary, whether its bytes keep the output a prefix of a JSON object (of
 * one that matches the schema); the scheduler sets the other tokens' logits to -Infinity before
 * sampling, for that sequence only, and ends the sequence ("stop") when the object closes.
 *
 * The output is compact JSON (no whitespace between tokens, which also keeps a weak model from
 * emitting blanks forever) and its top-level value is an object. Decoding is budget-aware: the
 * validator knows the fewest bytes that complete what is open (required properties included),
 * and a token is allowed only if what is left of max_tokens (and of the context) can still
 * complete it, so a reply ends in valid JSON whenever max_tokens is at least that minimum (a
 * byte-level vocabulary has a token for every byte).
 *
 * The schema subset (compileSchema; anything else is a 400 naming the keyword): `type` object
 * (properties, required, additionalProperties false or absent: only listed properties are
 * generated), array (items), string, number, integer, boolean, null; `enum` and `const` of
 * strings, numbers, booleans and null; description and title are ignored.
 *
 *     const c = jsonConstraint(bpe, compileSchema(schema), [tok.eot]);  // a TokenConstraint for Scheduler.submit
 */
import type { BPETokenizer } from "../tokenizer/bpe.js";
import { apiError } from "./errors.js";
import type { TokenConstraint } from "./scheduler.js";

export type Schema =
  | { t: "any" }
  | { t: "object"; open: boolean; props: Map<string, Schema>; required: string[] }
  | { t: "array"; items: Schema }
  | { t: "string" }
  | { t: "number"; integer: boolean }
  | { t: "literal"; options: number[][] };

const ANY: Schema = { t: "any" };
/** Any JSON object: what json_object asks for. */
export const ANY_OBJECT: Extract<Schema, { t: "object" }> = { t: "object", open: true, props: new Map(), required: [] };
const bytesOf = (s: string): number[] => [...Buffer.from(s, "utf8")];
const keyBytes = (name: string) => bytesOf(JSON.stringify(name));

type ObjSchema = Extract<Schema, { t: "object" }>;
type Obj = { kind: "o"; s: ObjSchema; stage: "key0" | "key" | "inkey" | "colon" | "value" | "next"; used: string[]; key: string | null };
type Arr = { kind: "a"; s: Schema; stage: "first" | "value" | "next" };
type NumStage = "minus" | "zero" | "int" | "dot" | "frac" | "e" | "esign" | "exp";
type Lit = { b: number[]; name?: string };

const Q = 0x22, BS = 0x5c;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
const ESCAPES = new Set([...'"\\/bfnrt'].map((c) => c.charCodeAt(0)));
const LITERALS: Lit[] = ["true", "false", "null"].map((s) => ({ b: bytesOf(s) }));

const minCache = new WeakMap<Schema, number>();
/** The fewest bytes of a value of the schema. */
function minValue(s: Schema): number {
  let m = minCache.get(s);
  if (m !== undefined) return m;
  switch (s.t) {
    case "any": case "number": m = 1; break;
    case "string": case "array": m = 2; break;
    case "literal": m = Math.min(...s.options.map((o) => o.length)); break;
    case "object": m = 2 + s.required.reduce((n, k) => n + propCost(s, k), 0) + Math.max(0, s.required.length - 1); break;
  }
  minCache.set(s, m);
  return m;
}
/** `"key":value` at its shortest. */
const propCost = (s: ObjSchema, k: string) => keyBytes(k).length + 1 + minValue(s.props.get(k) ?? ANY);
/** After a property (or at "next"): the required ones left, each after a comma, and the closing brace. */
const restNext = (s: ObjSchema, used: readonly string[]) => {
  let n = 1;
  for (const k of s.required) if (!used.includes(k)) n += 1 + propCost(s, k);
  return n;
};

/** A prefix of compact JSON: an object matching the schema. */
export class JsonPrefix {
  private stack: (Obj | Arr)[] = [];
  private started = false;
  done = false;
  private lex: "none" | "string" | "number" | "literal" = "none";
  private strKey = false;
  private esc = false;
  private hexLeft = 0;
  private utf8Need = 0;
  private num: NumStage = "zero";
  private integer = false;
  private lits: Lit[] = [];
  private litAt = 0;
  private litKey = false;

  constructor(private readonly root: Schema = ANY_OBJECT) {}

  clone(): JsonPrefix {
    const c = Object.assign(new JsonPrefix(this.root), this);
    c.stack = this.stack.map((f) => f.kind === "o" ? { ...f, used: f.used.slice() } : { ...f });
    return c;
  }

  /** The fewest bytes that complete the object from here. */
  cost(): number {
    if (this.done) return 0;
    if (!this.started) return minValue(this.root);
    let c = 0;
    if (this.lex === "string") c += 1 + this.utf8Need + (this.esc ? 1 : 0) + this.hexLeft;
    else if (this.lex === "number") c += this.num === "minus" || this.num === "dot" || this.num === "e" || this.num === "esign" ? 1 : 0;
    else if (this.lex === "literal" && !this.litKey) c += Math.min(...this.lits.map((o) => o.b.length - this.litAt));
    for (const f of this.stack) {
      if (f.kind === "a") {
        c += f.stage === "value" ? minValue(f.s) + 1 : 1;
        continue;
      }
      const s = f.s;
      switch (f.stage) {
        case "next": c += restNext(s, f.used); break;
        case "colon": c += 1 + minValue(s.props.get(f.key!) ?? ANY) + restNext(s, f.used); break;
        case "value": c += minValue(s.props.get(f.key!) ?? ANY) + restNext(s, f.used); break;
        case "key0": c += restNext(s, f.used) - (s.required.length > 0 ? 1 : 0); break;
        case "key": {
          const left = s.required.filter((k) => !f.used.includes(k));
          if (left.length > 0) c += restNext(s, f.used) - 1;
          else if (s.open) c += 5;  // "":0}
          else c += 1 + Math.min(...[...s.props.keys()].filter((k) => !f.used.includes(k)).map((k) => propCost(s, k)));
          break;
        }
        case "inkey":
          if (!s.open && this.lex === "literal" && this.litKey) {
            c += Math.min(...this.lits.map((o) => o.b.length - this.litAt + 1 + minValue(s.props.get(o.name!) ?? ANY) + restNext(s, [...f.used, o.name!])));
          } else c += 2 + restNext(s, f.used);  // a free key: :0 and the rest
          break;
      }
    }
    return c;
  }

  /** Inside a string, outside any escape or multi-byte character: where plain string bytes keep the state (and its cost) as it is. */
  inPlainString(): boolean {
    return this.lex === "string" && !this.esc && this.hexLeft === 0 && this.utf8Need === 0;
  }

  /** Feeds one byte; false (and the state is then unusable) if no matching object starts with the bytes so far. */
  feed(b: number): boolean {
    if (this.done) return false;
    if (this.lex === "string") return this.feedString(b);
    if (this.lex === "literal") {
      const next = this.lits.filter((o) => o.b[this.litAt] === b);
      if (next.length > 0) {
        this.lits = next;
        this.litAt++;
        const whole = next.find((o) => o.b.length === this.litAt);
        if (whole !== undefined && next.every((o) => o.b.length === this.litAt)) this.endLiteral(whole);
        return true;
      }
      const whole = this.lits.find((o) => o.b.length === this.litAt);
      if (whole === undefined) return false;
      this.endLiteral(whole);  // a literal that another one extends (1 of 1 and 12) ends at a delimiter
      return this.structural(b);
    }
    if (this.lex === "number") {
      const s = this.num, e = !this.integer && (b === 0x65 || b === 0x45), dot = !this.integer && b === 0x2e;
      const next: NumStage | null =
        s === "minus" ? (b === 0x30 ? "zero" : isDigit(b) ? "int" : null)
          : s === "zero" ? (dot ? "dot" : e ? "e" : null)
            : s === "int" ? (isDigit(b) ? "int" : dot ? "dot" : e ? "e" : null)
              : s === "dot" || s === "frac" ? (isDigit(b) ? "frac" : s === "frac" && e ? "e" : null)
                : s === "e" ? (isDigit(b) ? "exp" : b === 0x2b || b === 0x2d ? "esign" : null)
                  : isDigit(b) ? "exp" : null;
      if (next !== null) {
        this.num = next;
        return true;
      }
      if (s === "minus" || s === "dot" || s === "e" || s === "esign") return false;
      this.lex = "none";  // a complete number ends at a delimiter, which its container reads
    }
    return this.structural(b);
  }

  private endLiteral(o: Lit): void {
    this.lex = "none";
    if (!this.litKey) return;
    const f = this.stack[this.stack.length - 1] as Obj;
    f.stage = "colon";
    f.key = o.name!;
    f.used.push(o.name!);
  }

  private feedString(b: number): boolean {
    if (this.utf8Need > 0) {
      if (b < 0x80 || b > 0xbf) return false;
      this.utf8Need--;
      return true;
    }
    if (this.esc) {
      this.esc = false;
      if (b === 0x75) this.hexLeft = 4;
      return ESCAPES.has(b) || b === 0x75;
    }
    if (this.hexLeft > 0) {
      this.hexLeft--;
      return isHex(b);
    }
    if (b === Q) {
      this.lex = "none";
      if (this.strKey) (this.stack[this.stack.length - 1] as Obj).stage = "colon";
      return true;
    }
    if (b === BS) return (this.esc = true);
    if (b < 0x20) return false;
    if (b < 0x80) return true;
    this.utf8Need = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    return this.utf8Need > 0;
  }

  private close(): boolean {
    this.stack.pop();
    if (this.stack.length === 0) this.done = true;
    return true;
  }

  private startKey(f: Obj): boolean {
    f.stage = "inkey";
    if (f.s.open) {
      this.lex = "string";
      this.strKey = true;
      f.key = null;
      return true;
    }
    const left = [...f.s.props.keys()].filter((k) => !f.used.includes(k));
    if (left.length === 0) return false;
    this.lex = "literal";
    this.litKey = true;
    this.lits = left.map((k) => ({ b: keyBytes(k), name: k }));
    this.litAt = 1;
    return true;
  }

  private structural(b: number): boolean {
    if (!this.started) {
      this.started = true;
      return this.startValue(b, this.root);
    }
    const top = this.stack[this.stack.length - 1];
    if (top.kind === "o") {
      const s = top.s;
      const complete = () => s.required.every((k) => top.used.includes(k));
      switch (top.stage) {
        case "key0":
          if (b === 0x7d) return complete() ? this.close() : false;
          return b === Q ? this.startKey(top) : false;
        case "key":
          return b === Q ? this.startKey(top) : false;
        case "colon":
          if (b !== 0x3a) return false;
          top.stage = "value";
          return true;
        case "value":
          top.stage = "next";
          return this.startValue(b, top.key === null ? ANY : s.props.get(top.key) ?? ANY);
        case "next":
          if (b === 0x2c) {
            top.stage = "key";
            return s.open || top.used.length < s.props.size;
          }
          return b === 0x7d && complete() ? this.close() : false;
        default:
          return false;
      }
    }
    if (top.stage === "first" && b === 0x5d) return this.close();
    if (top.stage === "first" || top.stage === "value") {
      top.stage = "next";
      return this.startValue(b, top.s);
    }
    if (b === 0x2c) return (top.stage = "value"), true;
    return b === 0x5d ? this.close() : false;
  }

  private startValue(b: number, s: Schema): boolean {
    const any = s.t === "any";
    if (b === 0x7b && (any || s.t === "object")) return this.stack.push({ kind: "o", s: any ? ANY_OBJECT : s as ObjSchema, stage: "key0", used: [], key: null }), true;
    if (b === 0x5b && (any || s.t === "array")) return this.stack.push({ kind: "a", s: s.t === "array" ? s.items : ANY, stage: "first" }), true;
    if (b === Q && (any || s.t === "string")) {
      this.lex = "string";
      this.strKey = false;
      return true;
    }
    if ((b === 0x2d || isDigit(b)) && (any || s.t === "number")) {
      this.lex = "number";
      this.integer = s.t === "number" && s.integer;
      this.num = b === 0x2d ? "minus" : b === 0x30 ? "zero" : "int";
      return true;
    }
    const options = s.t === "literal" ? s.options.map((o) => ({ b: o })) : any ? LITERALS : [];
    const lits = options.filter((o) => o.b[0] === b);
    if (lits.length === 0) return false;
    this.lex = "literal";
    this.litKey = false;
    this.lits = lits;
    this.litAt = 1;
    const whole = lits.find((o) => o.b.length === 1);
    if (whole !== undefined && lits.every((o) => o.b.length === 1)) this.endLiteral(whole);
    return true;
  }
}

const KNOWN = new Set(["type", "properties", "required", "additionalProperties", "items", "enum", "const", "description", "title"]);

/** The supported subset of JSON Schema, compiled; anything else is a 400 naming the keyword (param response_format.json_schema.schema...). */
export function compileSchema(raw: unknown, path = "response_format.json_schema.schema"): Schema {
  const fail = (at: string, why: string) => apiError("invalid_value", `'${at}' is not supported by this server: ${why}. Supported: type object (properties, required, additionalProperties false), array (items), string, number, integer, boolean, null; enum and const of scalars.`, at);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw apiError("invalid_value", `Invalid value for '${path}': expected a JSON Schema object.`, path);
  const s = raw as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw fail(`${path}.${k}`, `the schema keyword '${k}' is not enforced`);
  const literals = s.const !== undefined ? [s.const] : s.enum;
  if (literals !== undefined) {
    if (!Array.isArray(literals) || literals.length === 0) throw apiError("invalid_value", `Invalid value for '${path}.enum': expected a non-empty array.`, `${path}.enum`);
    if (literals.some((v) => v !== null && typeof v === "object")) throw fail(`${path}.${s.const !== undefined ? "const" : "enum"}`, "enum values must be strings, numbers, booleans or null");
    return { t: "literal", options: literals.map((v) => bytesOf(JSON.stringify(v))) };
  }
  switch (s.type) {
    case "string": return { t: "string" };
    case "number": return { t: "number", integer: false };
    case "integer": return { t: "number", integer: true };
    case "boolean": return { t: "literal", options: [bytesOf("true"), bytesOf("false")] };
    case "null": return { t: "literal", options: [bytesOf("null")] };
    case "array": return { t: "array", items: s.items === undefined ? ANY : compileSchema(s.items, `${path}.items`) };
    case "object": {
      if (s.additionalProperties !== undefined && s.additionalProperties !== false) throw fail(`${path}.additionalProperties`, "only additionalProperties false is enforced");
      const propsRaw = s.properties === undefined ? {} : s.properties;
      if (propsRaw === null || typeof propsRaw !== "object" || Array.isArray(propsRaw)) throw apiError("invalid_value", `Invalid value for '${path}.properties': expected an object.`, `${path}.properties`);
      const props = new Map(Object.entries(propsRaw).map(([k, v]) => [k, compileSchema(v, `${path}.properties.${k}`)] as const));
      const required = s.required ?? [];
      if (!Array.isArray(required) || required.some((k) => typeof k !== "string" || !props.has(k))) {
        throw apiError("invalid_value", `Invalid value for '${path}.required': expected an array of names from properties.`, `${path}.required`);
      }
      return { t: "object", open: false, props, required: [...new Set(required as string[])] };
    }
    default:
      throw fail(`${path}.type`, `type ${JSON.stringify(s.type)} is not one of object, array, string, number, integer, boolean, null`);
  }
}

interface TokenTable {
  bytes: Uint8Array[];
  /** Tokens that are plain string content: no quote, backslash or control byte, and whole UTF-8 characters. */
  plain: Uint8Array;
}
const tables = new WeakMap<object, TokenTable>();

/** Each token id's bytes (added tokens as their UTF-8 text), computed once per tokenizer. */
function tokenTable(bpe: Pick<BPETokenizer, "vocabSize" | "decodeBytes">): TokenTable {
  let t = tables.get(bpe);
  if (t === undefined) {
    const bytes = Array.from({ length: bpe.vocabSize }, (_, i) => bpe.decodeBytes([i]));
    const plain = Uint8Array.from(bytes, (tb) => {
      const p = new JsonPrefix();
      for (const b of [0x7b, Q]) p.feed(b);
      return tb.length > 0 && tb.every((b) => b !== Q && b !== BS && p.feed(b)) && p.inPlainString() ? 1 : 0;
    });
    tables.set(bpe, (t = { bytes, plain }));
  }
  return t;
}

/** A per-sequence constraint for Scheduler.submit: the output is one compact JSON object matching `schema`. */
export function jsonConstraint(bpe: Pick<BPETokenizer, "vocabSize" | "decodeBytes">, schema: Schema, banned: readonly number[]): TokenConstraint {
  if (schema.t !== "object") throw apiError("invalid_value", "Invalid value for 'response_format.json_schema.schema': the top-level schema must be of type object.", "response_format.json_schema.schema");
  const { bytes, plain } = tokenTable(bpe);
  const ban = new Set(banned);
  const state = new JsonPrefix(schema);
  return {
    mask(logits: Float32Array, remaining: number): number {
      // Bytes that can come next at all: a token whose first byte cannot is refused without a walk.
      const first = new Uint8Array(256);
      for (let b = 0; b < 256; b++) first[b] = state.clone().feed(b) ? 1 : 0;
      // Inside a string (most steps), plain content leaves the state and its cost unchanged: no walk.
      const plainOk = state.inPlainString() ? state.cost() <= remaining - 1 : null;
      let allowed = 0;
      for (let id = 0; id < logits.length; id++) {
        const tb = id < bytes.length ? bytes[id] : undefined;
        let ok = tb !== undefined && tb.length > 0 && !ban.has(id) && first[tb[0]] === 1;
        if (ok && plainOk !== null && plain[id] === 1) ok = plainOk;
        else if (ok) {
          const s = state.clone();
          for (let k = 0; ok && k < tb!.length; k++) ok = s.feed(tb![k]);
          ok &&= s.cost() <= remaining - 1;
        }
        if (ok) allowed++;
        else logits[id] = -Infinity;
      }
      return allowed;
    },
    accept(token: number): void {
      for (const b of bytes[token]) if (!state.feed(b)) throw new Error(`json constraint: token ${token} does not continue the JSON`);
    },
    done: () => state.done,
  };
}
