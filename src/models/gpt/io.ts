/**
 * GPT checkpoints in Hugging Face's layout: `config.json` + `model.safetensors`
 * (float32, GPT2LMHeadModel key names). Loading also accepts GPT2Model-style keys
 * without the `transformer.` prefix, ignores the attention-mask buffers older
 * exports carry, and accepts a `lm_head.weight` only if it equals the tied `wte`.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { writeJsonAtomic } from "../../io/json.js";
import { join } from "node:path";
import { decodeSafetensors, f32, saveSafetensors, toFloat32, type RawTensor } from "../../io/safetensors.js";
import { type GPTConfig, gptConfig } from "./config.js";
import { GPT } from "./model.js";

export function saveGPT(dir: string, model: GPT, metadata: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  const named = model.namedParameters();
  if (!named.some(([n]) => n === "transformer.wte.weight")) {
    // namedParameters() lists trainable tensors; frozen base weights mean an adapter is applied.
    throw new Error("saveGPT: the base weights are frozen (a LoRA adapter is applied?); save the base before applyLoRA, or remove() the adapter first");
  }
  const tensors: Record<string, RawTensor> = {};
  for (const [name, p] of named) tensors[name] = f32([...p.shape], p.toArray() as Float32Array);
  saveSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt", ...metadata });
  writeJsonAtomic(join(dir, "config.json"), { architectures: ["GPT2LMHeadModel"], ...model.config });
}

export function readGPTConfig(dir: string): GPTConfig {
  const path = join(dir, "config.json");
  if (!existsSync(path)) throw new Error(`loadGPT: ${path} does not exist (expected a folder with config.json and model.safetensors)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`loadGPT: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object") throw new Error(`loadGPT: ${path} must hold a JSON object`);
  const c = raw as Record<string, unknown>;
  if (c.model_type !== "gpt2") throw new Error(`loadGPT: ${path} has model_type ${JSON.stringify(c.model_type)}, expected "gpt2"`);
  const { architectures: _a, ...rest } = c;
  return gptConfig(rest as Partial<GPTConfig> & { vocab_size: number });
}

export function loadGPT(dir: string): GPT {
  const config = readGPTConfig(dir);
  const path = join(dir, "model.safetensors");
  if (!existsSync(path)) throw new Error(`loadGPT: ${path} does not exist`);
  const { tensors } = decodeSafetensors(readFileSync(path), path);
  const model = new GPT(config);
  const dict: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [key, t] of Object.entries(tensors)) {
    if (/\.attn\.(masked_)?bias$/.test(key)) continue;
    const name = key.startsWith("transformer.") || key.startsWith("lm_head.") ? key : `transformer.${key}`;
    dict[name] = { shape: t.shape, data: toFloat32(t) };
  }
  const head = dict["lm_head.weight"];
  if (head !== undefined) {
    const wte = dict["transformer.wte.weight"];
    if (wte === undefined || head.data.length !== wte.data.length || head.data.some((v, i) => v !== wte.data[i])) {
      throw new Error(`loadGPT: ${path} has an lm_head.weight that differs from transformer.wte.weight; only tied embeddings are supported`);
    }
    delete dict["lm_head.weight"];
  }
  model.loadStateDict(dict);
  return model;
}
