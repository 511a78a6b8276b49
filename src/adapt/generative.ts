/**
 * Generative fine-tuning: teach a causal-LM base a format, a voice or a code base from chats,
 * prompt/completion pairs or plain text, with LoRA (the registry's projection targets) or every
 * weight, through the one Trainer and the supervised LM objective (train/sft.ts). The adapter is
 * bound to its base by content hash like every other, carries the chat template it was trained
 * with, and LoRA factors are served by the multi-LoRA scheduler as they are.
 *
 *     const r = await runGenerative({ base: "runs/small", method: "lora", data: "chats.jsonl", out: "runs/chat-lora" });
 *     r.before.loss, r.after.loss, r.after.exactMatch;   // held-out assistant tokens, greedy replies
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { RawTensor } from "../io/safetensors.js";
import { f32 } from "../io/safetensors.js";
import { can, contextLength, loraTargets } from "../models/registry.js";
import type { GPT } from "../models/gpt/model.js";
import { generate } from "../models/gpt/generate.js";
import { memoryStats } from "../tensor/tensor.js";
import { chatTemplateFor, type ChatTemplate } from "../tokenizer/chat_template.js";
import { type TextTokenizer, withAddedTokens } from "../data/tokenizer.js";
import { ADDED_ROWS } from "./lora_factors.js";
import { type GenerativeRecord, loadGenerativeData, promptAndReference, splitGenerative, tokenizeExamples } from "../tasks/chat.js";
import { TaskError } from "../tasks/task.js";
import { type Parser, parsesAsTypeScript } from "../tasks/code_parse.js";
import { packSequences, packedLoss, supervisedLM } from "../train/sft.js";
import { AbortedError, Trainer } from "../train/trainer.js";
import { PreemptedError, TrainedTensors, dropoutRngs, loggedLosses } from "./finetune.js";
import { AdapterError, saveAdapter } from "./artifact.js";
import { loadBase } from "./base.js";
import { applyLoRA, type LoRAHandle } from "./lora.js";

export const GENERATIVE_METHODS = ["lora", "full"] as const;
export const GENERATIVE_DEFAULT_LR: Record<string, number> = { lora: 2e-3, full: 3e-4 };

export interface GenerativeSpec {
  base: string;
  method: "lora" | "full";
  /** A chat or prompt/completion .jsonl, or plain text (file, folder, glob, built-in source). */
  data: string;
  out?: string;
  /** A separate held-out file (default: valFraction of `data`). */
  validation?: string;
  valFraction?: number;
  seed?: number;
  splitSeed?: number;
  steps?: number;
  epochs?: number;
  lr?: number;
  /** Scales the method's default learning rate (OpenAI's learning_rate_multiplier) when lr is not given. */
  lrMultiplier?: number;
  batchSize?: number;
  /** Row length (default the base's context). */
  ctx?: number;
  lora?: { rank?: number; alpha?: number; dropout?: number; targets?: string[] };
  /**
   * Add the chat template's role markers to the tokenizer as tokens of their own, with embedding
   * (and tied head) rows the adapter trains (default false; a template without markers adds none).
   * Off by default: on the small bases tried so far, the shorter chats pack more examples into a
   * row (packed examples see each other) and fewer optimizer steps make an epoch, and the same
   * epochs taught the format less well than with the markers read as text.
   */
  roleTokens?: boolean;
  /** Held-out examples whose greedy reply is compared with the reference (default 32). */
  maxTest?: number;
  /** Code: the parser whose parse rate of greedy replies the scores report (before and after). */
  parse?: Parser;
  /** Validations during training (default 10), so the job's events carry a validation curve. */
  evaluations?: number;
  /**
   * Training checkpoints go here (every 100 steps, and when preempted): a run with the same spec
   * and folder resumes from the newest, exactly (the same batches, dropout masks and losses).
   */
  checkpointDir?: string;
}

export interface GenerativeScores {
  /** Mean cross-entropy per held-out learned token (NaN without held-out data). */
  loss: number;
  perplexity: number;
  /** Share of held-out prompts whose greedy reply equals the reference (trimmed); NaN for plain text. */
  exactMatch: number;
  /** Mean normalised character similarity of the greedy reply to the reference (1 - edit distance / longer length). */
  similarity: number;
  /**
   * With a parser (code): the share of greedy replies that parse, a completion read after its
   * prompt, a chat reply alone; NaN without one.
   */
  parseRate: number;
  tokens: number;
  examples: number;
}

export interface GenerativeProgress {
  step: number;
  total: number;
  loss?: number;
  valLoss?: number;
  tokens?: number;
  elapsedSeconds: number;
}

