/**
 * BERT checkpoints in Hugging Face's layout: `config.json` (architectures
 * ["BertForMaskedLM"]) + `model.safetensors` (float32, BertForMaskedLM key names).
 *
 * Loading is the registry's (models/registry.ts) with BERT's entry (arch.ts), which accepts
 * what HF exports carry beside our parameters: the `position_ids` buffer, a
 * `cls.predictions.decoder.weight` equal to the word embeddings (the tie), a
 * `cls.predictions.decoder.bias` equal to (or standing in for) `cls.predictions.bias`,
 * TF-era LayerNorm `gamma`/`beta` names, and the pooler / next-sentence head of
 * BertForPreTraining checkpoints, which a masked LM does not use.
 */
import { loadArchitecture, readArchitectureConfig, saveArchitecture } from "../registry.js";
import { bertArchitecture } from "./arch.js";
import type { BertConfig } from "./config.js";
import type { BertForMaskedLM } from "./model.js";

export function saveBert(dir: string, model: BertForMaskedLM, metadata: Record<string, string> = {}): void {
  saveArchitecture(bertArchitecture, dir, model, metadata, "saveBert");
}

export function readBertConfig(dir: string): BertConfig {
  return readArchitectureConfig(bertArchitecture, dir, "loadBert");
}

export function loadBert(dir: string): BertForMaskedLM {
  return loadArchitecture(bertArchitecture, dir, { op: "loadBert" });
}
