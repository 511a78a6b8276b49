/**
 * Autoregressive generation with a KV cache: the prompt is run once (prefill), then
 * each new token costs one position through the network. Sampling: greedy
 * (temperature 0), temperature, top-k, top-p; stops on stop tokens or maxNewTokens.
 * When the context fills up, the window slides: the cache is rebuilt from the most
 * recent half of the context.
 */
import { backend } from "../../native/index.js";
import { noGrad } from "../../tensor/autograd.js";
import { Rng } from "../../tensor/rng.js";
import { Tensor, empty, ids as idsTensor } from "../../tensor/tensor.js";
import { add, gelu } from "../../tensor/ops/elementwise.js";
import { matmul } from "../../tensor/ops/matmul.js";
import { embedding } from "../../tensor/ops/nn.js";
import { reshape, slice, transpose } from "../../tensor/ops/views.js";
import type { GPT } from "./model.js";

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

/** Per-layer key/value cache for one sequence: [1, capacity, C] each. */
export class KVCache {
  readonly k: Tensor[];
  readonly v: Tensor[];
  length = 0;
  constructor(readonly layers: number, readonly capacity: number, readonly channels: number) {
    this.k = Array.from({ length: layers }, () => empty([1, capacity, channels]).retain());
    this.v = Array.from({ length: layers }, () => empty([1, capacity, channels]).retain());
  }
  release(): void {
    for (const t of [...this.k, ...this.v]) t.release();
  }
}

/**
 * Runs `tokens` at positions [cache.length, cache.length + tokens.length) and returns the
 * logits of the last one ([V], a plain array), appending their keys/values to the cache.
 */
export function forwardCached(model: GPT, tokens: number[], cache: KVCache): Float32Array {
  const cfg = model.config;
  const C = cfg.n_embd, NH = cfg.n_head, HS = C / NH;
  const t = tokens.length, pos = cache.length;
  if (pos + t > cache.capacity) throw new RangeError(`forwardCached: ${pos + t} positions exceed the cache capacity ${cache.capacity}`);
  return noGrad(() => {
    const tr = model.transformer;
    const ids = idsTensor(tokens, [1, t]);
    const positions = idsTensor(Array.from({ length: t }, (_, i) => pos + i), [1, t]);
    let x = add(embedding(ids, tr.wte.weight), embedding(positions, tr.wpe.weight));
    tr.h.forEach((block, l) => {
      const h = block.ln_1.forward(x);
      const qkv = block.attn.c_attn.forward(h);
      const kc = cache.k[l], vc = cache.v[l];
      const qd = qkv.data;
      for (let i = 0; i < t; i++) {
        kc.data.set(qd.subarray(i * 3 * C + C, i * 3 * C + 2 * C), (pos + i) * C);
        vc.data.set(qd.subarray(i * 3 * C + 2 * C, i * 3 * C + 3 * C), (pos + i) * C);
      }
      const att = empty([1, t, C]);
      const cap = cache.capacity * C;
      backend.attentionForward([1, t, pos + t, NH, HS], 1 / Math.sqrt(HS), true, qd, t * 3 * C, 3 * C,
        kc.data, cap, C, vc.data, cap, C, att.data, t * C, C, null);
      x = add(x, block.attn.c_proj.forward(att));
      const m = block.mlp;
      x = add(x, m.c_proj.forward(gelu(m.c_fc.forward(block.ln_2.forward(x)))));
    });
    const hN = tr.ln_f.forward(x);
    const last = reshape(slice(hN, 1, t - 1, t), [1, C]);
    const logits = matmul(last, transpose(tr.wte.weight));
    cache.length = pos + t;
    return logits.toArray() as Float32Array;
  });
}

/** Generates up to maxNewTokens after `prompt` (token ids). */
export function generate(model: GPT, prompt: number[], opts: GenerateOptions): GenerateResult {
  const cfg = model.config;
  if (prompt.length === 0) throw new RangeError("generate: the prompt is empty; give at least one token (e.g. the BOS/EOS id)");
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocab_size) {
      throw new RangeError(`generate: prompt token ${id} is out of range [0, ${cfg.vocab_size})`);
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
