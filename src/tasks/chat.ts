/**
 * Generative task data: OpenAI's fine-tuning formats and plain text, validated line by line and
 * tokenized into (ids, which ids to learn) pairs for the supervised LM objective (train/sft.ts).
 *
 *   chat               {"messages": [{"role": "system"|"user"|"assistant", "content": "...", "weight"?: 0|1}, ...]}
 *   prompt/completion  {"prompt": "...", "completion": "..."}
 *   plain text         files, folders or globs (data/sources.ts): continued pretraining, every token learned
 *
 *     const data = loadGenerativeData("chats.jsonl");            // errors name chats.jsonl:LINE
 *     const ex = tokenizeExamples(data, tok, chatTemplateFor(base), { ctx: 128 });
 *     const { train, val } = splitGenerative(ex, 0.1, 0);
 */
import { existsSync, readFileSync } from "node:fs";
import { loadSources } from "../data/sources.js";
import type { TextTokenizer } from "../data/tokenizer.js";
import type { ChatMessage, ChatSegment, ChatTemplate } from "../tokenizer/chat_template.js";
import { TaskError, shuffled } from "./task.js";

export const CHAT_ROLES = ["system", "user", "assistant"] as const;

/** One training example as read: a chat, a prompt/completion pair, or a plain document. */
export type GenerativeRecord =
  | { kind: "chat"; where: string; messages: ChatMessage[] }
  | { kind: "completion"; where: string; prompt: string; completion: string }
  | { kind: "text"; where: string; text: string };

export interface GenerativeData {
  source: string;
  format: "chat" | "completion" | "text";
  records: GenerativeRecord[];
}

/** A tokenized example: `learn[i]` = 1 where ids[i] is a token the model is taught to produce. */
export interface TokenizedExample {
  ids: Int32Array;
  learn: Uint8Array;
  where: string;
  /** The prompt (the ids before the first learned token) and the reference completion, for exact match. */
  promptLength: number;
}

function describe(v: unknown): string {
  return JSON.stringify(v)?.slice(0, 60) ?? String(v);
}

function chatRecord(fields: Record<string, unknown>, where: string): GenerativeRecord {
  const messages = fields.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw new TaskError(`${where}: "messages" must be a non-empty array of {role, content}`);
  const out: ChatMessage[] = messages.map((m: unknown, i) => {
    const at = `${where}: messages[${i}]`;
    if (m === null || typeof m !== "object" || Array.isArray(m)) throw new TaskError(`${at} must be an object {role, content}, got ${describe(m)}`);
    const { role, content, weight } = m as { role?: unknown; content?: unknown; weight?: unknown };
    if (typeof role !== "string" || !(CHAT_ROLES as readonly string[]).includes(role)) {
      throw new TaskError(`${at} has role ${describe(role)}; roles are ${CHAT_ROLES.join(", ")}`);
    }
    if (typeof content !== "string") throw new TaskError(`${at} (${role}) needs "content" as a string, got ${describe(content)}`);
    if (weight !== undefined && weight !== 0 && weight !== 1) throw new TaskError(`${at} has weight ${describe(weight)}; weight is 0 or 1`);
    if (weight !== undefined && role !== "assistant") throw new TaskError(`${at}: only assistant messages carry a weight (this one is ${role})`);
    return weight === undefined ? { role, content } : { role, content, weight };
  });
  if (!out.some((m) => m.role === "assistant")) throw new TaskError(`${where}: the chat has no assistant message; each example needs at least one assistant reply to learn`);
  if (!out.some((m) => m.role === "assistant" && m.weight !== 0)) throw new TaskError(`${where}: every assistant message has weight 0; nothing would be learned`);
  return { kind: "chat", where, messages: out };
}

function completionRecord(fields: Record<string, unknown>, where: string): GenerativeRecord {
  const { prompt, completion } = fields;
  if (typeof prompt !== "string") throw new TaskError(`${where}: "prompt" must be a string, got ${describe(prompt)}`);
  if (typeof completion !== "string" || completion === "") throw new TaskError(`${where}: "completion" must be a non-empty string, got ${describe(completion)}`);
  return { kind: "completion", where, prompt, completion };
}

/**
 * Validates JSONL text in a fine-tuning format, every line of one format (chat or
 * prompt/completion, fixed by the first line); errors name `source:line`.
 */
