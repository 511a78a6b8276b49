/**
 * Adapter artifacts: a folder holding only what an adaptation changed, bound to its base
 * by the base's content hash.
 *
 *     adapter.json         { format, method, task, labels, config, base: { model_type, sha256 }, created }
 *     adapter.safetensors  the changed tensors (probe weights, later LoRA factors); may be empty
 *
 *     saveAdapter("runs/sentiment-probe", { method: "probe", task: "sentiment", labels, config, base: baseIdentity("runs/bert") }, tensors);
 *     loadAdapter("runs/sentiment-probe", "runs/bert");  // refuses another base, naming both hashes
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/json.js";
import { f32, loadSafetensors, saveSafetensors, toFloat32, type RawTensor } from "../io/safetensors.js";
import { readModelType } from "../models/registry.js";
import type { LinearProbe } from "./probe.js";

export const ADAPTER_FORMAT = "plinth-adapter";
export const ADAPTER_VERSION = 1;

export interface BaseIdentity {
  model_type: string;
  /** sha256 (hex) of the base's model.safetensors. */
  sha256: string;
}

export interface AdapterManifest {
  format: typeof ADAPTER_FORMAT;
  version: number;
  method: string;
  task: string;
  labels: string[];
  config: Record<string, unknown>;
  base: BaseIdentity;
  /** ISO 8601. */
  created: string;
}

export class AdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdapterError";
  }
}

