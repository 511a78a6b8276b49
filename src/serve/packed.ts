/**
 * Multi-LoRA serving (as LoRAX and vLLM's multi-LoRA serving do): one base forward for many
 * sequences at once, each with its own KV cache, position and LoRA adapter. The forward itself
 * is the model's own (`GPT.decode`, the same forward training runs, with a decoding context):
 * every Linear runs once over all packed rows on the shared base weights, then each adapter
 * group's low-rank delta is added to its rows, y[g] += scale_i · (x[g] @ A_i) @ B_i.
 *
 * Adapters' factors are read and bound to the base by ../adapt/lora_factors.ts.
 *
 * Legend: C n_embd, V vocab, r rank.
 */
import type { KVCache } from "../nn/context.js";
import type { GPT } from "../models/gpt/model.js";
import { bindLoRA, type LoRAWeights } from "../adapt/lora_factors.js";

export { AdapterMismatchError, bindLoRA, loraWeights, type LoRAFactor, type LoRAWeights } from "../adapt/lora_factors.js";

export interface PackedRow {
  /** Tokens to run now: the prompt (prefill) or the last sampled token (decode). */
  tokens: number[];
  cache: KVCache;
  adapter: LoRAWeights | null;
}

/**
 * Runs every row's tokens at positions [cache.length, cache.length + tokens.length) and
 * returns each row's last-position logits ([V] each, in the order given), appending keys and
 * values to each row's cache.
 */
export function forwardPacked(model: GPT, rows: PackedRow[]): Float32Array[] {
  return model.decode(rows.map((r) => ({ tokens: r.tokens, cache: r.cache, adapter: r.adapter === null ? null : bindLoRA(model, r.adapter) })));
}
