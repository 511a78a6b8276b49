/**
 * One base forward for many sequences at once, each with its own KV cache, position and
 * LoRA adapter (multi-LoRA, as LoRAX and vLLM's multi-LoRA serving do).
 *
 * The rows of every sequence in a step (a whole prompt for a newly admitted sequence, one
 * token for a decoding one) are packed into one [N, C] matrix, grouped by adapter. Every
 * Linear runs once over all N rows on the shared base weights; then, per adapter group
 * (contiguous rows g), the low-rank delta is added in place:
 *
 *     y[g] += scale_i · (x[g] @ A_i) @ B_i        A_i [in, r], B_i [r, out]
 *
 * Attention is the only per-sequence part: each sequence attends over its own cache.
 *
 * Legend: N packed rows, C n_embd, NH heads, HS head size, V vocab, R sequences.
 */
import { backend } from "../native/index.js";
import { noGrad } from "../tensor/autograd.js";
import { Tensor, empty, ids as idsTensor } from "../tensor/tensor.js";
import { add, gelu } from "../tensor/ops/elementwise.js";
import { linear, matmul } from "../tensor/ops/matmul.js";
import { embedding } from "../tensor/ops/nn.js";
import { transpose } from "../tensor/ops/views.js";
import type { Linear } from "../nn/layers.js";
import type { GPT } from "../models/gpt/model.js";
import type { KVCache } from "../models/gpt/generate.js";
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

interface Group { start: number; count: number; adapter: LoRAWeights }

function linearMulti(x: Tensor, layer: Linear, path: string, groups: Group[]): Tensor {
  const y = linear(x, layer.weight, layer.bias, layer.layout);
  for (const g of groups) {
    const f = g.adapter.layers.get(path);
    if (f === undefined) continue;
    if (f.inFeatures !== layer.inFeatures || f.outFeatures !== layer.outFeatures) {
      throw new Error(`adapter ${g.adapter.id}: ${path} is [${f.inFeatures} -> ${f.outFeatures}], the base layer is [${layer.inFeatures} -> ${layer.outFeatures}]`);
    }
    const h = new Float32Array(g.count * f.rank);
    backend.gemm(false, false, g.count, f.rank, f.inFeatures, 1, g.adapter.scaling, 0,
      x.data.subarray(g.start * f.inFeatures), f.inFeatures, 0, f.A, f.rank, 0, h, f.rank, 0);
    backend.gemm(false, false, g.count, f.outFeatures, f.rank, 1, 1, 1,
      h, f.rank, 0, f.B, f.outFeatures, 0, y.data.subarray(g.start * f.outFeatures), f.outFeatures, 0);
  }
  return y;
}

/**
 * Runs every row's tokens at positions [cache.length, cache.length + tokens.length) and
 * returns each row's last-position logits ([V] each, in the order given), appending keys and
 * values to each row's cache.
 */
export function forwardPacked(model: GPT, rows: PackedRow[]): Float32Array[] {
  if (rows.length === 0) return [];
  const cfg = model.config;
  const C = cfg.n_embd, NH = cfg.n_head, HS = C / NH, V = cfg.vocab_size;
  for (const r of rows) {
    if (r.tokens.length === 0) throw new RangeError("forwardPacked: a row with no tokens");
    if (r.cache.length + r.tokens.length > r.cache.capacity) {
      throw new RangeError(`forwardPacked: ${r.cache.length + r.tokens.length} positions exceed the cache capacity ${r.cache.capacity}`);
    }
  }
  // Group rows by adapter so each adapter's rows are contiguous.
  const order = rows.map((_, i) => i);
  const key = (i: number) => rows[i].adapter?.id ?? "";
  order.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : a - b));
  const starts: number[] = [];
  const tokenIds: number[] = [], positions: number[] = [];
  for (const i of order) {
    starts.push(tokenIds.length);
    const r = rows[i];
    r.tokens.forEach((t, j) => {
      tokenIds.push(t);
      positions.push(r.cache.length + j);
    });
  }
  const N = tokenIds.length;
  const groups: Group[] = [];
  order.forEach((i, k) => {
    const a = rows[i].adapter;
    if (a === null) return;
    const last = groups[groups.length - 1];
    if (last !== undefined && last.adapter === a) last.count += rows[i].tokens.length;
    else groups.push({ start: starts[k], count: rows[i].tokens.length, adapter: a });
  });

  return noGrad(() => {
    const tr = model.transformer;
    let x = add(embedding(idsTensor(tokenIds, [N]), tr.wte.weight), embedding(idsTensor(positions, [N]), tr.wpe.weight));
    tr.h.forEach((block, l) => {
      const prefix = `transformer.h.${l}`;
      const qkv = linearMulti(block.ln_1.forward(x), block.attn.c_attn, `${prefix}.attn.c_attn`, groups);
      const qd = qkv.data;
      const att = empty([N, C]);
      order.forEach((i, k) => {
        const { cache, tokens } = rows[i];
        const t = tokens.length, pos = cache.length, s = starts[k];
        const kc = cache.k[l].data, vc = cache.v[l].data;
        for (let j = 0; j < t; j++) {
          const row = (s + j) * 3 * C;
          kc.set(qd.subarray(row + C, row + 2 * C), (pos + j) * C);
          vc.set(qd.subarray(row + 2 * C, row + 3 * C), (pos + j) * C);
        }
        const cap = cache.capacity * C;
        backend.attentionForward([1, t, pos + t, NH, HS], 1 / Math.sqrt(HS), true, qd.subarray(s * 3 * C), t * 3 * C, 3 * C,
          kc, cap, C, vc, cap, C, att.data.subarray(s * C), t * C, C, null);
      });
      x = add(x, linearMulti(att, block.attn.c_proj, `${prefix}.attn.c_proj`, groups));
      const m = block.mlp;
      const hidden = gelu(linearMulti(block.ln_2.forward(x), m.c_fc, `${prefix}.mlp.c_fc`, groups));
      x = add(x, linearMulti(hidden, m.c_proj, `${prefix}.mlp.c_proj`, groups));
    });
    const hN = tr.ln_f.forward(x);
    const lastRows = order.map((i, k) => starts[k] + rows[i].tokens.length - 1);
    const logits = matmul(embedding(idsTensor(lastRows, [lastRows.length]), hN), transpose(tr.wte.weight)).toArray() as Float32Array;
    const out = new Array<Float32Array>(rows.length);
    order.forEach((i, k) => {
      out[i] = logits.slice(k * V, (k + 1) * V);
      rows[i].cache.length += rows[i].tokens.length;
    });
    return out;
  });
}
