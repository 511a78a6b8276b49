/**
 * LoRA factors as a server or a classifier uses them at inference: read from an adapter's
 * tensors (`loraWeights`), then bound to one base model's Linear layers (`bindLoRA`), which
 * refuses factors that do not fit the base before they can join a batch shared with other
 * adapters. A bound adapter runs through the model's one forward with a context (GPT.decode,
 * SequenceClassifier's adapter option): the shared base is never changed.
 *
 * Legend: r rank.
 */
import { namedLinears, type Linear } from "../nn/layers.js";
import type { LowRankFactor, RowAdapter } from "../nn/context.js";
import type { Module } from "../nn/module.js";
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
  /** Rows of tokens the adapter adds to the base's vocabulary (`transformer.wte_added.weight`, [k, C]), if any. */
  added?: { rows: Float32Array; count: number; width: number };
}

/** The tensor name of an adapter's added token rows (GPT's transformer.wte_added). */
export const ADDED_ROWS = "transformer.wte_added.weight";

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
  const rows = tensors[ADDED_ROWS];
  if (rows !== undefined && rows.shape.length !== 2) throw new Error(`adapter ${id}: ${ADDED_ROWS} has shape [${rows.shape}], expected [tokens, width]`);
  return { id, scaling: alpha / rank, layers, ...(rows === undefined ? {} : { added: { rows: toFloat32(rows), count: rows.shape[0], width: rows.shape[1] } }) };
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
  let added;
  if (weights.added !== undefined) {
    const wte = (model as { transformer?: { wte?: { weight?: { shape: readonly number[] } } } }).transformer?.wte?.weight;
    if (wte === undefined) throw new AdapterMismatchError(`adapter ${weights.id} adds tokens to the vocabulary, which this base has no token embeddings for`);
    if (wte.shape[1] !== weights.added.width) throw new AdapterMismatchError(`adapter ${weights.id} adds token rows of width ${weights.added.width}, the base's embeddings are ${wte.shape[1]} wide`);
    added = tensor(weights.added.rows, [weights.added.count, weights.added.width]).retain();
  }
  const adapter: RowAdapter = { id: weights.id, scaling: weights.scaling, factor: (layer) => factors.get(layer), ...(added === undefined ? {} : { added }) };
  if (perModel === undefined) bound.set(weights, (perModel = new WeakMap()));
  perModel.set(model, adapter);
  return adapter;
}
