/**
 * Layers of a GPT-2 style transformer, with Hugging Face parameter names.
 * Linear stores its weight [in, out] like GPT-2's Conv1D by default, or [out, in]
 * like torch.nn.Linear (BERT, CLIP) with layout "out_in".
 */
import { Rng, defaultRng } from "../tensor/rng.js";
import { Tensor } from "../tensor/tensor.js";
import { add, dropout, gelu } from "../tensor/ops/elementwise.js";
import { linear, type WeightLayout } from "../tensor/ops/matmul.js";
import { PackedWeight, packedLinear } from "../tensor/ops/packed.js";
import { isGradEnabled, needsGrad } from "../tensor/autograd.js";
import { causalSelfAttention, embedding, layerNorm } from "../tensor/ops/nn.js";
import { Module, parameter } from "./module.js";
import { type ForwardContext, applyAdapters, attendCached, cacheSegments } from "./context.js";
import { type DecodeBlockWeights, decodeBlock } from "../tensor/ops/decode.js";
import { cpu } from "../tensor/device.js";

let fusedDecode = true;
/**
 * Whether a decoding step runs each Block as one native call (decodeBlock, the default) or op by
 * op; returns the previous setting (benchmarks and tests compare the two).
 */
export function setFusedDecode(on: boolean): boolean {
  const prev = fusedDecode;
  fusedDecode = on;
  return prev;
}

const normal = (std: number, rng: Rng) => (t: Tensor) => {
  const d = t.data;
  for (let i = 0; i < t.size; i++) d[i] = rng.normal() * std;
};
const constant = (v: number) => (t: Tensor) => t.data.fill(v, 0, t.size);

export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    { bias = true, layout = "in_out" as WeightLayout, std = 0.02, rng = defaultRng } = {},
  ) {
    super();
    this.weight = parameter(layout === "in_out" ? [inFeatures, outFeatures] : [outFeatures, inFeatures], normal(std, rng));
    this.bias = bias ? parameter([outFeatures], constant(0)) : null;
    this.layout = layout;
  }
  readonly layout: WeightLayout;
  /**
   * The weight packed for inference (bf16 or int8; models/inference_weights.ts sets it). Used
   * whenever no gradient is needed; training (or any product that needs a gradient) reads the
   * float32 weight. Packed once: reset it if the weight changes.
   */
  packed: PackedWeight | null = null;
  /** With a context, adds the LoRA deltas of the adapter groups that adapt this layer. */
  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    const y = this.packed !== null && !needsGrad(x, this.weight, this.bias)
      ? packedLinear(x, this.packed, this.bias)
      : linear(x, this.weight, this.bias, this.layout);
    return applyAdapters(this, x, y, ctx);
  }
}

/** Every Linear in a module tree by its dotted path (`transformer.h.0.attn.c_attn`); does not descend into Linears. */
export function namedLinears(root: Module): Map<string, Linear> {
  const out = new Map<string, Linear>();
  const seen = new Set<unknown>();
  const visit = (value: unknown, path: string): void => {
    if (seen.has(value)) return;
    if (value instanceof Linear) {
      out.set(path, value);
    } else if (value instanceof Module) {
      seen.add(value);
      for (const [k, child] of Object.entries(value)) if (k !== "training") visit(child, path === "" ? k : `${path}.${k}`);
    } else if (Array.isArray(value)) {
      seen.add(value);
      value.forEach((child, i) => visit(child, `${path}.${i}`));
    }
  };
  visit(root, "");
  return out;
}

export class Embedding extends Module {
  weight: Tensor;
  constructor(readonly num: number, readonly dim: number, { std = 0.02, rng = defaultRng } = {}) {
    super();
    this.weight = parameter([num, dim], normal(std, rng));
  }
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}

export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = parameter([dim], constant(1));
    this.bias = parameter([dim], constant(0));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class Dropout extends Module {
  constructor(readonly p: number, readonly rng: Rng = defaultRng) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.rng);
  }
}

export interface BlockConfig {
  n_embd: number;
  n_head: number;
  n_inner?: number | null;
  layer_norm_epsilon: number;
  resid_pdrop: number;
  attn_pdrop: number;
  /** std of the residual output projections (GPT-2 scales it by 1/sqrt(2 n_layer)) */
  proj_std: number;
}

