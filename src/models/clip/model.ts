/**
 * CLIP with Hugging Face's CLIPModel parameter names: a ViT image tower
 * (`vision_model.*`), a causal text transformer (`text_model.*`), `visual_projection`,
 * `text_projection` and the learnable `logit_scale`. Linear weights use nn.Linear's
 * [out, in] layout; the patch embedding is stored as HF's Conv2d weight [D, 3, P, P] and
 * computed as a strided reshape of the image into patches plus one matmul.
 *
 * Legend: B batch, H/W image side, P patch, G = H/P grid side, N = G*G patches,
 * D hidden size, T text length, E projection_dim.
 */
import { Module, decayGroups, parameter } from "../../nn/module.js";
import { Embedding, LayerNorm, Linear } from "../../nn/layers.js";
import { Rng } from "../../tensor/rng.js";
import { ShapeError, fmt } from "../../tensor/shape.js";
import { Tensor, fromHost, zeros } from "../../tensor/tensor.js";
import { add, gelu } from "../../tensor/ops/elementwise.js";
import { linear } from "../../tensor/ops/matmul.js";
import { attention, embedding } from "../../tensor/ops/nn.js";
import { cat, permute, reshape, slice } from "../../tensor/ops/views.js";
import type { ClipActivation, ClipConfig, ClipTextConfig, ClipVisionConfig } from "./config.js";
import { validateClipConfig } from "./config.js";
import { contrastiveLoss, l2Normalize, quickGelu, type ContrastiveOutput } from "./ops.js";

type TowerConfig = ClipTextConfig | ClipVisionConfig;

const normalInit = (std: number, rng: Rng) => (t: Tensor) => {
  for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * std;
};
/** Constant inputs (index tensors, broadcast bases) live until the node that reads them has run its backward. */
function ownedBy(out: Tensor, ...ts: Tensor[]): Tensor {
  if (out.node !== null) out.node.saved.push(...ts);
  else for (const t of ts) t.release();
  return out;
}

const activation = (kind: ClipActivation, x: Tensor): Tensor => (kind === "quick_gelu" ? quickGelu(x) : gelu(x));

export class ClipAttention extends Module {
  k_proj: Linear;
  v_proj: Linear;
  q_proj: Linear;
  out_proj: Linear;
  constructor(readonly config: TowerConfig, factor: number, rng: Rng) {
    super();
    const D = config.hidden_size;
    // HF's CLIP init: in-projections D^-0.5 (2L)^-0.5, out-projection D^-0.5.
    const inStd = D ** -0.5 * (2 * config.num_hidden_layers) ** -0.5 * factor, outStd = D ** -0.5 * factor;
    this.k_proj = new Linear(D, D, { layout: "out_in", std: inStd, rng });
    this.v_proj = new Linear(D, D, { layout: "out_in", std: inStd, rng });
    this.q_proj = new Linear(D, D, { layout: "out_in", std: inStd, rng });
    this.out_proj = new Linear(D, D, { layout: "out_in", std: outStd, rng });
  }
  forward(x: Tensor, causal: boolean): Tensor {
    const y = attention(this.q_proj.forward(x), this.k_proj.forward(x), this.v_proj.forward(x), this.config.num_attention_heads, { causal });
    return this.out_proj.forward(y);
  }
}

export class ClipMLP extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(readonly config: TowerConfig, factor: number, rng: Rng) {
    super();
    const D = config.hidden_size;
    this.fc1 = new Linear(D, config.intermediate_size, { layout: "out_in", std: (2 * D) ** -0.5 * factor, rng });
    this.fc2 = new Linear(config.intermediate_size, D, { layout: "out_in", std: D ** -0.5 * (2 * config.num_hidden_layers) ** -0.5 * factor, rng });
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(activation(this.config.hidden_act, this.fc1.forward(x)));
  }
}

/** Pre-LayerNorm block: x + attn(LN1(x)), then + mlp(LN2(x)). */
export class ClipEncoderLayer extends Module {
  self_attn: ClipAttention;
  layer_norm1: LayerNorm;
  mlp: ClipMLP;
  layer_norm2: LayerNorm;
  constructor(config: TowerConfig, factor: number, rng: Rng) {
    super();
    this.self_attn = new ClipAttention(config, factor, rng);
    this.layer_norm1 = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.mlp = new ClipMLP(config, factor, rng);
    this.layer_norm2 = new LayerNorm(config.hidden_size, config.layer_norm_eps);
  }
  forward(x: Tensor, causal: boolean): Tensor {
    const h = add(x, this.self_attn.forward(this.layer_norm1.forward(x), causal));
    return add(h, this.mlp.forward(this.layer_norm2.forward(h)));
  }
}

