/**
 * Hugging Face folders both ways: `config.json`, `model.safetensors`, `tokenizer.json`,
 * `tokenizer_config.json` and `generation_config.json`, for GPT-2 (GPT2LMHeadModel) and
 * BERT (BertForMaskedLM). Import reads what Hugging Face writes (extra config fields,
 * dropout settings, tied-head copies, buffers, sharded weights) and refuses, with the
 * reason, what would compute something else: other architectures, attention variants,
 * the erf GELU, untied heads, tokenizers that disagree with the model.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/json.js";
import { BertForMaskedLM, bertConfig, saveBert, type BertConfig } from "../models/bert/index.js";
import { GPT, gptConfig, saveGPT, type GPTConfig } from "../models/gpt/index.js";
import { ClipModel, loadClip, saveClip } from "../models/clip/index.js";
import { BPETokenizer } from "../tokenizer/index.js";
import { dropTied, readJson, readWeights, type WeightDict } from "./hf_weights.js";

export type HFModel = { kind: "gpt2"; model: GPT } | { kind: "bert"; model: BertForMaskedLM } | { kind: "clip"; model: ClipModel };

export interface HFImport {
  kind: HFModel["kind"];
  model: HFModel["model"];
  tokenizer: BPETokenizer | null;
  generation: Record<string, unknown> | null;
  /** What the import ignored or adjusted (e.g. dropout set to 0 for inference). */
  notes: string[];
}

export const SUPPORTED = `gpt2 (GPT2LMHeadModel), bert (BertForMaskedLM) and clip (CLIPModel)`;

const OP = "import";

function asHF(m: HFModel | GPT | BertForMaskedLM | ClipModel): HFModel {
  if (m instanceof GPT) return { kind: "gpt2", model: m };
  if (m instanceof BertForMaskedLM) return { kind: "bert", model: m };
  if (m instanceof ClipModel) return { kind: "clip", model: m };
  return m;
}

/** The vocabulary size a model's tokenizer must have. */
export function vocabSize(m: HFModel["model"]): number {
  return m instanceof ClipModel ? m.config.text_config.vocab_size : m.config.vocab_size;
}

function special(tok: BPETokenizer, token: string): string | null {
  return tok.tokenToId(token) !== undefined ? token : null;
}

/** Writes the five files; returns their names. */
export function exportHF(dir: string, m: HFModel | GPT | BertForMaskedLM | ClipModel, tokenizer: BPETokenizer | null): string[] {
  const hf = asHF(m);
  const V = vocabSize(hf.model);
  if (tokenizer !== null && tokenizer.vocabSize !== V) {
    throw new Error(`export: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${V}; a model must be exported with the tokenizer it was trained with`);
  }
  mkdirSync(dir, { recursive: true });
  const files = ["config.json", "model.safetensors"];
  if (hf.kind === "gpt2") {
    const model = hf.model, c = model.config;
    const eot = tokenizer?.tokenToId("<|endoftext|>") ?? c.eos_token_id;
    saveGPT(dir, model, { producer: "plinth" });
    writeJsonAtomic(join(dir, "config.json"), { architectures: ["GPT2LMHeadModel"], ...c, bos_token_id: eot, eos_token_id: eot, n_ctx: c.n_positions, use_cache: true });
    writeJsonAtomic(join(dir, "generation_config.json"), { bos_token_id: eot, eos_token_id: eot, max_length: c.n_positions, do_sample: false });
    files.push("generation_config.json");
    if (tokenizer !== null) {
      const end = special(tokenizer, "<|endoftext|>");
      writeJsonAtomic(join(dir, "tokenizer_config.json"), {
        tokenizer_class: "GPT2Tokenizer", bos_token: end, eos_token: end, unk_token: end, model_max_length: c.n_positions,
        add_prefix_space: false, add_bos_token: false, clean_up_tokenization_spaces: false,
      });
    }
  } else if (hf.kind === "clip") {
    saveClip(dir, hf.model, { producer: "plinth" });
    const t = hf.model.config.text_config;
    if (tokenizer !== null) {
      writeJsonAtomic(join(dir, "tokenizer_config.json"), {
        tokenizer_class: "PreTrainedTokenizerFast", bos_token: tokenizer.idToToken(t.bos_token_id) ?? null, eos_token: tokenizer.idToToken(t.eos_token_id) ?? null,
        pad_token: tokenizer.idToToken(t.pad_token_id) ?? null, model_max_length: t.max_position_embeddings, clean_up_tokenization_spaces: false,
      });
    }
  } else {
    saveBert(dir, hf.model, { producer: "plinth" });
    if (tokenizer !== null) {
      writeJsonAtomic(join(dir, "tokenizer_config.json"), {
        tokenizer_class: "PreTrainedTokenizerFast", cls_token: special(tokenizer, "[CLS]"), sep_token: special(tokenizer, "[SEP]"),
        mask_token: special(tokenizer, "[MASK]"), pad_token: special(tokenizer, "[PAD]"), unk_token: null,
        model_max_length: hf.model.config.max_position_embeddings, clean_up_tokenization_spaces: false,
      });
    }
  }
  if (tokenizer !== null) {
    tokenizer.save(join(dir, "tokenizer.json"));
    files.push("tokenizer.json", "tokenizer_config.json");
  }
  return files;
}

