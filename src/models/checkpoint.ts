/**
 * Reading a checkpoint folder's files, for Plinth runs and Hugging Face folders alike:
 * a JSON object file, and the weights: `model.safetensors`, or shards listed in
 * `model.safetensors.index.json`; a pickle `pytorch_model.bin` is refused with a message
 * saying how to convert it. Every float tensor comes back as float32 with its shape
 * (integer and boolean tensors are buffers such as position_ids, never parameters).
 *
 *     const raw = readJson(join(dir, "config.json"), "loadGPT");
 *     const weights = readWeights(dir, "loadGPT");   // { "transformer.wte.weight": { shape, data }, ... }
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeSafetensors, toFloat32 } from "../io/safetensors.js";

export type WeightDict = Record<string, { shape: number[]; data: Float32Array }>;

export function readJson(path: string, op: string): Record<string, unknown> {
  if (!existsSync(path)) throw new Error(`${op}: ${path} does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${op}: ${path} is not valid JSON (${(e as Error).message}); is the file corrupt or truncated?`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error(`${op}: ${path} must hold a JSON object, got ${Array.isArray(raw) ? "an array" : String(raw)}`);
  return raw as Record<string, unknown>;
}

function readOne(path: string, op: string, into: WeightDict): void {
  let tensors;
  try {
    tensors = decodeSafetensors(readFileSync(path), path).tensors;
  } catch (e) {
    throw new Error(`${op}: ${(e as Error).message}`);
  }
  for (const [key, t] of Object.entries(tensors)) {
    if (!["F32", "F16", "BF16", "F64"].includes(t.dtype)) continue;
    let data: Float32Array;
    try {
      data = toFloat32(t);
    } catch (e) {
      throw new Error(`${op}: ${path}: tensor ${key}: ${(e as Error).message}`);
    }
    into[key] = { shape: t.shape, data };
  }
}

export function readWeights(dir: string, op: string): WeightDict {
  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  const dict = Object.create(null) as WeightDict;
  if (existsSync(single)) {
    readOne(single, op, dict);
  } else if (existsSync(index)) {
    const map = readJson(index, op).weight_map;
    if (map === null || typeof map !== "object") throw new Error(`${op}: ${index} has no "weight_map" object`);
    const shards = [...new Set(Object.values(map as Record<string, unknown>))];
    for (const s of shards) {
      if (typeof s !== "string" || s.includes("/") || s.includes("\\")) throw new Error(`${op}: ${index} names shard ${JSON.stringify(s)}; expected a file name in the same folder`);
      readOne(join(dir, s), op, dict);
    }
  } else if (existsSync(join(dir, "pytorch_model.bin"))) {
    throw new Error(`${op}: ${dir} holds pytorch_model.bin (a Python pickle), which Plinth does not read; convert it to model.safetensors first (safetensors.torch.save_file)`);
  } else {
    throw new Error(`${op}: ${dir} has no model.safetensors (nor model.safetensors.index.json)`);
  }
  return dict;
}

export const sameValues = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Drops an output-layer weight that only repeats the tied embedding; refuses one that differs,
 * which would compute other logits than the model Plinth builds (its output layer is the embedding).
 */
export function dropTied(dict: WeightDict, head: string, embedding: string, where: string): void {
  const h = dict[head];
  if (h === undefined) return;
  const e = dict[embedding];
  if (e === undefined || !sameValues(h.data, e.data)) {
    throw new Error(`${where}: ${head} differs from ${embedding}; only checkpoints with tied input/output embeddings are supported ` +
      `(the output layer is ${embedding} itself, so a ${head} that differs from ${embedding} would compute other logits)`);
  }
  delete dict[head];
}

/** A new dict with each key renamed by `name`, or left out where it returns null (buffers, unused heads). */
export function mapKeys(dict: WeightDict, name: (key: string) => string | null): WeightDict {
  const out = Object.create(null) as WeightDict;
  for (const [key, t] of Object.entries(dict)) {
    const to = name(key);
    if (to !== null) out[to] = t;
  }
  return out;
}