export class ClipEncoder extends Module {
  layers: ClipEncoderLayer[];
  constructor(config: TowerConfig, factor: number, rng: Rng) {
    super();
    this.layers = Array.from({ length: config.num_hidden_layers }, () => new ClipEncoderLayer(config, factor, rng));
  }
  forward(x: Tensor, causal: boolean): Tensor {
    for (const layer of this.layers) x = layer.forward(x, causal);
    return x;
  }
}

/** HF's Conv2d(3, D, kernel P, stride P, bias=False): only its weight [D, C, P, P]. */
export class PatchEmbedding extends Module {
  weight: Tensor;
  constructor(readonly config: ClipVisionConfig, std: number, rng: Rng) {
    super();
    const { hidden_size: D, num_channels: C, patch_size: P } = config;
    this.weight = parameter([D, C, P, P], normalInit(std, rng));
  }
  /** pixels [B, C, H, W] -> [B, N, D]: patches in row-major grid order, like Conv2d + flatten(2).transpose(1, 2). */
  forward(pixels: Tensor): Tensor {
    const { hidden_size: D, num_channels: C, patch_size: P, image_size: S } = this.config;
    if (pixels.ndim !== 4 || pixels.shape[1] !== C || pixels.shape[2] !== S || pixels.shape[3] !== S) {
      throw new ShapeError(`CLIP vision: pixels${fmt(pixels.shape)}: expected [B, ${C}, ${S}, ${S}]`);
    }
    const B = pixels.shape[0], G = S / P;
    const grid = reshape(pixels, [B, C, G, P, G, P]);
    const perm = permute(grid, [0, 2, 4, 1, 3, 5]);
    const patches = reshape(perm, [B * G * G, C * P * P]);  // one copy, rows = patches
    if (perm.node === null) {
      // Pixels without a gradient: the views are off the graph, so free them now (they hold the
      // caller's pixel buffer) and let the matmul's node free the patch copy after its backward.
      grid.release();
      perm.release();
    }
    const flat = linear(patches, reshape(this.weight, [D, C * P * P]), null, "out_in");
    return reshape(patches.node === null ? ownedBy(flat, patches) : flat, [B, G * G, D]);
  }
}

export class ClipVisionEmbeddings extends Module {
  class_embedding: Tensor;
  patch_embedding: PatchEmbedding;
  position_embedding: Embedding;
  constructor(readonly config: ClipVisionConfig, factor: number, rng: Rng) {
    super();
    const D = config.hidden_size;
    const N = (config.image_size / config.patch_size) ** 2;
    this.class_embedding = parameter([D], normalInit(D ** -0.5 * factor, rng));
    this.patch_embedding = new PatchEmbedding(config, 0.02 * factor, rng);
    this.position_embedding = new Embedding(N + 1, D, { std: 0.02 * factor, rng });
  }
  /** [B, C, H, W] -> [B, 1 + N, D]: the class token, then the patches, plus positions. */
  forward(pixels: Tensor): Tensor {
    const patches = this.patch_embedding.forward(pixels);
    const [B, , D] = patches.shape;
    const base = zeros([B, 1, D], patches.device);
    const cls = ownedBy(add(base, this.class_embedding), base);  // the class token broadcast over the batch
    return add(cat([cls, patches], 1), this.position_embedding.weight);
  }
}

export class ClipVisionTransformer extends Module {
  embeddings: ClipVisionEmbeddings;
  /** HF's spelling. */
  pre_layrnorm: LayerNorm;
  encoder: ClipEncoder;
  post_layernorm: LayerNorm;
  constructor(readonly config: ClipVisionConfig, factor: number, rng: Rng) {
    super();
    this.embeddings = new ClipVisionEmbeddings(config, factor, rng);
    this.pre_layrnorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.encoder = new ClipEncoder(config, factor, rng);
    this.post_layernorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
  }
  /** pixels [B, C, H, W] -> pooled class-token state [B, D] (after post_layernorm). */
  forward(pixels: Tensor): Tensor {
    const x = this.encoder.forward(this.pre_layrnorm.forward(this.embeddings.forward(pixels)), false);
    const [B, , D] = x.shape;
    return this.post_layernorm.forward(reshape(slice(x, 1, 0, 1), [B, D]));
  }
}

export class ClipTextEmbeddings extends Module {
  token_embedding: Embedding;
  position_embedding: Embedding;
  constructor(config: ClipTextConfig, factor: number, rng: Rng) {
    super();
    this.token_embedding = new Embedding(config.vocab_size, config.hidden_size, { std: 0.02 * factor, rng });
    this.position_embedding = new Embedding(config.max_position_embeddings, config.hidden_size, { std: 0.01 * factor, rng });
  }
}