// ---- import ----

function gptFromHF(dir: string, c: Record<string, unknown>, notes: string[]): GPT {
  const where = join(dir, "config.json");
  const refuse = (why: string): never => {
    throw new Error(`${OP}: ${where}: ${why}`);
  };
  if (c.activation_function !== undefined && c.activation_function !== "gelu_new") refuse(`activation_function ${JSON.stringify(c.activation_function)} is not supported (Plinth's GPT-2 uses "gelu_new")`);
  if (c.scale_attn_weights === false) refuse(`scale_attn_weights false is not supported (attention is scaled by 1/sqrt(head size))`);
  if (c.scale_attn_by_inverse_layer_idx === true || c.reorder_and_upcast_attn === true) refuse(`scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported`);
  if (c.add_cross_attention === true) refuse(`add_cross_attention true (an encoder-decoder GPT-2) is not supported`);
  const pick: Partial<GPTConfig> = {};
  for (const k of ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "layer_norm_epsilon", "initializer_range", "bos_token_id", "eos_token_id"] as const) {
    if (c[k] !== undefined) (pick as Record<string, unknown>)[k] = c[k];
  }
  if (typeof pick.vocab_size !== "number") refuse(`vocab_size is missing or not a number`);
  if ([c.resid_pdrop, c.embd_pdrop, c.attn_pdrop].some((p) => typeof p === "number" && p !== 0)) notes.push("dropout probabilities set to 0 (inference)");
  let config: GPTConfig;
  try {
    config = gptConfig(pick as Partial<GPTConfig> & { vocab_size: number });
  } catch (e) {
    return refuse((e as Error).message);
  }
  const raw = readWeights(dir, OP);
  const dict: WeightDict = Object.create(null) as WeightDict;
  for (const [key, t] of Object.entries(raw)) {
    if (/\.attn\.(masked_)?bias$/.test(key)) continue; // causal-mask buffers of older exports
    dict[key.startsWith("transformer.") || key.startsWith("lm_head.") ? key : `transformer.${key}`] = t;
  }
  dropTied(dict, "lm_head.weight", "transformer.wte.weight", OP);
  const model = new GPT(config);
  try {
    model.loadStateDict(dict);
  } catch (e) {
    throw new Error(`${OP}: ${dir}: the weights do not fit GPT2LMHeadModel with this config.json: ${(e as Error).message}`);
  }
  return model;
}

function bertFromHF(dir: string, c: Record<string, unknown>, notes: string[]): BertForMaskedLM {
  const where = join(dir, "config.json");
  const refuse = (why: string): never => {
    throw new Error(`${OP}: ${where}: ${why}`);
  };
  if (c.position_embedding_type !== undefined && c.position_embedding_type !== "absolute") refuse(`position_embedding_type ${JSON.stringify(c.position_embedding_type)} is not supported ("absolute")`);
  if (c.is_decoder === true) refuse(`is_decoder true is not supported (the bidirectional encoder only)`);
  if (c.hidden_act !== "gelu_new") {
    refuse(`hidden_act ${JSON.stringify(c.hidden_act)} is not supported: Plinth's BERT uses the tanh GELU ("gelu_new"); a checkpoint trained with the erf "gelu" would compute slightly different values`);
  }
  const pick: Record<string, unknown> = {};
  for (const k of ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "initializer_range", "pad_token_id"]) {
    if (c[k] !== undefined) pick[k] = c[k];
  }
  if ([c.hidden_dropout_prob, c.attention_probs_dropout_prob].some((p) => typeof p === "number" && p !== 0)) notes.push("dropout probabilities set to 0 (inference)");
  let config: BertConfig;
  try {
    config = bertConfig({ ...pick, hidden_act: "gelu_new" } as Partial<BertConfig> & { vocab_size: number });
  } catch (e) {
    return refuse((e as Error).message);
  }
  const raw = readWeights(dir, OP);
  const dict: WeightDict = Object.create(null) as WeightDict;
  for (const [key, t] of Object.entries(raw)) {
    if (/^bert\.embeddings\.position_ids$|^bert\.pooler\.|^cls\.seq_relationship\./.test(key)) continue;
    dict[key.replace(/\.LayerNorm\.gamma$/, ".LayerNorm.weight").replace(/\.LayerNorm\.beta$/, ".LayerNorm.bias")] = t;
  }
  dropTied(dict, "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight", OP);
  const decoderBias = dict["cls.predictions.decoder.bias"];
  if (decoderBias !== undefined) {
    dict["cls.predictions.bias"] ??= decoderBias;
    delete dict["cls.predictions.decoder.bias"];
  }
  const model = new BertForMaskedLM(config);
  try {
    model.loadStateDict(dict);
  } catch (e) {
    throw new Error(`${OP}: ${dir}: the weights do not fit BertForMaskedLM with this config.json: ${(e as Error).message}`);
  }
  return model;
}

