/**
 * Chat templates: how a list of messages becomes the one text a causal LM reads. A base keeps
 * its template in `tokenizer_config.json`'s `chat_template` (Jinja, as Hugging Face writes it),
 * rendered here by @huggingface/jinja (the implementation transformers.js uses). Training,
 * `plinth generate --chat` and `/v1/chat/completions` all render through this one class, so a
 * model is asked at inference exactly in the form it was taught.
 *
 *     const t = chatTemplateFor("runs/default", { write: true });   // the base's own, or the default (written on first use)
 *     t.render([{ role: "user", content: "hi" }], { addGenerationPrompt: true });
 *     t.segments(messages);   // [{ text, train }]: which spans of the rendered chat are the assistant's
 *
 * The default is ChatML-like with role markers (`<|user|>\n...`) and the base's end-of-text
 * token closing every turn, the token generation already stops at. A pretrained Plinth
 * tokenizer has no role tokens: `roleMarkers()` names the markers a generative fine-tune adds to
 * the tokenizer as tokens of their own (data/tokenizer.ts withAddedTokens), with embedding rows
 * the adapter trains.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { writeTextAtomic } from "./file.js";

export interface ChatMessage {
  role: string;
  content: string;
  /** OpenAI's per-message weight: 0 leaves an assistant message out of the loss (default 1). */
  weight?: 0 | 1;
}

export const EOS_TOKEN = "<|endoftext|>";

/** Plain-text role markers; every turn ends with the end-of-text token (what generation stops at). */
export const DEFAULT_CHAT_TEMPLATE =
  "{%- for message in messages -%}" +
  "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token -}}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}";

export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChatTemplateError";
  }
}

/** A span of a rendered chat: `train` marks assistant text that a fine-tune learns. */
export interface ChatSegment {
  text: string;
  train: boolean;
}

export class ChatTemplate {
  private readonly template: Template;

  /**
   * `specialTokens`: tokenizer_config.json's additional_special_tokens, when it lists them (then
   * they are the role markers, whatever the template writes).
   */
  constructor(readonly source: string, readonly eosToken = EOS_TOKEN, readonly bosToken = "", readonly specialTokens: readonly string[] | null = null) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`chat template: cannot parse it: ${(e as Error).message}`);
    }
  }

  render(messages: readonly ChatMessage[], { addGenerationPrompt = false } = {}): string {
    try {
      return this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: addGenerationPrompt, eos_token: this.eosToken, bos_token: this.bosToken,
      });
    } catch (e) {
      throw new ChatTemplateError(`chat template: rendering failed: ${(e as Error).message}`);
    }
  }

  /**
   * The markers a rendering puts around turns that become tokens of their own: the config's
   * additional_special_tokens if it lists any, else every `<|name|>` a chat of each role (and the
   * generation prompt) renders, in order of first appearance, without the end- and
   * begin-of-text tokens (which the tokenizer has). A template without such markers has none.
   */
  roleMarkers(): string[] {
    const found = this.specialTokens ?? [...this.render([{ role: "system", content: "s" }, { role: "user", content: "u" }, { role: "assistant", content: "a" }, { role: "user", content: "u" }], { addGenerationPrompt: true })
      .matchAll(/<\|[A-Za-z0-9_]+\|>/g)].map((m) => m[0]);
    return [...new Set(found)].filter((t) => t !== this.eosToken && t !== this.bosToken && t !== "");
  }

  /**
   * The rendered chat cut into spans, assistant replies marked. Each assistant message's span is
   * what rendering the chat through it adds to rendering the chat before it with the generation
   * prompt: the same prefix an inference request renders, so training and serving tokenize
   * the prompt identically. A template whose renderings are not prefixes of each other is refused.
   */
  segments(messages: readonly ChatMessage[]): ChatSegment[] {
    const out: ChatSegment[] = [];
    let done = "";
    messages.forEach((m, i) => {
      if (m.role !== "assistant") return;
      const prompt = this.render(messages.slice(0, i), { addGenerationPrompt: true });
      const full = this.render(messages.slice(0, i + 1));
      if (!prompt.startsWith(done) || !full.startsWith(prompt)) {
        throw new ChatTemplateError(`chat template: the rendering of message ${i} does not extend the rendering before it; the template cannot mark assistant turns`);
      }
      if (prompt.length > done.length) out.push({ text: prompt.slice(done.length), train: false });
      out.push({ text: full.slice(prompt.length), train: m.weight !== 0 });
      done = full;
    });
    const all = this.render(messages);
    if (!all.startsWith(done)) throw new ChatTemplateError("chat template: the whole chat does not extend its rendering up to the last assistant turn");
    if (all.length > done.length) out.push({ text: all.slice(done.length), train: false });
    return out;
  }
}

function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
}

/**
 * The chat template of a model folder: `tokenizer_config.json`'s `chat_template` (a string, or
 * Hugging Face's list of named templates, of which "default" or the first is taken), else the
 * default, which `write` stores in the folder's tokenizer_config.json (keeping its other fields).
 */
export function chatTemplateFor(dir: string, { write = false } = {}): ChatTemplate {
  const path = join(dir, "tokenizer_config.json");
  let config: Record<string, unknown> = {};
  if (existsSync(path)) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) config = parsed as Record<string, unknown>;
    } catch (e) {
      throw new ChatTemplateError(`chat template: ${path} is not valid JSON (${(e as Error).message})`);
    }
  }
  const eos = tokenText(config.eos_token) ?? EOS_TOKEN;
  const bos = tokenText(config.bos_token) ?? "";
  let source: unknown = config.chat_template;
  if (Array.isArray(source)) {
    const named = source as { name?: unknown; template?: unknown }[];
    source = (named.find((t) => t.name === "default") ?? named[0])?.template;
  }
  const extra = Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens.map(tokenText).filter((t): t is string => t !== null) : null;
  if (typeof source === "string" && source.trim() !== "") return new ChatTemplate(source, eos, bos, extra);
  if (write) {
    try {
      writeTextAtomic(path, JSON.stringify({ ...config, eos_token: config.eos_token ?? EOS_TOKEN, chat_template: DEFAULT_CHAT_TEMPLATE }, null, 2) + "\n");
    } catch {
      // A read-only base still renders with the default; the adapter records the template it used.
    }
  }
  return new ChatTemplate(DEFAULT_CHAT_TEMPLATE, eos, bos, extra);
}