export class ClipTextTransformer extends Module {
  embeddings: ClipTextEmbeddings;
  encoder: ClipEncoder;
  final_layer_norm: LayerNorm;
  constructor(readonly config: ClipTextConfig, factor: number, rng: Rng) {
    super();
    this.embeddings = new ClipTextEmbeddings(config, factor, rng);
    this.encoder = new ClipEncoder(config, factor, rng);
    this.final_layer_norm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
  }
  /**
   * ids [B, T] (int32; each row holds an eos token, padding after it) -> the state at each
   * row's first eos [B, D]. Attention is causal, as in HF's CLIP, so padding after the eos
   * never reaches the pooled state.
   */
  forward(ids: Tensor): Tensor {
    const c = this.config;
    if (!(ids instanceof Tensor) || ids.dtype !== "int32" || ids.ndim !== 2) {
      throw new ShapeError(`CLIP text: ids must be int32 [B, T], got ${ids instanceof Tensor ? `${ids.dtype}${fmt(ids.shape)}` : typeof ids}`);
    }
    const [B, T] = ids.shape;
    if (T < 1 || T > c.max_position_embeddings) throw new ShapeError(`CLIP text: length ${T} must be in [1, max_position_embeddings=${c.max_position_embeddings}]`);
    const flat = ids.toArray();
    const rows: number[] = [];
    for (let b = 0; b < B; b++) {
      const row = flat.subarray(b * T, (b + 1) * T);
      const at = row.indexOf(c.eos_token_id);
      if (at < 0) throw new ShapeError(`CLIP text: row ${b} of ids${fmt(ids.shape)} has no eos token (id ${c.eos_token_id}); every caption must end with one`);
      rows.push(b * T + at);
    }
    const e = this.embeddings;
    const x0 = add(e.token_embedding.forward(ids), slice(e.position_embedding.weight, 0, 0, T));
    const h = this.final_layer_norm.forward(this.encoder.forward(x0, true));
    const at = fromHost(Int32Array.from(rows), [B], h.device);
    return ownedBy(embedding(at, reshape(h, [B * T, c.hidden_size])), at);
  }
}

export interface ClipOutput extends ContrastiveOutput {
  /** L2-normalised embeddings [B, E]. */
  imageEmbeds: Tensor;
  textEmbeds: Tensor;
}

export class ClipModel extends Module {
  text_model: ClipTextTransformer;
  vision_model: ClipVisionTransformer;
  visual_projection: Linear;
  text_projection: Linear;
  logit_scale: Tensor;
  /** Drives initialisation; its state goes into checkpoints. */
  readonly rng: Rng;

  constructor(readonly config: ClipConfig, { seed = 0 } = {}) {
    super();
    validateClipConfig(config);
    this.rng = new Rng(seed);
    const f = config.initializer_factor, E = config.projection_dim;
    const t = config.text_config, v = config.vision_config;
    this.text_model = new ClipTextTransformer(t, f, this.rng);
    this.vision_model = new ClipVisionTransformer(v, f, this.rng);
    this.visual_projection = new Linear(v.hidden_size, E, { bias: false, layout: "out_in", std: v.hidden_size ** -0.5 * f, rng: this.rng });
    this.text_projection = new Linear(t.hidden_size, E, { bias: false, layout: "out_in", std: t.hidden_size ** -0.5 * f, rng: this.rng });
    this.logit_scale = parameter([], (x) => (x.data[0] = config.logit_scale_init_value));
  }

  /** pixels [B, C, H, W] -> L2-normalised image embeddings [B, E]. */
  imageEmbeds(pixels: Tensor): Tensor {
    return l2Normalize(this.visual_projection.forward(this.vision_model.forward(pixels)));
  }

  /** ids [B, T] -> L2-normalised text embeddings [B, E]. */
  textEmbeds(ids: Tensor): Tensor {
    return l2Normalize(this.text_projection.forward(this.text_model.forward(ids)));
  }

  /** A batch of B matched (image, caption) pairs -> embeddings, [B, B] logits and the symmetric InfoNCE loss. */
  forward(pixels: Tensor, ids: Tensor): ClipOutput {
    if (pixels.ndim === 4 && ids.ndim === 2 && pixels.shape[0] !== ids.shape[0]) {
      throw new ShapeError(`CLIP: pixels${fmt(pixels.shape)} and ids${fmt(ids.shape)} must hold the same number of pairs`);
    }
    const imageEmbeds = this.imageEmbeds(pixels);
    const textEmbeds = this.textEmbeds(ids);
    return { imageEmbeds, textEmbeds, ...contrastiveLoss(imageEmbeds, textEmbeds, this.logit_scale) };
  }

  /** AdamW groups: decay on matrices and embedding tables; none on biases, norms, the class token and logit_scale. */
  paramGroups(weightDecay: number): { params: Tensor[]; weightDecay: number }[] {
    return decayGroups(this, weightDecay);
  }
}