export function parseGenerativeJsonl(text: string, source: string): GenerativeData {
  const records: GenerativeRecord[] = [];
  let format: "chat" | "completion" | null = null;
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === "") return;
    const where = `${source}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new TaskError(`${where}: not valid JSON: ${(e as Error).message}`);
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new TaskError(`${where}: expected a JSON object per line, got ${describe(v)}`);
    const fields = v as Record<string, unknown>;
    const kind = "messages" in fields ? "chat" : "prompt" in fields || "completion" in fields ? "completion" : null;
    if (kind === null) throw new TaskError(`${where}: expected a chat {"messages": [...]} or a {"prompt", "completion"} pair, got the fields ${JSON.stringify(Object.keys(fields))}`);
    format ??= kind;
    if (kind !== format) throw new TaskError(`${where}: a ${kind === "chat" ? "chat" : "prompt/completion"} line in a ${format === "chat" ? "chat" : "prompt/completion"} file; use one format per file`);
    records.push(kind === "chat" ? chatRecord(fields, where) : completionRecord(fields, where));
  });
  if (format === null || records.length === 0) throw new TaskError(`${source}: no examples (the file is empty)`);
  return { source, format, records };
}

/** Whether JSONL text is in a generative format (its first non-blank line has messages, prompt or completion). */
export function isGenerativeJsonl(text: string): boolean {
  const first = text.split(/\r?\n/).find((l) => l.trim() !== "");
  if (first === undefined) return false;
  try {
    const v = JSON.parse(first) as Record<string, unknown>;
    return v !== null && typeof v === "object" && ("messages" in v || "prompt" in v || "completion" in v);
  } catch {
    return false;
  }
}

/** A chat/completion .jsonl file, or plain text (a file, folder or glob) for continued pretraining. */
export function loadGenerativeData(spec: string): GenerativeData {
  if (/\.jsonl$/i.test(spec) && existsSync(spec)) {
    const text = readFileSync(spec, "utf8");
    if (isGenerativeJsonl(text) || !text.split(/\r?\n/).some((l) => /"text"\s*:/.test(l))) return parseGenerativeJsonl(text, spec);
  }
  const { docs } = loadSources([spec]);
  return { source: spec, format: "text", records: docs.filter((d) => d.text.trim() !== "").map((d) => ({ kind: "text", where: d.id, text: d.text })) };
}

/** Text with the end-of-text token written out: the pieces are encoded, the token itself becomes tok.eot. */
export function encodeWithEot(tok: TextTokenizer, text: string, eosToken = "<|endoftext|>"): number[] {
  const out: number[] = [];
  text.split(eosToken).forEach((piece, i) => {
    if (i > 0) out.push(tok.eot);
    if (piece !== "") out.push(...Array.from(tok.encode(piece)));
  });
  return out;
}

/** The ids a chat is prompted with for its next assistant reply (training renders the same prefix). */
export function chatPromptIds(template: ChatTemplate, tok: TextTokenizer, messages: readonly ChatMessage[]): number[] {
  return [tok.eot, ...encodeWithEot(tok, template.render(messages, { addGenerationPrompt: true }), template.eosToken)];
}

/** The ids of a completion prompt (an end-of-text token first, as in training, so an empty prompt works). */
export function completionPromptIds(tok: TextTokenizer, prompt: string): number[] {
  return [tok.eot, ...Array.from(tok.encode(prompt))];
}

function fromSegments(segments: ChatSegment[], tok: TextTokenizer, eos: string): { ids: number[]; learn: number[] } {
  // Every example starts after an end-of-text token, as documents do in pretraining and prompts do at inference.
  const ids: number[] = [tok.eot], learn: number[] = [0];
  for (const s of segments) {
    const t = encodeWithEot(tok, s.text, eos);
    ids.push(...t);
    for (let i = 0; i < t.length; i++) learn.push(s.train ? 1 : 0);
  }
  return { ids, learn };
}

export interface TokenizeOptions {
  /** The base's context: a chat or completion longer than ctx + 1 tokens is refused, a text is cut into windows. */
  ctx: number;
}

/** Tokenizes records with the chat template; errors name the record's file:line. */
export function tokenizeExamples(data: GenerativeData, tok: TextTokenizer, template: ChatTemplate, { ctx }: TokenizeOptions): TokenizedExample[] {
  const out: TokenizedExample[] = [];
  const eos = template.eosToken;
  for (const r of data.records) {
    let seq: { ids: number[]; learn: number[] };
    if (r.kind === "text") {
      // A document is cut into windows of ctx + 1 tokens, each learned whole, followed by end-of-text.
      const ids = [...Array.from(tok.encode(r.text)), tok.eot];
      for (let at = 0; at + 1 < ids.length; at += ctx) {
        const w = ids.slice(at, at + ctx + 1);
        out.push({ ids: Int32Array.from(w), learn: new Uint8Array(w.length).fill(1), where: `${r.where}@${at}`, promptLength: 0 });
      }
      continue;
    }
    seq = r.kind === "chat"
      ? fromSegments(template.segments(r.messages), tok, eos)
      : fromSegments([{ text: r.prompt, train: false }, { text: r.completion + eos, train: true }], tok, eos);
    if (seq.ids.length > ctx + 1) {
      throw new TaskError(`${r.where}: the example is ${seq.ids.length} tokens long, over the base's context of ${ctx} tokens; shorten it or split it`);
    }
    const first = seq.learn.indexOf(1);
    out.push({ ids: Int32Array.from(seq.ids), learn: Uint8Array.from(seq.learn), where: r.where, promptLength: first < 0 ? seq.ids.length : first });
  }
  if (out.length === 0) throw new TaskError(`${data.source}: no examples with tokens to learn`);
  return out;
}

/** A seeded hold-out split (at least one example on each side when there are two or more). */
export function splitGenerative<T>(items: readonly T[], valFraction: number, seed: number): { train: T[]; val: T[] } {
  if (!(valFraction >= 0 && valFraction < 1)) throw new RangeError(`splitGenerative: the validation fraction must be in [0, 1), got ${valFraction}`);
  const order = shuffled(items, seed);
  let nVal = Math.round(items.length * valFraction);
  if (valFraction > 0 && items.length >= 2) nVal = Math.min(items.length - 1, Math.max(1, nVal));
  return { val: order.slice(0, nVal), train: order.slice(nVal) };
}

/** The prompt ids (the chat up to its last assistant turn, with the generation prompt) and the reference reply. */
export function promptAndReference(r: GenerativeRecord, template: ChatTemplate, tok: TextTokenizer): { prompt: number[]; reference: string } | null {
  if (r.kind === "completion") return { prompt: completionPromptIds(tok, r.prompt), reference: r.completion };
  if (r.kind === "text") return null;
  const last = r.messages.map((m) => m.role).lastIndexOf("assistant");
  return { prompt: chatPromptIds(template, tok, r.messages.slice(0, last)), reference: r.messages[last].content };
}