function clipFromHF(dir: string): ClipModel {
  if (!existsSync(join(dir, "model.safetensors"))) readWeights(dir, OP); // the same messages for missing / pickle / sharded weights
  try {
    return loadClip(dir);
  } catch (e) {
    throw new Error(`${OP}: ${(e as Error).message}`);
  }
}

function readTokenizer(dir: string, vocabSize: number): BPETokenizer | null {
  const path = join(dir, "tokenizer.json");
  if (!existsSync(path)) return null;
  let tok: BPETokenizer;
  try {
    tok = BPETokenizer.load(path);
  } catch (e) {
    throw new Error(`${OP}: ${(e as Error).message}`);
  }
  if (tok.vocabSize !== vocabSize) {
    throw new Error(`${OP}: mismatched tokenizer: ${path} has ${tok.vocabSize} tokens but config.json says vocab_size ${vocabSize}; the tokenizer must be the one the model was trained with`);
  }
  const cfgPath = join(dir, "tokenizer_config.json");
  if (existsSync(cfgPath)) {
    const tc = readJson(cfgPath, OP);
    for (const k of ["bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "cls_token", "sep_token"]) {
      const v = tc[k];
      const content = typeof v === "string" ? v : v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string" ? (v as { content: string }).content : null;
      if (content !== null && tok.tokenToId(content) === undefined) {
        throw new Error(`${OP}: mismatched tokenizer files: ${cfgPath} names ${k} ${JSON.stringify(content)}, which ${path} does not have`);
      }
    }
  }
  return tok;
}

/** Loads a Hugging Face folder (GPT2LMHeadModel or BertForMaskedLM naming) into Plinth. */
export function importHF(dir: string): HFImport {
  if (!existsSync(dir)) throw new Error(`${OP}: ${dir} does not exist`);
  const cfgPath = join(dir, "config.json");
  const c = readJson(cfgPath, OP);
  const type = c.model_type;
  const notes: string[] = [];
  let hf: HFModel;
  if (type === "gpt2") hf = { kind: "gpt2", model: gptFromHF(dir, c, notes) };
  else if (type === "bert") hf = { kind: "bert", model: bertFromHF(dir, c, notes) };
  else if (type === "clip") hf = { kind: "clip", model: clipFromHF(dir) };
  else throw new Error(`${OP}: ${cfgPath} has model_type ${JSON.stringify(type)} (architectures ${JSON.stringify(c.architectures ?? null)}); supported: ${SUPPORTED}`);
  const archs = c.architectures;
  const wanted = { gpt2: ["GPT2LMHeadModel", "GPT2Model"], bert: ["BertForMaskedLM", "BertForPreTraining", "BertModel"], clip: ["CLIPModel"] }[hf.kind];
  if (Array.isArray(archs) && archs.length > 0 && !archs.some((a) => wanted.includes(a as string))) {
    throw new Error(`${OP}: ${cfgPath} has architectures ${JSON.stringify(archs)}; for model_type ${String(type)} Plinth loads ${wanted.join(", ")}`);
  }
  const V = vocabSize(hf.model);
  const tokenizer = readTokenizer(dir, V);
  let generation: Record<string, unknown> | null = null;
  const genPath = join(dir, "generation_config.json");
  if (existsSync(genPath)) {
    generation = readJson(genPath, OP);
    for (const k of ["bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"]) {
      const ids = ([] as unknown[]).concat(generation[k] ?? []);
      for (const id of ids) {
        if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= V) throw new Error(`${OP}: ${genPath}: ${k} ${JSON.stringify(id)} is not a token id of this model (vocab_size ${V})`);
      }
    }
  }
  return { ...hf, tokenizer, generation, notes };
}
