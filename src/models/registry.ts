/**
 * The model registry: one entry per architecture (gpt2, bert, clip), and the one place that
 * reads config.json's model_type, loads and saves a model folder (config.json +
 * model.safetensors, Plinth runs and Hugging Face folders alike) and answers what a model is
 * and can do. Callers outside models/ ask here instead of testing classes or type names.
 *
 *     const model = loadModel("runs/default");           // GPT, BertForMaskedLM or ClipModel
 *     if (can(model, "generate")) generate(model, ids);  // narrows to GPT
 *     contextLength(model); hiddenSize(model); architectureOf(model).loraTargets;
 *     saveModel("runs/copy", model, { objective: "clm" });
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/json.js";
import { f32, saveSafetensors, type RawTensor } from "../io/safetensors.js";
import type { Linear } from "../nn/layers.js";
import type { Module } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import type { Architecture, Capability, ModelType } from "./architecture.js";
import { bertArchitecture } from "./bert/arch.js";
import type { BertConfig } from "./bert/config.js";
import type { BertForMaskedLM } from "./bert/model.js";
import { readJson, readWeights } from "./checkpoint.js";
import { clipArchitecture } from "./clip/arch.js";
import type { ClipConfig } from "./clip/config.js";
import type { ClipModel } from "./clip/model.js";
import { gptArchitecture } from "./gpt/arch.js";
import { type Pooling, POOLING_CONFIG_KEY, checkPooling, poolHidden, poolingOf, poolingRecorded, setPooling } from "./pooling.js";
import type { GPTConfig } from "./gpt/config.js";
import type { GPT } from "./gpt/model.js";
import { parseWeightFormat, useInferenceWeights, type WeightFormat } from "./inference_weights.js";

export type { Architecture, Capability, ConfigContext, HFExportFiles, ModelType, TokenNames } from "./architecture.js";
export { type Pooling, POOLINGS, POOLING_CONFIG_KEY, checkPooling, isPooling, poolHidden, poolingOf } from "./pooling.js";

export type AnyModel = GPT | BertForMaskedLM | ClipModel;
export type AnyConfig = GPTConfig | BertConfig | ClipConfig;
/** A model that reads token sequences into hidden states (the bases of text adaptation). */
export type TextModel = GPT | BertForMaskedLM;

/** The model class each capability guarantees (checked against the entries by test/registry.test.ts). */
export interface CapabilityModels {
  generate: GPT;
  embed: TextModel;
  classify: TextModel;
  "fill-mask": BertForMaskedLM;
  "score-images": ClipModel;
}

const ARCHITECTURES: readonly Architecture<AnyModel, AnyConfig>[] = [gptArchitecture, bertArchitecture, clipArchitecture];

export const MODEL_TYPES: readonly ModelType[] = ARCHITECTURES.map((a) => a.modelType);

