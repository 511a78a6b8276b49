/**
 * CLIP's registry entry: config.json of CLIPModel (nested text_config / vision_config),
 * Hugging Face checkpoint names (the `position_ids` buffers are dropped), LoRA targets (the
 * attention and MLP projections of both towers), and what an image-text model can do.
 */
import { type Architecture } from "../architecture.js";
import { mapKeys } from "../checkpoint.js";
import { type ClipConfig, type ClipConfigInput, type ClipTextConfig, type ClipVisionConfig, clipConfig } from "./config.js";
import { ClipModel } from "./model.js";

const UNUSED = [/\.embeddings\.position_ids$/];
const TEXT_FIELDS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings", "hidden_act", "layer_norm_eps", "pad_token_id", "bos_token_id", "eos_token_id", "projection_dim"];
const VISION_FIELDS = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels", "image_size", "patch_size", "hidden_act", "layer_norm_eps", "projection_dim"];

function pick(o: unknown, fields: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (o === null || typeof o !== "object") return out;
  for (const k of fields) if ((o as Record<string, unknown>)[k] !== undefined) out[k] = (o as Record<string, unknown>)[k];
  return out;
}

const tower = (t: ClipTextConfig | ClipVisionConfig): string => `${t.num_hidden_layers} layers, d=${t.hidden_size}, ${t.num_attention_heads} heads`;

export const clipArchitecture: Architecture<ClipModel, ClipConfig> = {
  modelType: "clip",
  title: "CLIP",
  hfClasses: ["CLIPModel"],
  capabilities: ["score-images"],
  loraTargets: ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
  embeddingKey: "text_model.embeddings.token_embedding.weight",

  owns: (model: unknown): model is ClipModel => model instanceof ClipModel,

  readConfig(c, { op, path }) {
    const text = pick(c.text_config, TEXT_FIELDS), vision = pick(c.vision_config, VISION_FIELDS);
    if (typeof text.vocab_size !== "number" || typeof text.eos_token_id !== "number") throw new Error(`${op}: ${path}: text_config needs numeric vocab_size and eos_token_id`);
    try {
      return clipConfig({
        ...pick(c, ["projection_dim", "logit_scale_init_value", "initializer_factor"]),
        text_config: text as ClipConfigInput["text_config"], vision_config: vision,
      } as ClipConfigInput);
    } catch (e) {
      throw new Error(`${op}: ${path}: ${(e as Error).message}`);
    }
  },

  mapWeights: (raw) => mapKeys(raw, (key) => (UNUSED.some((r) => r.test(key)) ? null : key)),

  create: (config, { seed = 0 } = {}) => new ClipModel(config, { seed }),
  configOf: (model) => model.config,
  /** The shared image-text embedding space. */
  hiddenSize: (model) => model.config.projection_dim,
  contextLength: (model) => model.config.text_config.max_position_embeddings,
  vocabSize: (model) => model.config.text_config.vocab_size,
  shape: ({ config: c }) => `text ${tower(c.text_config)}; vision ${tower(c.vision_config)}, ${c.vision_config.image_size}px images`,

  hfExport(model, tokenizer) {
    if (tokenizer === null) return {};
    const t = model.config.text_config;
    return {
      tokenizer: {
        tokenizer_class: "PreTrainedTokenizerFast", bos_token: tokenizer.idToToken(t.bos_token_id) ?? null, eos_token: tokenizer.idToToken(t.eos_token_id) ?? null,
        pad_token: tokenizer.idToToken(t.pad_token_id) ?? null, model_max_length: t.max_position_embeddings, clean_up_tokenization_spaces: false,
      },
    };
  },
};