/** sha256 of a file, read in 4 MiB chunks. */
export function sha256File(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** The identity of a base model folder (config.json + model.safetensors). */
export function baseIdentity(baseDir: string): BaseIdentity {
  const weights = join(baseDir, "model.safetensors"), config = join(baseDir, "config.json");
  if (!existsSync(weights)) throw new AdapterError(`base ${baseDir}: ${weights} does not exist`);
  if (!existsSync(config)) throw new AdapterError(`base ${baseDir}: ${config} does not exist`);
  let modelType: string;
  try {
    modelType = readModelType(baseDir, `base ${baseDir}`);
  } catch (e) {
    throw new AdapterError((e as Error).message);
  }
  return { model_type: modelType, sha256: sha256File(weights) };
}

export interface AdapterSpec {
  method: string;
  task: string;
  labels: string[];
  config: Record<string, unknown>;
  base: BaseIdentity;
}

export function saveAdapter(dir: string, spec: AdapterSpec, tensors: Record<string, RawTensor> = {}): AdapterManifest {
  if (!/^[0-9a-f]{64}$/.test(spec.base.sha256)) throw new AdapterError(`saveAdapter: base sha256 ${JSON.stringify(spec.base.sha256)} is not 64 hex digits`);
  // A generative adapter (config.objective "lm") has no labels; a classifier needs two.
  if (spec.config.objective !== "lm" && spec.labels.length < 2) throw new AdapterError(`saveAdapter: an adapter needs at least 2 labels, got ${JSON.stringify(spec.labels)}`);
  mkdirSync(dir, { recursive: true });
  const manifest: AdapterManifest = {
    format: ADAPTER_FORMAT,
    version: ADAPTER_VERSION,
    method: spec.method,
    task: spec.task,
    labels: [...spec.labels],
    config: spec.config,
    base: { model_type: spec.base.model_type, sha256: spec.base.sha256 },
    created: new Date().toISOString(),
  };
  // Weights first, manifest last: a folder with a manifest always has its tensors.
  saveSafetensors(join(dir, "adapter.safetensors"), tensors, { format: "pt", method: spec.method, base_sha256: spec.base.sha256 });
  writeJsonAtomic(join(dir, "adapter.json"), manifest);
  return manifest;
}

/** Reads adapter.json without checking a base (for listings). */
export function readAdapterManifest(dir: string): AdapterManifest {
  const path = join(dir, "adapter.json");
  if (!existsSync(path)) throw new AdapterError(`adapter ${dir}: ${path} does not exist`);
  let m: Partial<AdapterManifest>;
  try {
    m = JSON.parse(readFileSync(path, "utf8")) as Partial<AdapterManifest>;
  } catch (e) {
    throw new AdapterError(`adapter ${dir}: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (m === null || typeof m !== "object" || m.format !== ADAPTER_FORMAT) throw new AdapterError(`adapter ${dir}: ${path} is not a ${ADAPTER_FORMAT} manifest`);
  if (m.version !== ADAPTER_VERSION) throw new AdapterError(`adapter ${dir}: version ${String(m.version)} is not supported (expected ${ADAPTER_VERSION})`);
  for (const k of ["method", "task", "created"] as const) if (typeof m[k] !== "string") throw new AdapterError(`adapter ${dir}: ${path} has no "${k}"`);
  if (!Array.isArray(m.labels) || m.labels.some((l) => typeof l !== "string")) throw new AdapterError(`adapter ${dir}: ${path} has no "labels" list`);
  if (m.base === undefined || typeof m.base.sha256 !== "string" || typeof m.base.model_type !== "string") throw new AdapterError(`adapter ${dir}: ${path} has no "base" {model_type, sha256}`);
  return m as AdapterManifest;
}

export interface LoadedAdapter {
  manifest: AdapterManifest;
  tensors: Record<string, RawTensor>;
}

/** Loads an adapter for the base in baseDir; refuses an adapter made for another base. */
export function loadAdapter(dir: string, baseDir: string): LoadedAdapter {
  const manifest = readAdapterManifest(dir);
  const base = baseIdentity(baseDir);
  if (base.sha256 !== manifest.base.sha256) {
    throw new AdapterError(`adapter ${dir} was made for base sha256 ${manifest.base.sha256} (${manifest.base.model_type}), but ${baseDir} has sha256 ${base.sha256} (${base.model_type}); apply it to the base it was trained on`);
  }
  if (base.model_type !== manifest.base.model_type) {
    throw new AdapterError(`adapter ${dir} is for a ${manifest.base.model_type} base, but ${baseDir} is ${base.model_type}`);
  }
  const path = join(dir, "adapter.safetensors");
  if (!existsSync(path)) throw new AdapterError(`adapter ${dir}: ${path} does not exist`);
  return { manifest, tensors: loadSafetensors(path).tensors };
}

// ---------------------------------------------------------------- linear probe tensors

export function probeTensors(probe: LinearProbe): Record<string, RawTensor> {
  return {
    "probe.weight": f32([probe.dim, probe.numClasses], probe.weight),
    "probe.bias": f32([probe.numClasses], probe.bias),
    "probe.feature_mean": f32([probe.dim], probe.mean),
    "probe.feature_std": f32([probe.dim], probe.std),
  };
}

export function probeFromTensors(tensors: Record<string, RawTensor>, source = "adapter"): LinearProbe {
  const get = (k: string): RawTensor => {
    const t = tensors[k];
    if (t === undefined) throw new AdapterError(`${source}: tensor ${k} is missing`);
    return t;
  };
  const w = get("probe.weight");
  if (w.shape.length !== 2) throw new AdapterError(`${source}: probe.weight has shape [${w.shape}], expected [dim, classes]`);
  const [dim, numClasses] = w.shape;
  const probe: LinearProbe = {
    dim, numClasses,
    weight: toFloat32(w), bias: toFloat32(get("probe.bias")),
    mean: toFloat32(get("probe.feature_mean")), std: toFloat32(get("probe.feature_std")),
  };
  if (probe.bias.length !== numClasses || probe.mean.length !== dim || probe.std.length !== dim) {
    throw new AdapterError(`${source}: probe tensors disagree in size (weight [${dim}, ${numClasses}], bias ${probe.bias.length}, mean ${probe.mean.length}, std ${probe.std.length})`);
  }
  return probe;
}
