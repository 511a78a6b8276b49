/**
 * Autoregressive generation with a KV cache: the prompt is run once (prefill), then
 * each new token costs one position through the network. Sampling: greedy
 * (temperature 0), temperature, top-k, top-p; stops on stop tokens or maxNewTokens.
 * When the context fills up, the window slides: the cache is rebuilt from the most
 * recent half of the context.
 */
import { KVCache } from "../../nn/context.js";
import { Rng } from "../../tensor/rng.js";
import type { GPT } from "./model.js";

export { KVCache };

export interface SamplingOptions {
  /** 0 (or omitted with topK/topP unset) means greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  stopTokens?: number[];
  seed?: number;
  rng?: Rng;
  /** Called with each new token as it is produced (streaming). Return false to stop. */
  onToken?: (token: number) => boolean | void;
}

export interface GenerateResult {
  tokens: number[];
  finishReason: "stop" | "length" | "callback";
}

/** Picks the next token from one row of logits. */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  const V = logits.length;
  const temperature = opts.temperature ?? 0;
  if (!(temperature >= 0)) throw new RangeError(`sample: temperature must be >= 0, got ${temperature}`);
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a]);
  const topK = opts.topK ?? 0;
  if (topK > 0) order = order.slice(0, Math.min(topK, V));
  const maxLogit = logits[order[0]];
  let probs = order.map((i) => Math.exp((logits[i] - maxLogit) / temperature));
  let total = probs.reduce((s, p) => s + p, 0);
  const topP = opts.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`sample: topP must be in (0, 1], got ${topP}`);
  if (topP < 1) {
    let cum = 0, keep = 0;
    while (keep < probs.length && cum < topP * total) cum += probs[keep++];
    order = order.slice(0, Math.max(1, keep));
    probs = probs.slice(0, Math.max(1, keep));
    total = probs.reduce((s, p) => s + p, 0);
  }
  let r = rng.uniform() * total;
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i];
    if (r <= 0) return order[i];
  }
  return order[order.length - 1];
}

/**
 * Runs `tokens` at positions [cache.length, cache.length + tokens.length) and returns the
 * logits of the last one ([V], a plain array), appending their keys/values to the cache.
 */
export function forwardCached(model: GPT, tokens: number[], cache: KVCache): Float32Array {
  return model.decode([{ tokens, cache, adapter: null }])[0];
}

/** Generates up to maxNewTokens after `prompt` (token ids). */
export function generate(model: GPT, prompt: number[], opts: GenerateOptions): GenerateResult {
  const cfg = model.config;
  if (prompt.length === 0) throw new RangeError("generate: the prompt is empty; give at least one token (e.g. the BOS/EOS id)");
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= model.vocabSize) {
      throw new RangeError(`generate: prompt token ${id} is out of range [0, ${model.vocabSize})`);
    }
  }
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw new RangeError(`generate: maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  }
  const rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const stop = new Set(opts.stopTokens ?? []);
  const window = cfg.n_positions;
  let context = prompt.slice(-window);
  const cache = new KVCache(cfg.n_layer, window, cfg.n_embd);
  const out: number[] = [];
  let finishReason: GenerateResult["finishReason"] = "length";
  try {
    let logits = forwardCached(model, context, cache);
    for (let i = 0; i < opts.maxNewTokens; i++) {
      const next = sampleToken(logits, opts, rng);
      if (stop.has(next)) {
        finishReason = "stop";
        break;
      }
      out.push(next);
      context.push(next);
      if (opts.onToken && opts.onToken(next) === false) {
        finishReason = "callback";
        break;
      }
      if (i === opts.maxNewTokens - 1) break;
      if (cache.length >= window) {
        context = context.slice(-Math.max(1, Math.floor(window / 2)));
        cache.length = 0;
        logits = forwardCached(model, context, cache);
      } else {
        logits = forwardCached(model, [next], cache);
      }
    }
  } finally {
    cache.release();
  }
  return { tokens: out, finishReason };
}