export interface GenerativeOutcome {
  out: string | null;
  method: "lora" | "full";
  format: "chat" | "completion" | "text";
  trainExamples: number;
  valExamples: number;
  before: GenerativeScores;
  after: GenerativeScores;
  steps: number;
  losses: number[];
  valLosses: { step: number; loss: number }[];
  trainableParameters: number;
  totalParameters: number;
  trainingTokens: number;
  seconds: number;
  trainSeconds: number;
  peakRssBytes: number;
  peakTensorBytes: number;
  adapterBytes: number;
}

/** Levenshtein similarity in [0, 1] (1: equal strings). */
export function stringSimilarity(a: string, b: string): number {
  if (a === b) return 1;
  const n = a.length, m = b.length;
  if (n === 0 || m === 0) return 0;
  let prev = Array.from({ length: m + 1 }, (_, j) => j), cur = new Array<number>(m + 1);
  for (let i = 1; i <= n; i++) {
    cur[0] = i;
    for (let j = 1; j <= m; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    [prev, cur] = [cur, prev];
  }
  return 1 - prev[m] / Math.max(n, m);
}

/** Greedy replies to held-out prompts against their references. */
export function greedyMatch(model: GPT, tok: TextTokenizer, template: ChatTemplate, records: readonly GenerativeRecord[], maxExamples: number, parse?: Parser): { exactMatch: number; similarity: number; parseRate: number; replies: { reference: string; reply: string; parses?: boolean }[] } {
  const replies: { reference: string; reply: string; parses?: boolean }[] = [];
  const ctx = model.config.n_positions;
  for (const r of records) {
    if (replies.length >= maxExamples) break;
    const pr = promptAndReference(r, template, tok);
    if (pr === null || pr.prompt.length >= ctx) continue;
    const refTokens = tok.encode(pr.reference).length;
    const maxNewTokens = Math.max(1, Math.min(ctx - pr.prompt.length, refTokens + 8));
    const { tokens } = generate(model, pr.prompt, { maxNewTokens, temperature: 0, stopTokens: [tok.eot] });
    const reply = tok.decode(tokens);
    replies.push({ reference: pr.reference, reply, ...(parse === undefined ? {} : { parses: parsesAsTypeScript(r.kind === "completion" ? r.prompt + reply : reply) }) });
  }
  if (replies.length === 0) return { exactMatch: NaN, similarity: NaN, parseRate: NaN, replies };
  const exact = replies.filter((r) => r.reply.trim() === r.reference.trim()).length / replies.length;
  const sim = replies.reduce((s, r) => s + stringSimilarity(r.reply.trim(), r.reference.trim()), 0) / replies.length;
  const parseRate = parse === undefined ? NaN : replies.filter((r) => r.parses).length / replies.length;
  return { exactMatch: exact, similarity: sim, parseRate, replies };
}

/** Held-out scores of a model as it is: loss on learned tokens, and greedy replies. */
export function scoreGenerative(model: GPT, tok: TextTokenizer, template: ChatTemplate, records: readonly GenerativeRecord[], { ctx, batch = 8, maxTest = 32, source = "held-out", parse }: { ctx?: number; batch?: number; maxTest?: number; source?: string; parse?: Parser } = {}): GenerativeScores & { replies: { reference: string; reply: string; parses?: boolean }[] } {
  const T = Math.min(ctx ?? model.config.n_positions, model.config.n_positions);
  const wasTraining = model.training;
  model.eval();
  try {
    const ex = records.length === 0 ? [] : tokenizeExamples({ source, format: records[0].kind, records: [...records] }, tok, template, { ctx: T });
    const { loss, tokens } = ex.length === 0 ? { loss: NaN, tokens: 0 } : packedLoss(model, packSequences(ex, T, tok.eot), batch);
    const m = maxTest > 0 ? greedyMatch(model, tok, template, records, maxTest, parse) : { exactMatch: NaN, similarity: NaN, parseRate: NaN, replies: [] };
    return { loss, perplexity: Math.exp(loss), exactMatch: m.exactMatch, similarity: m.similarity, parseRate: m.parseRate, tokens, examples: records.length, replies: m.replies };
  } finally {
    model.train(wasTraining);
  }
}

const countOf = (ts: { size: number }[]): number => ts.reduce((s, t) => s + t.size, 0);

/**
 * `preempt` (with spec.checkpointDir): aborting it checkpoints after the current step and stops;
 * runGenerative then rejects with PreemptedError, and a later call with the same spec resumes.
 */
export async function runGenerative(spec: GenerativeSpec, { onProgress, signal, preempt }: { onProgress?: (p: GenerativeProgress) => void; signal?: AbortSignal; preempt?: AbortSignal } = {}): Promise<GenerativeOutcome> {
  if (preempt !== undefined && spec.checkpointDir === undefined) throw new RangeError("runGenerative: preempt needs spec.checkpointDir (a preempted run resumes from its checkpoint)");
  const start = Date.now();
  if (!(GENERATIVE_METHODS as readonly string[]).includes(spec.method)) throw new TaskError(`generative fine-tuning: method ${JSON.stringify(spec.method)}; methods are ${GENERATIVE_METHODS.join(", ")}`);
  const seed = spec.seed ?? 0;
  const base = loadBase(spec.base);
  const model = base.model;
  if (!can(model, "generate")) throw new AdapterError(`base ${spec.base}: generative fine-tuning needs a causal LM (gpt2) base, this one is ${base.kind}`);
  const gpt = model as GPT;
  const template = chatTemplateFor(base.dir, { write: true });
  // The role markers become tokens of their own (ids after the base's vocabulary), for chats only:
  // prompt/completion pairs and plain text have none. Each row starts as the mean of the rows of the
  // tokens its text was read as before (distinct from the start, and near what the base knows).
  const probe = loadGenerativeData(spec.data);
  const addedTokens = spec.roleTokens !== true || probe.format !== "chat" ? [] : template.roleMarkers().filter((t) => base.tok.special(t) === undefined);
  const tok = withAddedTokens(base.tok, addedTokens);
  const addedRows = addedTokens.length > 0 ? gpt.addTokens(addedTokens.length, meanRows(gpt, addedTokens.map((t) => Array.from(base.tok.encode(t))))) : null;
  const ctx = Math.min(spec.ctx ?? contextLength(gpt), contextLength(gpt));
  const data = probe;
  let trainRecords: GenerativeRecord[], valRecords: GenerativeRecord[];
  if (spec.validation !== undefined) {
    trainRecords = data.records;
    valRecords = loadGenerativeData(spec.validation).records;
  } else {
    ({ train: trainRecords, val: valRecords } = splitGenerative(data.records, spec.valFraction ?? 0.1, spec.splitSeed ?? 0));
  }
  const train = tokenizeExamples({ ...data, records: trainRecords }, tok, template, { ctx });
  const batch = spec.batchSize ?? 8;
  const maxTest = spec.maxTest ?? 32;
  // Before: the base as the adapter starts from it (any role tokens at their first rows).
  const before = scoreGenerative(gpt, tok, template, valRecords, { ctx, batch, maxTest, source: data.source, parse: spec.parse });

  const totalParameters = countOf(gpt.parameters());
  let handle: LoRAHandle | null = null;
  let trainable = gpt.parameters();
  if (spec.method === "lora") {
    const { rank = 8, alpha = 2 * rank, dropout = 0.05, targets } = spec.lora ?? {};
    handle = applyLoRA(gpt, { rank, alpha, dropout, targets: targets ?? loraTargets(gpt), seed });
    trainable = handle.trainableParameters();
    // The added tokens' rows train beside the factors (applyLoRA froze them with the base).
    if (addedRows !== null) {
      addedRows.requiresGrad = true;
      trainable = [...trainable, addedRows];
    }
  }
  const objective = supervisedLM(gpt, { train, val: tokenizeExamples({ ...data, records: valRecords.length > 0 ? valRecords : trainRecords.slice(0, 1) }, tok, template, { ctx }), batch, ctx, pad: tok.eot });
  const rowsPerEpoch = packSequences(train, ctx, tok.eot).length;
  const epochs = spec.epochs ?? 3;
  const steps = spec.steps ?? Math.max(1, Math.ceil((epochs * rowsPerEpoch) / batch));
  const lr = spec.lr ?? GENERATIVE_DEFAULT_LR[spec.method] * (spec.lrMultiplier ?? 1);
  const decay = trainable.filter((t) => t.ndim >= 2), noDecay = trainable.filter((t) => t.ndim < 2);
  const valLosses: { step: number; loss: number }[] = [];
  const trainer = new Trainer({
    objective, paramGroups: [{ params: decay, weightDecay: spec.method === "full" ? 0.01 : 0 }, { params: noDecay, weightDecay: 0 }], parameters: trainable,
    lr, minLr: lr * 0.1, warmup: Math.max(1, Math.round(steps * 0.05)), betas: [0.9, 0.999], eps: 1e-8, clip: 1.0, steps, seed,
    evalEvery: valRecords.length === 0 ? steps + 1 : Math.max(1, Math.ceil(steps / (spec.evaluations ?? 10))), quiet: true, handleSignals: false, signal,
    onStep: (r) => {
      if (r.valLoss !== undefined) valLosses.push({ step: r.step, loss: r.valLoss });
      onProgress?.({ step: r.step, total: steps, loss: r.loss, valLoss: r.valLoss, tokens: r.seen, elapsedSeconds: r.seconds });
    },
    // Checkpoints hold the trained tensors (LoRA factors, or every weight) and the dropout
    // generators of the body and its LoRA layers, beside the trainer's data order and optimizer.
    ...(spec.checkpointDir === undefined ? {} : {
      model: new TrainedTensors(trainable, dropoutRngs(gpt, ...(handle?.layers.map(([, l]) => l) ?? []))), outDir: spec.checkpointDir, checkpointEvery: 100, keepLast: 2,
    }),
  });
  const stop = () => trainer.requestStop("preempted");
  preempt?.addEventListener("abort", stop, { once: true });
  if (preempt?.aborted) stop();
  const t0 = Date.now();
  gpt.train(true);
  let result;
  try {
    trainer.resume();
    result = await trainer.run();
    if (result.stoppedBy === "signal") throw new PreemptedError(result.steps, steps);
  } catch (e) {
    throw e instanceof AbortedError ? new AbortedError("the adaptation was cancelled") : e;
  } finally {
    preempt?.removeEventListener("abort", stop);
    trainer.opt.release();
    for (const t of trainable) {
      t.grad?.release();
      t.grad = null;
    }
    gpt.eval();
  }
  const trainSeconds = (Date.now() - t0) / 1000;
  const resumed = result.resumedFrom !== null && spec.checkpointDir !== undefined;

  const tensors: Record<string, RawTensor> = {};
  if (handle !== null) {
    Object.assign(tensors, handle.tensors());
    if (addedRows !== null) tensors[ADDED_ROWS] = f32([...addedRows.shape], addedRows.toArray() as Float32Array);
  } else for (const [name, p] of gpt.namedParameters()) tensors[name] = f32([...p.shape], p.toArray() as Float32Array);
  handle?.merge();
  const after = scoreGenerative(gpt, tok, template, valRecords, { ctx, batch, maxTest, source: data.source, parse: spec.parse });

  let adapterBytes = 0;
  if (spec.out !== undefined) {
    const config: Record<string, unknown> = {
      objective: "lm", format: data.format, data: spec.data, chat_template: template.source, added_tokens: addedTokens, ctx, steps: result.steps, epochs, lr, batchSize: batch, seed,
      heldOut: { before: strip(before), after: strip(after) },
      ...(handle !== null ? { lora: handle.config } : {}),
    };
    saveAdapter(spec.out, { method: spec.method, task: "lm", labels: [], config, base: base.identity }, tensors);
    adapterBytes = statSync(join(spec.out, "adapter.safetensors")).size;
  }
  return {
    out: spec.out ?? null, method: spec.method, format: data.format, trainExamples: trainRecords.length, valExamples: valRecords.length,
    before: strip(before), after: strip(after), steps: result.steps,
    // A resumed run's history starts at its checkpoint; the log in the checkpoint folder holds every step.
    losses: resumed ? loggedLosses(join(spec.checkpointDir!, "metrics.jsonl")) : result.history.map((h) => h.loss),
    valLosses: resumed ? loggedValLosses(join(spec.checkpointDir!, "metrics.jsonl")) : valLosses,
    trainableParameters: countOf(trainable), totalParameters,
    trainingTokens: result.seen, seconds: (Date.now() - start) / 1000, trainSeconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024, peakTensorBytes: memoryStats().peakNativeBytes, adapterBytes,
  };
}

/** For each list of ids, the mean of their wte rows ([lists, C]). */
function meanRows(gpt: GPT, lists: number[][]): Float32Array {
  const C = gpt.config.n_embd, wte = gpt.transformer.wte.weight.toArray() as Float32Array;
  const out = new Float32Array(lists.length * C);
  lists.forEach((ids, k) => {
    for (const id of ids) for (let c = 0; c < C; c++) out[k * C + c] += wte[id * C + c] / ids.length;
  });
  return out;
}

/** The validation losses a checkpointed run logged, across resumes. */
function loggedValLosses(path: string): { step: number; loss: number }[] {
  return readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as { step: number; valLoss?: number })
    .filter((r) => r.valLoss !== undefined).map((r) => ({ step: r.step, loss: r.valLoss! }));
}


function strip(s: GenerativeScores & { replies?: unknown }): GenerativeScores {
  const { loss, perplexity, exactMatch, similarity, parseRate, tokens, examples } = s;
  return { loss, perplexity, exactMatch, similarity, parseRate, tokens, examples };
}
