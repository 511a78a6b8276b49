/**
 * GPT checkpoints in Hugging Face's layout: `config.json` + `model.safetensors` (float32,
 * GPT2LMHeadModel key names). Loading is the registry's (models/registry.ts) with GPT-2's
 * entry (arch.ts): it also reads GPT2Model-style keys without the `transformer.` prefix,
 * ignores the attention-mask buffers older exports carry, and accepts a `lm_head.weight`
 * only if it equals the tied `wte`.
 */
import { loadArchitecture, readArchitectureConfig, saveArchitecture } from "../registry.js";
import { gptArchitecture } from "./arch.js";
import type { GPTConfig } from "./config.js";
import type { GPT } from "./model.js";

export function saveGPT(dir: string, model: GPT, metadata: Record<string, string> = {}): void {
  saveArchitecture(gptArchitecture, dir, model, metadata, "saveGPT");
}

export function readGPTConfig(dir: string): GPTConfig {
  return readArchitectureConfig(gptArchitecture, dir, "loadGPT");
}

export function loadGPT(dir: string): GPT {
  return loadArchitecture(gptArchitecture, dir, { op: "loadGPT" });
}
