/**
 * Perplexity of a causal LM on held-out texts: the documents joined by end-of-text tokens and
 * read in consecutive windows of the model's context; also bits per byte, which compares models
 * with different tokenizers.
 *
 *     perplexity(gpt, tok, task.test.map((e) => exampleText(e)));   // { loss, perplexity, bitsPerByte, tokens }
 */
import type { TextTokenizer } from "../data/tokenizer.js";
import { can, contextLength, typesWith } from "../models/registry.js";
import { evaluateLM } from "../train/language.js";
import type { Encoder } from "../adapt/probe.js";

export interface Perplexity {
  /** Mean cross-entropy in nats per token. */
  loss: number;
  perplexity: number;
  bitsPerByte: number;
  tokens: number;
}

export function perplexity(model: Encoder, tok: TextTokenizer, texts: readonly string[], { maxTokens = 100_000, batch = 8 } = {}): Perplexity {
  if (!can(model, "generate")) throw new TypeError(`perplexity: needs a causal LM (${typesWith("generate").join(", ")}) base; a masked LM has no left-to-right likelihood`);
  if (texts.length === 0) throw new RangeError("perplexity: no texts (the dataset is empty)");
  const ids: number[] = [];
  let bytes = 0;
  for (const t of texts) {
    if (ids.length >= maxTokens) break;
    ids.push(tok.eot, ...Array.from(tok.encode(t)));
    bytes += Buffer.byteLength(t, "utf8");
  }
  const tokens = Int32Array.from(ids.slice(0, maxTokens));
  const ctx = Math.min(contextLength(model), Math.max(1, tokens.length - 1));
  const loss = evaluateLM(model, tokens, ctx, batch, Math.ceil(tokens.length / (ctx * batch)) + 1);
  const bytesPerToken = bytes / Math.max(1, ids.length - texts.length);
  return { loss, perplexity: Math.exp(loss), bitsPerByte: loss / Math.LN2 / bytesPerToken, tokens: tokens.length };
}