export class CausalSelfAttention extends Module {
  c_attn: Linear;
  c_proj: Linear;
  resid_dropout: Dropout;
  constructor(readonly config: BlockConfig, rng: Rng) {
    super();
    const C = config.n_embd;
    this.c_attn = new Linear(C, 3 * C, { rng });
    this.c_proj = new Linear(C, C, { rng, std: config.proj_std });
    this.resid_dropout = new Dropout(config.resid_pdrop, rng);
  }
  /** Training attends within the batch; with `ctx.kv` (decoding) each sequence attends over its cache at `layer`. */
  forward(x: Tensor, ctx?: ForwardContext, layer = 0): Tensor {
    const qkv = this.c_attn.forward(x, ctx);
    if (ctx?.kv !== undefined) return this.c_proj.forward(attendCached(qkv, this.config.n_head, layer, ctx.kv), ctx);
    const y = causalSelfAttention(qkv, this.config.n_head);
    return this.resid_dropout.forward(this.c_proj.forward(y, ctx));
  }
}

export class MLP extends Module {
  c_fc: Linear;
  c_proj: Linear;
  dropout: Dropout;
  constructor(config: BlockConfig, rng: Rng) {
    super();
    const inner = config.n_inner ?? 4 * config.n_embd;
    this.c_fc = new Linear(config.n_embd, inner, { rng });
    this.c_proj = new Linear(inner, config.n_embd, { rng, std: config.proj_std });
    this.dropout = new Dropout(config.resid_pdrop, rng);
  }
  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    const y = this.c_proj.forward(gelu(this.c_fc.forward(x, ctx)), ctx);
    return ctx?.kv !== undefined ? y : this.dropout.forward(y);
  }
}

/** Pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
export class Block extends Module {
  ln_1: LayerNorm;
  attn: CausalSelfAttention;
  ln_2: LayerNorm;
  mlp: MLP;
  constructor(config: BlockConfig, rng: Rng) {
    super();
    this.ln_1 = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
    this.attn = new CausalSelfAttention(config, rng);
    this.ln_2 = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
    this.mlp = new MLP(config, rng);
  }
  /** Whether every part is the plain layer decodeBlock computes (not, e.g., a LoRALinear wrapped in by an adapter). */
  private plain(): boolean {
    const a = this.attn, m = this.mlp, is = (o: object, c: { prototype: object }) => Object.getPrototypeOf(o) === c.prototype;
    return is(this.ln_1, LayerNorm) && is(this.ln_2, LayerNorm) && is(a, CausalSelfAttention) && is(m, MLP) &&
      is(a.c_attn, Linear) && is(a.c_proj, Linear) && is(m.c_fc, Linear) && is(m.c_proj, Linear);
  }
  /**
   * The weights decodeBlock reads, when x's step can run fused: a decoding context without
   * adapters, plain layers, the CPU, no gradient, and fused decoding on (setFusedDecode).
   */
  decodeWeights(x: Tensor, ctx?: ForwardContext): DecodeBlockWeights | null {
    if (ctx?.kv === undefined || !fusedDecode || (ctx.adapters !== undefined && ctx.adapters.length > 0) || x.device !== cpu ||
        this.ln_1.weight.device !== cpu || !this.plain() || (isGradEnabled() && needsGrad(x, ...this.parameters()))) return null;
    const a = this.attn, m = this.mlp;
    return { nHead: a.config.n_head, eps: this.ln_1.eps, ln1: this.ln_1, ln2: this.ln_2, attn: a.c_attn, proj: a.c_proj, fc: m.c_fc, mlpProj: m.c_proj };
  }
  /**
   * `layer` is this block's index, for the KV caches of a decoding context. A decoding step
   * without LoRA adapters runs the whole block as one native call (decodeBlock).
   */
  forward(x: Tensor, ctx?: ForwardContext, layer = 0): Tensor {
    const fused = this.decodeWeights(x, ctx);
    if (fused !== null) return decodeBlock(x, fused, cacheSegments(ctx!.kv!, layer));
    const h = add(x, this.attn.forward(this.ln_1.forward(x), ctx, layer));
    return add(h, this.mlp.forward(this.ln_2.forward(h), ctx));
  }
}
