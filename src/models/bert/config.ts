/** BERT configuration with Hugging Face's `BertConfig` field names (`config.json`). */
export interface BertConfig {
  model_type: "bert";
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  /** Only "gelu_new", the tanh GELU of GPT-2 that the gelu kernel computes; HF BERT accepts it. */
  hidden_act: "gelu_new";
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  hidden_dropout_prob: number;
  /** Must be 0: the fused attention kernel never materialises the probabilities it would drop. */
  attention_probs_dropout_prob: number;
  initializer_range: number;
  pad_token_id: number;
}

/** A full config from the fields given; the rest take BERT's defaults (dropout 0, tanh GELU). */
export function bertConfig(partial: Partial<BertConfig> & Pick<BertConfig, "vocab_size">): BertConfig {
  const hidden = partial.hidden_size ?? 768;
  const c: BertConfig = {
    model_type: "bert",
    hidden_size: 768,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    intermediate_size: 4 * hidden,
    hidden_act: "gelu_new",
    max_position_embeddings: 512,
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
    initializer_range: 0.02,
    pad_token_id: 0,
    ...partial,
  };
  validateBertConfig(c);
  return c;
}

export function validateBertConfig(c: BertConfig): void {
  if (c.model_type !== "bert") throw new Error(`BERT config: model_type ${JSON.stringify(c.model_type)}, expected "bert"`);
  const positive: (keyof BertConfig)[] = [
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings", "type_vocab_size",
  ];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new Error(`BERT config: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (c.hidden_size % c.num_attention_heads !== 0) {
    throw new Error(`BERT config: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`);
  }
  if (c.hidden_act !== "gelu_new") {
    throw new Error(`BERT config: hidden_act ${JSON.stringify(c.hidden_act)} is not supported; use "gelu_new" (the tanh GELU; ` +
      `checkpoints trained with the exact erf "gelu" would drift slightly, so they are refused rather than silently converted)`);
  }
  if (c.attention_probs_dropout_prob !== 0) {
    throw new Error(`BERT config: attention_probs_dropout_prob ${c.attention_probs_dropout_prob} is not supported: the fused attention ` +
      "kernel never materialises the attention probabilities, so it has no attention dropout (use 0)");
  }
  for (const k of ["hidden_dropout_prob"] as const) {
    const p = c[k];
    if (typeof p !== "number" || !(p >= 0 && p < 1)) throw new Error(`BERT config: ${k} must be in [0, 1), got ${String(p)}`);
  }
  if (typeof c.layer_norm_eps !== "number" || !(c.layer_norm_eps > 0)) throw new Error(`BERT config: layer_norm_eps must be > 0, got ${String(c.layer_norm_eps)}`);
  if (typeof c.initializer_range !== "number" || !(c.initializer_range >= 0)) {
    throw new Error(`BERT config: initializer_range must be >= 0, got ${String(c.initializer_range)}`);
  }
  if (!Number.isInteger(c.pad_token_id) || c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size) {
    throw new Error(`BERT config: pad_token_id ${String(c.pad_token_id)} is outside the vocabulary [0, ${c.vocab_size})`);
  }
}

/** Size presets (intermediate_size follows as 4 x hidden_size); `base` is BERT-base. */
export const BERT_PRESETS: Record<string, Omit<Partial<BertConfig>, "vocab_size">> = {
  tiny: { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 64 },
  small: { hidden_size: 128, num_hidden_layers: 4, num_attention_heads: 4, max_position_embeddings: 128 },
  S: { hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, max_position_embeddings: 128 },
  M: { hidden_size: 512, num_hidden_layers: 8, num_attention_heads: 8, max_position_embeddings: 256 },
  base: { hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, max_position_embeddings: 512 },
};
