/**
 * What an adaptation starts from: the base model folder (GPT-2 or BERT, by config.json's
 * model_type, with its tokenizer.json) and the task (a built-in name, or a JSONL/CSV file of
 * {text, label} or {text_a, text_b, label} rows), plus the prompt a zero-/few-shot method uses.
 *
 *     const base = loadBase("runs/default");          // { model, tok, kind: "gpt2", dir, identity }
 *     const task = resolveTask("sentiment");          // tasks/resolve.ts; or resolveTask("data/reviews.jsonl")
 *     const prompt = promptFor(task, base.kind);      // template + verbalizers
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { type TextTokenizer, tokenizerFor } from "../data/tokenizer.js";
import { type ModelType, can, loadModel, readModelType, supports, typesWith } from "../models/registry.js";
import type { WeightFormat } from "../models/inference_weights.js";
import type { Task } from "../tasks/task.js";
import { AdapterError, type BaseIdentity, baseIdentity } from "./artifact.js";
import type { Encoder } from "./probe.js";

/** The base's model_type: one with the "classify" capability (gpt2, bert). */
export type BaseKind = ModelType;

export interface LoadedBase {
  dir: string;
  kind: BaseKind;
  model: Encoder;
  tok: TextTokenizer;
  identity: BaseIdentity;
}

/** The base's model_type, checked before any weights are read. */
export function baseKind(dir: string): BaseKind {
  const config = join(dir, "config.json");
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new AdapterError(`base ${dir}: not a folder (expected a model folder with config.json and model.safetensors, e.g. runs/default from npm start)`);
  if (!existsSync(config)) throw new AdapterError(`base ${dir}: ${config} does not exist (expected a model folder with config.json and model.safetensors)`);
  let type: ModelType;
  try {
    type = readModelType(dir, `base ${dir}`);
  } catch (e) {
    throw new AdapterError((e as Error).message);
  }
  if (supports(type, "classify")) return type;
  throw new AdapterError(`base ${dir}: model_type ${JSON.stringify(type)} is not supported for adaptation (expected ${typesWith("classify").map((t) => JSON.stringify(t)).join(" or ")})`);
}

/** `weights`: the base's matrices for inference (bf16 or int8 packed; training reads float32 either way). */
export function loadBase(dir: string, weights: WeightFormat = "fp32"): LoadedBase {
  const kind = baseKind(dir);
  const identity = baseIdentity(dir);
  const model = loadModel(dir, { weights });
  if (!can(model, "classify")) throw new AdapterError(`base ${dir}: a ${kind} model is not a text base for adaptation`);
  model.eval();
  return { dir, kind, model, tok: tokenizerFor(dir), identity };
}


export interface TaskPrompt {
  /** Causal-LM prompt with {text} (or {text_a}/{text_b}); the verbalizer follows it. */
  template: string;
  /** Masked-LM cloze with one [MASK]. */
  cloze: string;
  verbalizers: Record<string, string>;
}

const BUILTIN_PROMPTS: Record<string, TaskPrompt> = {
  sentiment: {
    template: "Review: {text}\nSentiment:",
    cloze: "{text} It was [MASK].",
    verbalizers: { negative: " bad", positive: " good" },
  },
  spam: {
    template: "{text}\nThis message is",
    cloze: "{text} This message is [MASK].",
    verbalizers: { ham: " personal", spam: " advertising" },
  },
  "sotu-party": {
    template: "{text}\nThe President's party:",
    cloze: "{text} The President is a [MASK].",
    verbalizers: { Democratic: " Democrat", Republican: " Republican" },
  },
};

/** The task's prompt: the built-in one, else a generic "{text}\nLabel:" with each label as its own verbalizer. */
export function promptFor(task: Task, overrides: Partial<TaskPrompt> = {}): TaskPrompt {
  const known = BUILTIN_PROMPTS[task.name] ?? task.prompt;  // a suite task ships its own
  const builtin = known !== undefined && task.labels.every((l) => l in known.verbalizers) ? known : undefined;
  const generic: TaskPrompt = {
    template: "{text}\nLabel:",
    cloze: "{text} Label: [MASK].",
    verbalizers: Object.fromEntries(task.labels.map((l) => [l, ` ${l}`])),
  };
  return { ...(builtin ?? generic), ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
}
