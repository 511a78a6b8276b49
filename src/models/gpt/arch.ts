/**
 * GPT-2's registry entry: config.json of GPT2LMHeadModel (refusing the attention variants
 * and activations Plinth does not compute), Hugging Face checkpoint names (GPT2Model keys
 * without the `transformer.` prefix, old causal-mask buffers, a tied `lm_head.weight`), LoRA
 * targets, and what a causal LM can do.
 */
import type { Linear } from "../../nn/layers.js";
import { noGrad } from "../../tensor/autograd.js";
import { mean } from "../../tensor/ops/reduce.js";
import { ids as idsTensor } from "../../tensor/tensor.js";
import { type Architecture, buildConfig, namedToken } from "../architecture.js";
import { lengthBatches } from "../batching.js";
import { dropTied, mapKeys } from "../checkpoint.js";
import { type GPTConfig, gptConfig } from "./config.js";
import { GPT } from "./model.js";

const FIELDS = ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "layer_norm_epsilon", "initializer_range", "bos_token_id", "eos_token_id"] as const;
const DROPOUT = ["resid_pdrop", "embd_pdrop", "attn_pdrop"] as const;

/** Per block, the Linear layers of generation with LoRA (applyLoRA's default targets match the same four). */
export const GENERATION_LORA_LAYERS = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"] as const;

export const gptArchitecture: Architecture<GPT, GPTConfig> = {
  modelType: "gpt2",
  title: "GPT-2",
  hfClasses: ["GPT2LMHeadModel", "GPT2Model"],
  capabilities: ["generate", "embed", "classify"],
  loraTargets: ["c_attn", "c_proj", "c_fc"],
  embeddingKey: "transformer.wte.weight",

  owns: (model: unknown): model is GPT => model instanceof GPT,

  readConfig(c, { op, path, huggingFace, notes }) {
    const refuse = (why: string): never => {
      throw new Error(`${op}: ${path}: ${why}`);
    };
    if (c.activation_function !== undefined && c.activation_function !== "gelu_new") refuse(`activation_function ${JSON.stringify(c.activation_function)} is not supported (Plinth's GPT-2 uses "gelu_new")`);
    if (c.scale_attn_weights === false) refuse(`scale_attn_weights false is not supported (attention is scaled by 1/sqrt(head size))`);
    if (c.scale_attn_by_inverse_layer_idx === true || c.reorder_and_upcast_attn === true) refuse(`scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported`);
    if (c.add_cross_attention === true) refuse(`add_cross_attention true (an encoder-decoder GPT-2) is not supported`);
    return buildConfig(c, FIELDS, DROPOUT, { huggingFace, notes }, refuse, (picked) => gptConfig(picked as Partial<GPTConfig> & { vocab_size: number }));
  },

  mapWeights(raw, where) {
    // Causal-mask buffers of older exports; GPT2Model keys lack the `transformer.` prefix.
    const dict = mapKeys(raw, (key) => /\.attn\.(masked_)?bias$/.test(key) ? null
      : key.startsWith("transformer.") || key.startsWith("lm_head.") ? key : `transformer.${key}`);
    dropTied(dict, "lm_head.weight", "transformer.wte.weight", where);
    return dict;
  },

  create: (config, { seed = 0 } = {}) => new GPT(config, { seed }),
  configOf: (model) => model.config,
  hiddenSize: (model) => model.config.n_embd,
  contextLength: (model) => model.config.n_positions,
  vocabSize: (model) => model.config.vocab_size,
  shape: ({ config: c }) => `${c.n_layer} layers, d=${c.n_embd}, ${c.n_head} heads, context ${c.n_positions}`,

  hfExport(model, tokenizer) {
    const c = model.config;
    const eot = tokenizer?.tokenToId("<|endoftext|>") ?? c.eos_token_id;
    const end = tokenizer === null ? null : namedToken(tokenizer, "<|endoftext|>");
    return {
      config: { bos_token_id: eot, eos_token_id: eot, n_ctx: c.n_positions, use_cache: true },
      generation: { bos_token_id: eot, eos_token_id: eot, max_length: c.n_positions, do_sample: false },
      tokenizer: {
        tokenizer_class: "GPT2Tokenizer", bos_token: end, eos_token: end, unk_token: end, model_max_length: c.n_positions,
        add_prefix_space: false, add_bos_token: false, clean_up_tokenization_spaces: false,
      },
    };
  },

  embed(model, seqs) {
    const out = new Array<Float32Array>(seqs.length);
    // One noGrad scope per batch: a scope frees what it made when it ends, so a scope around the
    // whole loop would hold every batch's activations until the last one.
    for (const batch of lengthBatches(seqs.map((s) => s.length), 32)) {
      noGrad(() => {
        const e = mean(model.hidden(idsTensor(batch.map((i) => [...seqs[i]]))), 1);
        const C = e.shape[1];
        batch.forEach((i, r) => (out[i] = e.data.slice(r * C, (r + 1) * C)));
      });
    }
    return out;
  },

  generationLayers(model) {
    const layers = new Map<string, Linear>();
    model.transformer.h.forEach((b, l) => {
      const of = { "attn.c_attn": b.attn.c_attn, "attn.c_proj": b.attn.c_proj, "mlp.c_fc": b.mlp.c_fc, "mlp.c_proj": b.mlp.c_proj };
      for (const name of GENERATION_LORA_LAYERS) layers.set(`transformer.h.${l}.${name}`, of[name]);
    });
    return layers;
  },
};
