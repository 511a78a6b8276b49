/** GPT-2 configuration with Hugging Face's `config.json` field names. */
export interface GPTConfig {
  model_type: "gpt2";
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner: number | null;
  layer_norm_epsilon: number;
  activation_function: "gelu_new";
  resid_pdrop: number;
  embd_pdrop: number;
  attn_pdrop: number;
  initializer_range: number;
  bos_token_id: number;
  eos_token_id: number;
  tie_word_embeddings: true;
}

export function gptConfig(partial: Partial<GPTConfig> & Pick<GPTConfig, "vocab_size">): GPTConfig {
  const c: GPTConfig = {
    model_type: "gpt2",
    n_positions: 1024,
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    n_inner: null,
    layer_norm_epsilon: 1e-5,
    activation_function: "gelu_new",
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    initializer_range: 0.02,
    bos_token_id: partial.vocab_size - 1,
    eos_token_id: partial.vocab_size - 1,
    tie_word_embeddings: true,
    ...partial,
  };
  validateConfig(c);
  return c;
}

export function validateConfig(c: GPTConfig): void {
  const ints: (keyof GPTConfig)[] = ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"];
  for (const k of ints) {
    const v = c[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new Error(`GPT config: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (c.n_embd % c.n_head !== 0) throw new Error(`GPT config: n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}`);
  if (c.attn_pdrop !== 0) throw new Error("GPT config: attn_pdrop is not supported by the fused attention kernel (use 0)");
  if (c.activation_function !== "gelu_new") throw new Error(`GPT config: activation_function ${c.activation_function} is not supported (gelu_new)`);
}

/** Size presets used by the CLI and the benchmark (S and M match ../shared/bench/torch_ref.py). */
export const GPT_PRESETS: Record<string, Omit<Partial<GPTConfig>, "vocab_size">> = {
  tiny: { n_embd: 64, n_layer: 2, n_head: 2, n_positions: 64 },
  small: { n_embd: 128, n_layer: 4, n_head: 4, n_positions: 128 },
  S: { n_embd: 256, n_layer: 4, n_head: 4, n_positions: 128 },
  M: { n_embd: 512, n_layer: 8, n_head: 8, n_positions: 256 },
};
