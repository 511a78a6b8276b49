/**
 * Multi-LoRA serving (as LoRAX and vLLM's multi-LoRA serving do): one base forward for many
 * sequences at once, each with its own KV cache, position and LoRA adapter. The forward itself
 * is the model's own (`GPT.decode`, the same forward training runs, with a decoding context):
 * every Linear runs once over all packed rows on the shared base weights, then each adapter
 * group's low-rank delta is added to its rows, y[g] += scale_i · (x[g] @ A_i) @ B_i.
 *
 * This file turns an adapter's tensors into factors (`loraWeights`) and binds them to a base
 * model's layers (`bindLoRA`, which refuses factors that do not fit the base before they can
 * join a shared batch).
 *
 * Legend: C n_embd, V vocab, r rank.
 */
import { namedLinears, type Linear } from "../nn/layers.js";
import type { KVCache, LowRankFactor, RowAdapter } from "../nn/context.js";
import type { Module } from "../nn/module.js";
import type { GPT } from "../models/gpt/model.js";
import { tensor } from "../tensor/tensor.js";
import { toFloat32, type RawTensor } from "../io/safetensors.js";

export interface LoRAFactor {
  A: Float32Array;
  B: Float32Array;
  inFeatures: number;
  outFeatures: number;
  rank: number;
}

/** A LoRA adapter's factors by layer path (`transformer.h.0.attn.c_attn`), with its scale alpha/r. */
export interface LoRAWeights {
  id: string;
  scaling: number;
  layers: Map<string, LoRAFactor>;
}

/** Reads `${path}.lora_A` / `${path}.lora_B` tensors (the names applyLoRA's handle writes). */
export function loraWeights(id: string, tensors: Record<string, RawTensor>, config: Record<string, unknown>): LoRAWeights {
  const rank = Number(config.rank), alpha = Number(config.alpha ?? config.rank);
  if (!(Number.isInteger(rank) && rank > 0)) throw new Error(`adapter ${id}: config.rank must be a positive integer, got ${String(config.rank)}`);
  if (!(alpha > 0)) throw new Error(`adapter ${id}: config.alpha must be > 0, got ${String(config.alpha)}`);
  const layers = new Map<string, LoRAFactor>();
  for (const name of Object.keys(tensors)) {
    if (!name.endsWith(".lora_A")) continue;
    const path = name.slice(0, -".lora_A".length);
    const a = tensors[name], b = tensors[`${path}.lora_B`];
    if (b === undefined) throw new Error(`adapter ${id}: ${name} has no matching ${path}.lora_B`);
    if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== rank || b.shape[0] !== rank) {
      throw new Error(`adapter ${id}: ${path} factors are A[${a.shape}] and B[${b.shape}], expected A[in, ${rank}] and B[${rank}, out]`);
    }
    layers.set(path, { A: toFloat32(a), B: toFloat32(b), inFeatures: a.shape[0], outFeatures: b.shape[1], rank });
  }
  if (layers.size === 0) throw new Error(`adapter ${id}: no lora_A/lora_B tensors`);
  return { id, scaling: alpha / rank, layers };
}

export interface PackedRow {
  /** Tokens to run now: the prompt (prefill) or the last sampled token (decode). */
  tokens: number[];
  cache: KVCache;
  adapter: LoRAWeights | null;
}

export class AdapterMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdapterMismatchError";
  }
}

const bound = new WeakMap<LoRAWeights, WeakMap<Module, RowAdapter>>();

/** The adapter's factors on `model`'s Linear layers (every path must exist with the factor's shape); cached per model. */
export function bindLoRA(model: Module, weights: LoRAWeights): RowAdapter {
  let perModel = bound.get(weights);
  const hit = perModel?.get(model);
  if (hit !== undefined) return hit;
  const linears = namedLinears(model);
  const factors = new Map<Linear, LowRankFactor>();
  for (const [path, f] of weights.layers) {
    const lin = linears.get(path);
    if (lin === undefined) throw new AdapterMismatchError(`adapter ${weights.id} adapts ${path}, a layer the base does not have (its Linear layers are ${[...linears.keys()].slice(0, 4).join(", ")}, ...)`);
    if (lin.inFeatures !== f.inFeatures || lin.outFeatures !== f.outFeatures) {
      throw new AdapterMismatchError(`adapter ${weights.id} has ${path} as [${f.inFeatures} -> ${f.outFeatures}], the base layer is [${lin.inFeatures} -> ${lin.outFeatures}]`);
    }
    factors.set(lin, { A: tensor(f.A, [f.inFeatures, f.rank]).retain(), B: tensor(f.B, [f.rank, f.outFeatures]).retain() });
  }
  const adapter: RowAdapter = { id: weights.id, scaling: weights.scaling, factor: (layer) => factors.get(layer) };
  if (perModel === undefined) bound.set(weights, (perModel = new WeakMap()));
  perModel.set(model, adapter);
  return adapter;
}

/**
 * Runs every row's tokens at positions [cache.length, cache.length + tokens.length) and
 * returns each row's last-position logits ([V] each, in the order given), appending keys and
 * values to each row's cache.
 */
export function forwardPacked(model: GPT, rows: PackedRow[]): Float32Array[] {
  return model.decode(rows.map((r) => ({ tokens: r.tokens, cache: r.cache, adapter: r.adapter === null ? null : bindLoRA(model, r.adapter) })));
}
