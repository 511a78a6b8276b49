/**
 * BERT checkpoints in Hugging Face's layout: `config.json` (architectures
 * ["BertForMaskedLM"]) + `model.safetensors` (float32, BertForMaskedLM key names).
 *
 * Loading accepts what HF exports carry beside our parameters: the `position_ids`
 * buffer, a `cls.predictions.decoder.weight` equal to the word embeddings (the tie),
 * a `cls.predictions.decoder.bias` equal to (or standing in for) `cls.predictions.bias`,
 * TF-era LayerNorm `gamma`/`beta` names, and the pooler / next-sentence head of
 * BertForPreTraining checkpoints, which a masked LM does not use.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeSafetensors, f32, saveSafetensors, toFloat32, type RawTensor } from "../../io/safetensors.js";
import { writeJsonAtomic } from "../../io/json.js";
import { type BertConfig, bertConfig } from "./config.js";
import { BertForMaskedLM } from "./model.js";

const CONFIG_FIELDS: readonly (keyof BertConfig)[] = [
  "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
  "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob",
  "initializer_range", "pad_token_id",
];

/** Keys of HF exports that a BertForMaskedLM has no parameter for and does not need. */
const UNUSED = [/^bert\.embeddings\.position_ids$/, /^bert\.pooler\./, /^cls\.seq_relationship\./];

export function saveBert(dir: string, model: BertForMaskedLM, metadata: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, RawTensor> = {};
  for (const [name, p] of model.namedParameters()) tensors[name] = f32([...p.shape], p.toArray() as Float32Array);
  saveSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt", ...metadata });
  writeJsonAtomic(join(dir, "config.json"), { architectures: ["BertForMaskedLM"], ...model.config });
}

export function readBertConfig(dir: string): BertConfig {
  const path = join(dir, "config.json");
  if (!existsSync(path)) throw new Error(`loadBert: ${path} does not exist (expected a folder with config.json and model.safetensors)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`loadBert: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error(`loadBert: ${path} must hold a JSON object`);
  const c = raw as Record<string, unknown>;
  if (c.model_type !== "bert") throw new Error(`loadBert: ${path} has model_type ${JSON.stringify(c.model_type)}, expected "bert"`);
  if (c.position_embedding_type !== undefined && c.position_embedding_type !== "absolute") {
    throw new Error(`loadBert: ${path} has position_embedding_type ${JSON.stringify(c.position_embedding_type)}; only "absolute" is supported`);
  }
  if (c.is_decoder === true) throw new Error(`loadBert: ${path} describes a decoder (is_decoder: true); only the bidirectional encoder is supported`);
  // HF configs carry many more fields (transformers_version, use_cache, ...); keep the ones the model reads.
  const picked: Record<string, unknown> = {};
  for (const k of CONFIG_FIELDS) if (c[k] !== undefined) picked[k] = c[k];
  if (typeof picked.vocab_size !== "number") throw new Error(`loadBert: ${path} has no numeric vocab_size`);
  try {
    return bertConfig(picked as Partial<BertConfig> & { vocab_size: number });
  } catch (e) {
    throw new Error(`loadBert: ${path}: ${(e as Error).message}`);
  }
}

const sameValues = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

export function loadBert(dir: string): BertForMaskedLM {
  const config = readBertConfig(dir);
  const path = join(dir, "model.safetensors");
  if (!existsSync(path)) throw new Error(`loadBert: ${path} does not exist`);
  const { tensors } = decodeSafetensors(readFileSync(path), path);
  const dict: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [key, t] of Object.entries(tensors)) {
    if (UNUSED.some((r) => r.test(key))) continue;
    const name = key.replace(/\.LayerNorm\.gamma$/, ".LayerNorm.weight").replace(/\.LayerNorm\.beta$/, ".LayerNorm.bias");
    let data: Float32Array;
    try {
      data = toFloat32(t);
    } catch (e) {
      throw new Error(`loadBert: ${path}: tensor ${key}: ${(e as Error).message}`);
    }
    dict[name] = { shape: t.shape, data };
  }
  const words = dict["bert.embeddings.word_embeddings.weight"];
  const decoder = dict["cls.predictions.decoder.weight"];
  if (decoder !== undefined) {
    if (words === undefined || !sameValues(decoder.data, words.data)) {
      throw new Error(`loadBert: ${path} has a cls.predictions.decoder.weight that differs from bert.embeddings.word_embeddings.weight; only tied embeddings are supported`);
    }
    delete dict["cls.predictions.decoder.weight"];
  }
  const decoderBias = dict["cls.predictions.decoder.bias"];
  if (decoderBias !== undefined) {
    const bias = dict["cls.predictions.bias"];
    if (bias === undefined) dict["cls.predictions.bias"] = decoderBias;
    else if (!sameValues(decoderBias.data, bias.data)) {
      throw new Error(`loadBert: ${path} has a cls.predictions.decoder.bias that differs from cls.predictions.bias (HF ties them)`);
    }
    delete dict["cls.predictions.decoder.bias"];
  }
  const model = new BertForMaskedLM(config);
  try {
    model.loadStateDict(dict);
  } catch (e) {
    throw new Error(`loadBert: ${path}: ${(e as Error).message}`);
  }
  return model;
}
