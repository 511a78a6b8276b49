/**
 * Hugging Face's tokenizer.json for a byte-level BPE (the layout the `tokenizers` library
 * writes for GPT-2-style models), both ways. Reading validates the file and names the
 * field at fault; it accepts merges written as "a b" strings (older files) or [a, b]
 * pairs (what Hugging Face writes now, and what we write).
 */
import type { AddedToken, BPEModelSpec } from "./bpe.js";

interface ByteLevelStep {
  type: "ByteLevel";
  add_prefix_space: boolean;
  trim_offsets: boolean;
  use_regex: boolean;
}

export interface HuggingFaceAddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface HuggingFaceTokenizerJSON {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: HuggingFaceAddedToken[];
  normalizer: null;
  pre_tokenizer: ByteLevelStep;
  post_processor: ByteLevelStep | null;
  decoder: ByteLevelStep;
  model: {
    type: "BPE";
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    merges: [string, string][];
  };
}

export function specToHuggingFace(spec: BPEModelSpec): HuggingFaceTokenizerJSON {
  const vocab = Object.create(null) as Record<string, number>; // no prototype: a token may be "__proto__"
  spec.vocab.forEach((token, id) => (vocab[token] = id)); // added tokens belong to the model vocabulary too, as the trainer writes them
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: spec.added.map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.special })),
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: spec.merges.map(([a, b]) => [a, b]),
    },
  };
}

/**
 * The file's text, pretty-printed with the vocabulary in id order (a plain object would
 * list integer-like tokens such as "0" and "42" first).
 */
export function serializeHuggingFace(json: HuggingFaceTokenizerJSON): string {
  const placeholder = "\u0000vocab\u0000";
  const text = JSON.stringify({ ...json, model: { ...json.model, vocab: placeholder } }, null, 2);
  const entries = Object.entries(json.model.vocab).sort((x, y) => x[1] - y[1]);
  const vocab = entries.length === 0 ? "{}" : `{\n${entries.map(([token, id]) => `      ${JSON.stringify(token)}: ${id}`).join(",\n")}\n    }`;
  return text.replace(JSON.stringify(placeholder), () => vocab) + "\n";
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function specFromHuggingFace(json: unknown, source: string): BPEModelSpec {
  const fail = (message: string): never => {
    throw new Error(`${source}: ${message}`);
  };
  if (!isObject(json)) return fail(`expected a JSON object at the top level, got ${describe(json)}`);
  const model = json.model;
  if (!isObject(model)) return fail(`"model" is missing or not an object`);
  if (model.type !== "BPE") return fail(`model.type is ${describe(model.type)}; only "BPE" models are supported`);
  if (json.normalizer != null) return fail(`normalizer is ${describe(json.normalizer)}; only null is supported`);
  const pre = json.pre_tokenizer;
  if (!isObject(pre) || pre.type !== "ByteLevel" || pre.add_prefix_space === true || pre.use_regex === false) {
    return fail(`pre_tokenizer is ${describe(pre)}; expected {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`);
  }
  if (model.dropout != null && model.dropout !== 0) return fail(`model.dropout is ${describe(model.dropout)}; only null is supported`);
  for (const field of ["continuing_subword_prefix", "end_of_word_suffix"] as const) {
    if (model[field] != null && model[field] !== "") return fail(`model.${field} is ${describe(model[field])}; only null or "" is supported`);
  }

  const vocabJson = model.vocab;
  if (!isObject(vocabJson)) return fail(`model.vocab is missing or not an object of token → id`);
  const vocab: string[] = [];
  for (const [token, id] of Object.entries(vocabJson)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) return fail(`model.vocab[${JSON.stringify(token)}] is ${describe(id)}, not a non-negative integer id`);
    if (vocab[id] !== undefined) return fail(`model.vocab gives id ${id} to both ${JSON.stringify(vocab[id])} and ${JSON.stringify(token)}`);
    vocab[id] = token;
  }

  const addedJson = json.added_tokens ?? [];
  if (!Array.isArray(addedJson)) return fail(`added_tokens is not an array`);
  const added: AddedToken[] = addedJson.map((t, i) => {
    if (!isObject(t) || typeof t.content !== "string" || typeof t.id !== "number" || !Number.isInteger(t.id) || t.id < 0) {
      return fail(`added_tokens[${i}] is ${describe(t)}; expected {"id": <integer>, "content": <string>, ...}`);
    }
    if (vocab[t.id] !== undefined && vocab[t.id] !== t.content) return fail(`added_tokens[${i}] puts ${JSON.stringify(t.content)} at id ${t.id}, which model.vocab gives to ${JSON.stringify(vocab[t.id])}`);
    vocab[t.id] = t.content;
    return { id: t.id, content: t.content, special: t.special === true };
  });
  for (let id = 0; id < vocab.length; id++) {
    if (vocab[id] === undefined) return fail(`ids must run from 0 without gaps, but no token has id ${id} (of ${vocab.length})`);
  }

  const mergesJson = model.merges;
  if (!Array.isArray(mergesJson)) return fail(`model.merges is missing or not an array`);
  const merges = mergesJson.map((m, i): [string, string] => {
    let pair: unknown[] | undefined;
    if (typeof m === "string") {
      const parts = m.split(" ");
      if (parts.length === 2) pair = parts;
    } else if (Array.isArray(m) && m.length === 2) pair = m;
    if (pair === undefined || pair.some((p) => typeof p !== "string" || p.length === 0)) {
      return fail(`model.merges[${i}] is ${describe(m)}; expected "a b" or ["a", "b"]`);
    }
    const [a, b] = pair as [string, string];
    for (const part of [a, b, a + b]) {
      if (!Object.hasOwn(vocabJson, part)) return fail(`model.merges[${i}] ${describe(m)} refers to ${JSON.stringify(part)}, which is not in model.vocab`);
    }
    return [a, b];
  });
  return { vocab, merges, added };
}
