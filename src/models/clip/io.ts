/**
 * CLIP checkpoints in Hugging Face's layout: `config.json` (architectures ["CLIPModel"],
 * nested text_config / vision_config) + `model.safetensors` (float32, CLIPModel key names).
 * Loading ignores the `position_ids` buffers that HF exports carry.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeSafetensors, f32, saveSafetensors, toFloat32, type RawTensor } from "../../io/safetensors.js";
import { writeJsonAtomic } from "../../io/json.js";
import { type ClipConfig, type ClipConfigInput, clipConfig } from "./config.js";
import { ClipModel } from "./model.js";

const UNUSED = [/\.embeddings\.position_ids$/];
const TEXT_FIELDS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings", "hidden_act", "layer_norm_eps", "pad_token_id", "bos_token_id", "eos_token_id", "projection_dim"];
const VISION_FIELDS = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels", "image_size", "patch_size", "hidden_act", "layer_norm_eps", "projection_dim"];

export function saveClip(dir: string, model: ClipModel, metadata: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, RawTensor> = {};
  for (const [name, p] of model.namedParameters()) tensors[name] = f32([...p.shape], p.toArray() as Float32Array);
  saveSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt", ...metadata });
  writeJsonAtomic(join(dir, "config.json"), { architectures: ["CLIPModel"], ...model.config });
}

function pick(o: unknown, fields: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (o === null || typeof o !== "object") return out;
  for (const k of fields) if ((o as Record<string, unknown>)[k] !== undefined) out[k] = (o as Record<string, unknown>)[k];
  return out;
}

export function readClipConfig(dir: string): ClipConfig {
  const path = join(dir, "config.json");
  if (!existsSync(path)) throw new Error(`loadClip: ${path} does not exist (expected a folder with config.json and model.safetensors)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`loadClip: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error(`loadClip: ${path} must hold a JSON object`);
  const c = raw as Record<string, unknown>;
  if (c.model_type !== "clip") throw new Error(`loadClip: ${path} has model_type ${JSON.stringify(c.model_type)}, expected "clip"`);
  const text = pick(c.text_config, TEXT_FIELDS), vision = pick(c.vision_config, VISION_FIELDS);
  if (typeof text.vocab_size !== "number" || typeof text.eos_token_id !== "number") throw new Error(`loadClip: ${path}: text_config needs numeric vocab_size and eos_token_id`);
  try {
    return clipConfig({
      ...pick(c, ["projection_dim", "logit_scale_init_value", "initializer_factor"]),
      text_config: text as ClipConfigInput["text_config"], vision_config: vision,
    } as ClipConfigInput);
  } catch (e) {
    throw new Error(`loadClip: ${path}: ${(e as Error).message}`);
  }
}

export function loadClip(dir: string): ClipModel {
  const config = readClipConfig(dir);
  const path = join(dir, "model.safetensors");
  if (!existsSync(path)) throw new Error(`loadClip: ${path} does not exist`);
  const { tensors } = decodeSafetensors(readFileSync(path), path);
  const dict: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [key, t] of Object.entries(tensors)) {
    if (UNUSED.some((r) => r.test(key))) continue;
    try {
      dict[key] = { shape: t.shape, data: toFloat32(t) };
    } catch (e) {
      throw new Error(`loadClip: ${path}: tensor ${key}: ${(e as Error).message}`);
    }
  }
  const model = new ClipModel(config);
  try {
    model.loadStateDict(dict);
  } catch (e) {
    throw new Error(`loadClip: ${path}: ${(e as Error).message}`);
  }
  return model;
}
