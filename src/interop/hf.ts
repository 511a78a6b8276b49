/**
 * Hugging Face folders both ways: `config.json`, `model.safetensors`, `tokenizer.json`,
 * `tokenizer_config.json` and `generation_config.json`, for GPT-2 (GPT2LMHeadModel), BERT
 * (BertForMaskedLM) and CLIP (CLIPModel). Import is the model registry's loader
 * (models/registry.ts) in its Hugging Face mode: it reads what Hugging Face writes (extra
 * config fields, dropout settings, tied-head copies, buffers, sharded weights) and refuses,
 * with the reason, what would compute something else: other architectures, attention
 * variants, the erf GELU, untied heads; here, tokenizers that disagree with the model.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/json.js";
import { readJson } from "../models/checkpoint.js";
import { type AnyModel, type ModelType, architectureOf, loadModel, saveModel, supportedTypes, vocabSize } from "../models/registry.js";
import { BPETokenizer } from "../tokenizer/index.js";

/** A model with its type, as an import returns it. */
export interface HFModel {
  kind: ModelType;
  model: AnyModel;
}

export interface HFImport extends HFModel {
  tokenizer: BPETokenizer | null;
  generation: Record<string, unknown> | null;
  /** What the import ignored or adjusted (e.g. dropout set to 0 for inference). */
  notes: string[];
}

export const SUPPORTED = supportedTypes();

/** The vocabulary size a model's tokenizer must have. */
export { vocabSize };

const OP = "import";

/** Writes the files (config.json, model.safetensors, and the architecture's generation and tokenizer files); returns their names. */
export function exportHF(dir: string, m: HFModel | AnyModel, tokenizer: BPETokenizer | null): string[] {
  const model = "kind" in m ? m.model : m;
  const arch = architectureOf(model);
  const V = arch.vocabSize(model);
  if (tokenizer !== null && tokenizer.vocabSize !== V) {
    throw new Error(`export: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${V}; a model must be exported with the tokenizer it was trained with`);
  }
  mkdirSync(dir, { recursive: true });
  const files = ["config.json", "model.safetensors"];
  saveModel(dir, model, { producer: "plinth" }, "export");
  const extra = arch.hfExport(model, tokenizer);
  if (extra.config !== undefined) writeJsonAtomic(join(dir, "config.json"), { architectures: [arch.hfClasses[0]], ...arch.configOf(model), ...extra.config });
  if (extra.generation !== undefined) {
    writeJsonAtomic(join(dir, "generation_config.json"), extra.generation);
    files.push("generation_config.json");
  }
  if (tokenizer !== null) {
    if (extra.tokenizer !== undefined) writeJsonAtomic(join(dir, "tokenizer_config.json"), extra.tokenizer);
    tokenizer.save(join(dir, "tokenizer.json"));
    files.push("tokenizer.json", "tokenizer_config.json");
  }
  return files;
}

// ---- import ----

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

/**
 * Loads a Hugging Face folder into Plinth: the registry's loader with the architecture's HF key
 * map and refusals, dropout set to 0 for inference, then the tokenizer and generation files.
 */
export function importHF(dir: string): HFImport {
  if (!existsSync(dir)) throw new Error(`${OP}: ${dir} does not exist`);
  const notes: string[] = [];
  const model = loadModel(dir, { op: OP, huggingFace: true, notes });
  const kind = architectureOf(model).modelType;
  const V = vocabSize(model);
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
  return { kind, model, tokenizer, generation, notes };
}