const listed = (parts: string[]): string => (parts.length < 2 ? parts.join("") : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}`);

/** "gpt2 (GPT2LMHeadModel), bert (BertForMaskedLM) and clip (CLIPModel)"; only those with `capability` if given. */
export function supportedTypes(capability?: Capability): string {
  return listed(ARCHITECTURES.filter((a) => capability === undefined || a.capabilities.includes(capability)).map((a) => `${a.modelType} (${a.hfClasses[0]})`));
}

export function isModelType(type: unknown): type is ModelType {
  return ARCHITECTURES.some((a) => a.modelType === type);
}

/** The model types with a capability, e.g. typesWith("classify") is ["gpt2", "bert"]. */
export function typesWith(capability: Capability): ModelType[] {
  return ARCHITECTURES.filter((a) => a.capabilities.includes(capability)).map((a) => a.modelType);
}

/** The entry of a model type (config.json's model_type) or of a model. */
export function architecture(typeOrModel: string | AnyModel): Architecture<AnyModel, AnyConfig> {
  if (typeof typeOrModel !== "string") return architectureOf(typeOrModel);
  const a = ARCHITECTURES.find((e) => e.modelType === typeOrModel);
  if (a === undefined) throw new Error(`model registry: unknown model_type ${JSON.stringify(typeOrModel)}; supported: ${supportedTypes()}`);
  return a;
}

/** The entry a model was built from. */
export function architectureOf(model: object): Architecture<AnyModel, AnyConfig> {
  const a = ARCHITECTURES.find((e) => e.owns(model));
  if (a === undefined) throw new TypeError(`model registry: a ${model.constructor.name} is not a registered model; supported: ${supportedTypes()}`);
  return a;
}

/** Whether a model type (e.g. a catalog entry's modelType) has a capability; false for unknown types. */
export function supports(type: string, capability: Capability): boolean {
  return ARCHITECTURES.some((a) => a.modelType === type && a.capabilities.includes(capability));
}

/** Whether a model has a capability; narrows it to the class that provides it. */
export function can<K extends Capability>(model: AnyModel, capability: K): model is CapabilityModels[K] {
  return architectureOf(model).capabilities.includes(capability);
}

export const hiddenSize = (model: AnyModel): number => architectureOf(model).hiddenSize(model);
export const contextLength = (model: AnyModel): number => architectureOf(model).contextLength(model);
export const vocabSize = (model: AnyModel): number => architectureOf(model).vocabSize(model);

/** applyLoRA's default targets for a model type or a model. */
export function loraTargets(typeOrModel: string | AnyModel): string[] {
  return [...architecture(typeOrModel).loraTargets];
}

/** The Linear layers the batched generator applies LoRA factors to, by parameter path; null unless the model generates. */
export function generationLayers(model: AnyModel): Map<string, Linear> | null {
  return architectureOf(model).generationLayers?.(model) ?? null;
}

/**
 * Pooled embeddings of token sequences (each at most contextLength tokens), by the model's
 * recorded pooling (poolingOf: mean unless its config.json names another) or the one given.
 */
export function embedSequences(model: AnyModel, seqs: readonly (readonly number[])[], pooling: Pooling = poolingOf(model)): Float32Array[] {
  const a = architectureOf(model);
  if (a.embed === undefined) throw new TypeError(`embed: a ${a.modelType} model gives no sentence embeddings; supported: ${supportedTypes("embed")}`);
  checkPooling(pooling, "embed");
  if (pooling === "mean") return a.embed(model, seqs);
  const body = model as TextModel;
  const causal = can(model, "generate");
  const padId = causal ? (model as GPT).config.eos_token_id : 0;
  const out = new Array<Float32Array>(seqs.length);
  // Batches of at most 32, each in its own noGrad scope (a scope frees what it made when it ends).
  for (let b0 = 0; b0 < seqs.length; b0 += 32) {
    noGrad(() => {
      const rows = seqs.slice(b0, b0 + 32);
      const { pooled, inputs } = poolHidden(body, rows, pooling, { causal, padId });
      const C = pooled.shape[1], v = pooled.toArray() as Float32Array;
      rows.forEach((_, r) => (out[b0 + r] = v.slice(r * C, (r + 1) * C)));
      for (const t of inputs) if (!t.released) t.release();
    });
  }
  return out;
}

/** Chooses the model's pooling (recorded in config.json when it is saved); cls needs a bidirectional body. */
export function choosePooling(model: AnyModel, pooling: Pooling): void {
  if (!can(model, "embed")) throw new TypeError(`choosePooling: a ${architectureOf(model).modelType} model gives no sentence embeddings; supported: ${supportedTypes("embed")}`);
  setPooling(model, pooling, { causal: can(model, "generate") });
}

/** A freshly initialised model of the same architecture and config. */
export function createLike<M extends AnyModel>(model: M, seed: number): M {
  const a = architectureOf(model);
  // The entry that owns `model` builds its own class, so the result has M's class.
  const fresh = a.create({ ...a.configOf(model) }, { seed }) as M;
  if (poolingRecorded(model)) setPooling(fresh, poolingOf(model), { causal: can(model, "generate") });
  return fresh;
}

// ---- config.json and the folder ----

interface ConfigFile {
  path: string;
  raw: Record<string, unknown>;
}

function readConfigFile(dir: string, op: string): ConfigFile {
  const path = join(dir, "config.json");
  return { path, raw: readJson(path, op) };
}

/**
 * The one reader of config.json's model_type: the entry it names (or `expected`), refusing
 * unknown types and `architectures` the entry does not load.
 */
function architectureIn({ path, raw }: ConfigFile, op: string, expected?: ModelType): Architecture<AnyModel, AnyConfig> {
  const type = raw.model_type;
  if (expected !== undefined && type !== expected) throw new Error(`${op}: ${path} has model_type ${JSON.stringify(type)}, expected ${JSON.stringify(expected)}`);
  const a = ARCHITECTURES.find((e) => e.modelType === type);
  if (a === undefined) {
    throw new Error(`${op}: ${path} has model_type ${JSON.stringify(type)} (architectures ${JSON.stringify(raw.architectures ?? null)}); supported: ${supportedTypes()}`);
  }
  const classes = raw.architectures;
  if (Array.isArray(classes) && classes.length > 0 && !classes.some((c) => a.hfClasses.includes(c as string))) {
    throw new Error(`${op}: ${path} has architectures ${JSON.stringify(classes)}; for model_type ${a.modelType} Plinth loads ${a.hfClasses.join(", ")}`);
  }
  return a;
}

/** config.json's model_type, checked before any weights are read; the error names the supported types. */
export function readModelType(dir: string, op = "load"): ModelType {
  return architectureIn(readConfigFile(dir, op), op).modelType;
}

export interface LoadOptions {
  /** Names the operation in errors (default "load"). */
  op?: string;
  /**
   * A Hugging Face folder: dropout is set to 0 for inference (with a note) instead of kept
   * as a Plinth run's config has it; names, buffers and refusals are the same either way.
   */
  huggingFace?: boolean;
  /** Receives what loading adjusted. */
  notes?: string[];
  /** Matrices for inference: fp32 (default), bf16 or int8 (inference_weights.ts). */
  weights?: WeightFormat;
}

function build<M extends Module, C extends object>(a: Architecture<M, C>, dir: string, file: ConfigFile, { op = "load", huggingFace = false, notes = [], weights: format }: LoadOptions): M {
  if (format !== undefined) parseWeightFormat(format, `${op}: weights`);
  const config = a.readConfig(file.raw, { op, path: file.path, huggingFace, notes });
  const weights = a.mapWeights(readWeights(dir, op), `${op}: ${dir}`);
  const model = a.create(config);
  try {
    model.loadStateDict(weights);
  } catch (e) {
    throw new Error(`${op}: ${dir}: the weights do not fit ${a.hfClasses[0]} with this config.json: ${(e as Error).message}`);
  }
  const pooling = file.raw[POOLING_CONFIG_KEY];
  if (pooling !== undefined) {
    try {
      setPooling(model, checkPooling(pooling, `${op}: ${file.path}`), { causal: a.capabilities.includes("generate") });
    } catch (e) {
      throw new Error(`${op}: ${file.path}: ${POOLING_CONFIG_KEY}: ${(e as Error).message}`);
    }
  }
  if (format !== undefined && format !== "fp32") useInferenceWeights(model, format);
  return model;
}

/** A model folder of any registered architecture (config.json + model.safetensors, or HF shards). */
export function loadModel(dir: string, options: LoadOptions = {}): AnyModel {
  const op = options.op ?? "load";
  const file = readConfigFile(dir, op);
  return build(architectureIn(file, op), dir, file, options);
}

/** A model folder that must hold one architecture (loadGPT, loadBert, loadClip). */
export function loadArchitecture<M extends Module, C extends object>(a: Architecture<M, C>, dir: string, options: LoadOptions = {}): M {
  const op = options.op ?? "load";
  const file = readConfigFile(dir, op);
  architectureIn(file, op, a.modelType);
  return build(a, dir, file, options);
}

/** A folder's config.json read by one architecture's entry (readGPTConfig, readBertConfig, readClipConfig). */
export function readArchitectureConfig<M extends Module, C extends object>(a: Architecture<M, C>, dir: string, op = "load"): C {
  const file = readConfigFile(dir, op);
  architectureIn(file, op, a.modelType);
  return a.readConfig(file.raw, { op, path: file.path, huggingFace: false, notes: [] });
}

export function saveArchitecture<M extends Module, C extends object>(a: Architecture<M, C>, dir: string, model: M, metadata: Record<string, string> = {}, op = "save"): void {
  const named = model.namedParameters();
  if (!named.some(([n]) => n === a.embeddingKey)) {
    // namedParameters() lists trainable tensors; frozen base weights mean an adapter is applied.
    throw new Error(`${op}: the base weights are frozen (a LoRA adapter is applied?); save the base before applyLoRA, or remove() the adapter first`);
  }
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, RawTensor> = {};
  for (const [name, p] of named) tensors[name] = f32([...p.shape], p.toArray() as Float32Array);
  saveSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt", ...metadata });
  // The pooling is written only where it was chosen, so a default base's config.json stays as it was.
  const pooling = poolingRecorded(model) ? { [POOLING_CONFIG_KEY]: poolingOf(model) } : {};
  writeJsonAtomic(join(dir, "config.json"), { architectures: [a.hfClasses[0]], ...a.configOf(model), ...pooling });
}

/** Writes config.json (HF field names, `architectures`) and model.safetensors (metadata in its header). */
export function saveModel(dir: string, model: AnyModel, metadata: Record<string, string> = {}, op = "save"): void {
  saveArchitecture(architectureOf(model), dir, model, metadata, op);
}
