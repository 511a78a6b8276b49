/**
 * What the model registry knows about one architecture: its config.json, how to build, save
 * and load it, the Hugging Face checkpoint names it maps and the variants it refuses, which
 * Linear layers LoRA adapts, what it can do, and the sizes callers ask of a model. Each
 * architecture writes one `Architecture` (gpt/arch.ts, bert/arch.ts, clip/arch.ts);
 * registry.ts lists them.
 */
import type { Linear } from "../nn/layers.js";
import type { Module } from "../nn/module.js";
import type { WeightDict } from "./checkpoint.js";

/** config.json's `model_type`, Hugging Face's name for the architecture. */
export type ModelType = "gpt2" | "bert" | "clip";

/**
 * generate: a causal LM (left-to-right likelihood, sampling, perplexity, few-shot prompts);
 * embed: pooled sentence embeddings; classify: a base for text-classification adaptation;
 * fill-mask: a masked LM; score-images: image-text similarity (zero-shot image labels).
 */
export type Capability = "generate" | "embed" | "classify" | "fill-mask" | "score-images";

export interface ConfigContext {
  /** The operation named first in errors ("loadGPT", "import"). */
  op: string;
  /** The config.json path, named in errors. */
  path: string;
  /**
   * A Hugging Face import: dropout probabilities are set to 0 (inference) with a note, where a
   * Plinth run's own config keeps them.
   */
  huggingFace: boolean;
  /** What reading adjusted, for the caller to show. */
  notes: string[];
}

/** The token lookups an export needs to name special tokens in tokenizer_config.json. */
export interface TokenNames {
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

/** The Hugging Face files beyond config.json + model.safetensors that an export writes. */
export interface HFExportFiles {
  /** Fields added to the saved config.json (after the model's own). */
  config?: Record<string, unknown>;
  /** generation_config.json, for a causal LM. */
  generation?: Record<string, unknown>;
  /** tokenizer_config.json (written only with a tokenizer). */
  tokenizer?: Record<string, unknown>;
}

export interface Architecture<M extends Module = Module, C extends object = object> {
  readonly modelType: ModelType;
  /** Human name: "GPT-2". */
  readonly title: string;
  /** Hugging Face classes whose checkpoints load; the first is what a save names in `architectures`. */
  readonly hfClasses: readonly string[];
  readonly capabilities: readonly Capability[];
  /** applyLoRA's default `targets`: Linear field names or dotted path suffixes. */
  readonly loraTargets: readonly string[];
  /** A parameter every saveable model lists; frozen (absent) when a LoRA adapter is applied. */
  readonly embeddingKey: string;

  /** The architecture's own model class (the one `instanceof` the registry needs). */
  owns(model: unknown): model is M;
  /** config.json (HF field names) to a validated config; refuses what would compute something else. */
  readConfig(raw: Record<string, unknown>, ctx: ConfigContext): C;
  /** Hugging Face checkpoint names to the model's parameter names; drops buffers and tied copies, refuses untied heads. */
  mapWeights(raw: WeightDict, where: string): WeightDict;
  create(config: C, options?: { seed?: number }): M;
  configOf(model: M): C;
  hiddenSize(model: M): number;
  /** Longest token sequence the model reads (the text tower's, for CLIP). */
  contextLength(model: M): number;
  vocabSize(model: M): number;
  /** Its shape in words: "4 layers, d=64, 2 heads, context 64". */
  shape(model: M): string;
  hfExport(model: M, tokenizer: TokenNames | null): HFExportFiles;
  /** Mean-pooled embeddings of token sequences (each within contextLength), for `embed`. */
  embed?(model: M, seqs: readonly (readonly number[])[]): Float32Array[];
  /**
   * The Linear layers the batched generator applies LoRA factors to, by parameter path
   * (`transformer.h.0.attn.c_attn`), for `generate`.
   */
  generationLayers?(model: M): Map<string, Linear>;
}

/** The token itself if the tokenizer has it, else null (tokenizer_config.json's special-token fields). */
export function namedToken(tokenizer: TokenNames, token: string): string | null {
  return tokenizer.tokenToId(token) !== undefined ? token : null;
}

/**
 * A text model's config from config.json: the fields the model reads (HF configs carry many
 * more: transformers_version, use_cache, ...), dropout kept for a Plinth run and set to 0 (with
 * a note) for a Hugging Face import, then the architecture's own validation, whose errors
 * become refusals.
 */
export function buildConfig<C>(c: Record<string, unknown>, fields: readonly string[], dropout: readonly string[],
  { huggingFace, notes }: Pick<ConfigContext, "huggingFace" | "notes">, refuse: (why: string) => never,
  build: (picked: Record<string, unknown>) => C): C {
  const picked: Record<string, unknown> = {};
  for (const k of fields) if (c[k] !== undefined) picked[k] = c[k];
  if (!huggingFace) {
    for (const k of dropout) if (c[k] !== undefined) picked[k] = c[k];
  } else if (dropout.some((k) => typeof c[k] === "number" && c[k] !== 0)) {
    notes.push("dropout probabilities set to 0 (inference)");
  }
  if (typeof picked.vocab_size !== "number") refuse(`vocab_size is missing or not a number`);
  try {
    return build(picked);
  } catch (e) {
    return refuse((e as Error).message);
  }
}
