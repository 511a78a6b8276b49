/**
 * What a forward pass may carry besides its input, for inference: the KV caches of packed
 * sequences being decoded, and LoRA adapters applied to groups of rows (several tenants'
 * adapters in one batch over one shared base). Training passes no context; every model has
 * one forward, and decoding, multi-adapter serving and adapted classification are that
 * forward with a context.
 *
 *     const cache = new KVCache(cfg.n_layer, cfg.n_positions, cfg.n_embd);
 *     const ctx: ForwardContext = { kv: [{ cache, count: prompt.length }] };
 *     // model.hidden(ids [1, N], ctx): rows see their own cache; ctx needs noGrad
 */
import { Tensor, empty } from "../tensor/tensor.js";
import { cachedAttention, lowRankUpdate, type CacheSegment } from "../tensor/ops/decode.js";
import type { Linear } from "./layers.js";

/** Per-layer key/value cache of one sequence: [1, capacity, C] each. */
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

/** A low-rank update of one Linear: y += scaling · (x @ A) @ B, A [in, r], B [r, out]. */
export interface LowRankFactor {
  A: Tensor;
  B: Tensor;
}

/** An adapter bound to one model's layers (see bindAdapter). */
export interface RowAdapter {
  readonly id: string;
  readonly scaling: number;
  factor(layer: Linear): LowRankFactor | undefined;
  /** Rows [k, C] of tokens the adapter adds after the base's vocabulary (embedded and tied to the head), if any. */
  readonly added?: Tensor;
}

/** Rows [start, start + count) of a layer's flattened input use `adapter`. */
export interface AdapterGroup {
  start: number;
  count: number;
  adapter: RowAdapter;
}

/** One decoding sequence: its next `count` packed rows run at positions [cache.length, cache.length + count). */
export interface KVSegment {
  cache: KVCache;
  count: number;
}

export interface ForwardContext {
  /** Decoding: the packed rows, in order, by sequence. Positions come from each cache's length. */
  kv?: readonly KVSegment[];
  /** LoRA deltas by row group; a group with count -1 covers every row. */
  adapters?: readonly AdapterGroup[];
  /** Segment (token type) ids [B, T] of an encoder with segment embeddings (BERT); default 0. */
  tokenTypeIds?: Tensor;
}

/** Adds the LoRA deltas of `ctx.adapters` to a Linear's output y (rows of x and y flattened), in place. */
export function applyAdapters(layer: Linear, x: Tensor, y: Tensor, ctx: ForwardContext | undefined): Tensor {
  if (ctx?.adapters === undefined) return y;
  const rows = x.size / layer.inFeatures;
  for (const g of ctx.adapters) {
    const f = g.adapter.factor(layer);
    if (f !== undefined) lowRankUpdate(y, x, f.A, f.B, g.adapter.scaling, g.start, g.count < 0 ? rows : g.count);
  }
  return y;
}

/** The cache segments of the packed rows of `kv` at `layer`. */
export function cacheSegments(kv: readonly KVSegment[], layer: number): CacheSegment[] {
  let start = 0;
  return kv.map((s) => {
    if (layer < 0 || layer >= s.cache.layers) throw new RangeError(`attendCached: layer ${layer} outside the cache's ${s.cache.layers} layers`);
    const seg = { start, count: s.count, past: s.cache.length, keys: s.cache.k[layer], values: s.cache.v[layer] };
    start += s.count;
    return seg;
  });
}

/** Causal attention of the packed rows of `ctx.kv` over their caches at `layer`. */
export function attendCached(qkv: Tensor, nHead: number, layer: number, kv: readonly KVSegment[]): Tensor {
  return cachedAttention(qkv, nHead, cacheSegments(kv, layer));
}

/** Positions of the packed rows of `kv`: each segment continues its cache. */
export function kvPositions(kv: readonly KVSegment[]): number[] {
  const out: number[] = [];
  for (const s of kv) for (let j = 0; j < s.count; j++) out.push(s.cache.length + j);
  return out;
}

/** Each cache grows by its segment's rows (call once, after the last layer). */
export function advanceCaches(kv: readonly KVSegment[]): void {
  for (const s of kv) s.cache.length += s.count;
}
