/**
 * CLIP configuration with Hugging Face's `CLIPConfig` field names (`config.json`):
 * a `text_config` (CLIPTextConfig), a `vision_config` (CLIPVisionConfig), the shared
 * `projection_dim` and `logit_scale_init_value`.
 */

/** "quick_gelu": x * sigmoid(1.702 x) (OpenAI CLIP, HF's default); "gelu_new": the tanh GELU. */
export type ClipActivation = "quick_gelu" | "gelu_new";

export interface ClipTextConfig {
  model_type: "clip_text_model";
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: ClipActivation;
  layer_norm_eps: number;
  pad_token_id: number;
  bos_token_id: number;
  /** The text embedding is read at the first eos token of each row (HF's pooling for eos_token_id != 2). */
  eos_token_id: number;
  projection_dim: number;
}

export interface ClipVisionConfig {
  model_type: "clip_vision_model";
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_channels: number;
  image_size: number;
  patch_size: number;
  hidden_act: ClipActivation;
  layer_norm_eps: number;
  projection_dim: number;
}

export interface ClipConfig {
  model_type: "clip";
  projection_dim: number;
  /** ln(1 / 0.07): the initial temperature of CLIP's paper. */
  logit_scale_init_value: number;
  initializer_factor: number;
  text_config: ClipTextConfig;
  vision_config: ClipVisionConfig;
}

export type ClipConfigInput = {
  projection_dim?: number;
  logit_scale_init_value?: number;
  initializer_factor?: number;
  text_config: Partial<ClipTextConfig> & Pick<ClipTextConfig, "vocab_size" | "eos_token_id">;
  vision_config?: Partial<ClipVisionConfig>;
};

/** A full config from the fields given; the rest take small defaults (not CLIP ViT-B/32's sizes). */
export function clipConfig(input: ClipConfigInput): ClipConfig {
  const projection_dim = input.projection_dim ?? 64;
  const t = input.text_config, v = input.vision_config ?? {};
  const th = t.hidden_size ?? 64, vh = v.hidden_size ?? 64;
  const c: ClipConfig = {
    model_type: "clip",
    projection_dim,
    logit_scale_init_value: input.logit_scale_init_value ?? Math.log(1 / 0.07),
    initializer_factor: input.initializer_factor ?? 1,
    text_config: {
      model_type: "clip_text_model", hidden_size: th, intermediate_size: 4 * th, num_hidden_layers: 2, num_attention_heads: 2,
      max_position_embeddings: 32, hidden_act: "quick_gelu", layer_norm_eps: 1e-5, pad_token_id: 0, bos_token_id: t.eos_token_id,
      projection_dim, ...t,
    },
    vision_config: {
      model_type: "clip_vision_model", hidden_size: vh, intermediate_size: 4 * vh, num_hidden_layers: 2, num_attention_heads: 2,
      num_channels: 3, image_size: 32, patch_size: 8, hidden_act: "quick_gelu", layer_norm_eps: 1e-5, projection_dim, ...v,
    },
  };
  validateClipConfig(c);
  return c;
}

function positiveInts(where: string, o: object, keys: string[]): void {
  for (const k of keys) {
    const v = (o as Record<string, unknown>)[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new Error(`CLIP config: ${where}${k} must be a positive integer, got ${JSON.stringify(v)}`);
  }
}

function checkTower(where: string, c: ClipTextConfig | ClipVisionConfig): void {
  positiveInts(where, c, ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"]);
  if (c.hidden_size % c.num_attention_heads !== 0) {
    throw new Error(`CLIP config: ${where}hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`);
  }
  if (c.hidden_act !== "quick_gelu" && c.hidden_act !== "gelu_new") {
    throw new Error(`CLIP config: ${where}hidden_act ${JSON.stringify(c.hidden_act)} is not supported (expected "quick_gelu" or "gelu_new")`);
  }
  if (typeof c.layer_norm_eps !== "number" || !(c.layer_norm_eps > 0)) throw new Error(`CLIP config: ${where}layer_norm_eps must be > 0, got ${String(c.layer_norm_eps)}`);
}

export function validateClipConfig(c: ClipConfig): void {
  if (c.model_type !== "clip") throw new Error(`CLIP config: model_type ${JSON.stringify(c.model_type)}, expected "clip"`);
  positiveInts("", c, ["projection_dim"]);
  if (!Number.isFinite(c.logit_scale_init_value)) throw new Error(`CLIP config: logit_scale_init_value must be a number, got ${String(c.logit_scale_init_value)}`);
  const t = c.text_config, v = c.vision_config;
  if (t === undefined || v === undefined) throw new Error("CLIP config: needs both text_config and vision_config");
  checkTower("text_config.", t);
  checkTower("vision_config.", v);
  positiveInts("text_config.", t, ["vocab_size", "max_position_embeddings"]);
  positiveInts("vision_config.", v, ["num_channels", "image_size", "patch_size"]);
  for (const k of ["pad_token_id", "bos_token_id", "eos_token_id"] as const) {
    const id = t[k];
    if (!Number.isInteger(id) || id < 0 || id >= t.vocab_size) throw new Error(`CLIP config: text_config.${k} ${String(id)} is outside the vocabulary [0, ${t.vocab_size})`);
  }
  if (v.image_size % v.patch_size !== 0) {
    throw new Error(`CLIP config: vision_config.image_size ${v.image_size} is not a multiple of patch_size ${v.patch_size}`);
  }
}

/** Size presets for the towers (hidden sizes, depth, heads); images are small on CPU. */
export const CLIP_PRESETS: Record<string, { projection_dim: number; text: Partial<ClipTextConfig>; vision: Partial<ClipVisionConfig> }> = {
  tiny: {
    projection_dim: 64,
    text: { hidden_size: 64, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 24 },
    vision: { hidden_size: 64, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2, image_size: 32, patch_size: 8 },
  },
  small: {
    projection_dim: 128,
    text: { hidden_size: 128, intermediate_size: 512, num_hidden_layers: 4, num_attention_heads: 4, max_position_embeddings: 32 },
    vision: { hidden_size: 128, intermediate_size: 512, num_hidden_layers: 4, num_attention_heads: 4, image_size: 48, patch_size: 8 },
  },
};
