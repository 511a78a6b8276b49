/**
 * One adaptation, end to end: load the base and the task, sample k labels per class, adapt by
 * the chosen method, score the held-out split, and (given `out`) write the adapter artifact.
 * The same call backs `plinth adapt`, the evaluation harness, and fine-tuning jobs of the server
 * (which run it in a worker process: see worker.ts).
 *
 *     const r = await runAdaptation({ base: "runs/default", method: "lora", task: "sentiment", labelsPerClass: 32, out: "runs/sentiment-lora" });
 *     r.metrics.accuracy; r.trainableParameters; r.seconds;
 *
 * Methods: zero-shot and few-shot (label likelihood or cloze, calibrated), probe (frozen pooled
 * features + logistic regression), head (frozen body + linear head), full (every weight), lora
 * (low-rank updates of the projections + head), prototype and knn (cosine nearest class mean /
 * k nearest labeled examples on the frozen embeddings, no training: neighbours.ts), setfit
 * (contrastive tuning of the body on pairs of the labels, then a probe: setfit.ts), and scratch:
 * the baseline, the same architecture from a random initialisation fine-tuned on the same labels
 * (it writes no adapter).
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import type { RawTensor } from "../io/safetensors.js";
import { f32 } from "../io/safetensors.js";
import { accuracy, argmax, expectedCalibrationError, logLoss, macroF1 } from "../tasks/metrics.js";
import { type Example, type Task, TaskError, exampleText, labelIndex, sampleKShot } from "../tasks/task.js";
import { can, loraTargets, poolingOf } from "../models/registry.js";
import { memoryStats } from "../tensor/tensor.js";
import { type AdapterManifest, saveAdapter, probeTensors } from "./artifact.js";
import { type TaskPrompt, loadBase, promptFor } from "./base.js";
import { resolveTask } from "../tasks/resolve.js";
import { SequenceClassifier, freshLike } from "./classifier.js";
import { dropoutRngs, fineTune, type FineTuneResult } from "./finetune.js";
import { launchedRank } from "../native/mpi.js";
import { joinIfLaunched } from "../train/parallel/index.js";
import { applyLoRA } from "./lora.js";
import { embedTexts, probeProbs, trainProbe } from "./probe.js";
import { fitNeighbours, fitPrototypes, neighbourProbs, neighbourTensors, prototypeProbs, prototypeTensors } from "./neighbours.js";
import { type SetFitBody, trainSetFit } from "./setfit.js";
import { classifyCausal, classifyMasked } from "./zeroshot.js";

export const ADAPT_METHODS = ["zero-shot", "few-shot", "probe", "prototype", "knn", "setfit", "head", "full", "lora", "scratch"] as const;
export type AdaptMethod = (typeof ADAPT_METHODS)[number];

export interface AdaptSpec {
  /** The base model folder (config.json + model.safetensors + tokenizer.json). */
  base: string;
  method: AdaptMethod;
  /** A built-in task name or a JSONL/CSV file. */
  task: string;
  /** Where to write the adapter (nothing is written without it). */
  out?: string;
  /** Labeled training examples per class (k); default: the whole training split. */
  labelsPerClass?: number | "all";
  /** Seeds which k examples are labeled and the training. */
  seed?: number;
  /** Seeds a task's train/test split (default 0: every seed is scored on the same test split). */
  splitSeed?: number;
  steps?: number;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  /** Score at most this many held-out examples (the first ones of the seeded split). */
  maxTest?: number;
  /** A separate test file for a file task, and the label order. */
  testFile?: string;
  labels?: string[];
  maxTokens?: number;
  lora?: { rank?: number; alpha?: number; dropout?: number; targets?: string[] };
  /**
   * setfit: pairs drawn in all, pairs per step, and whether LoRA (of `rank` and `alpha`) or every
   * weight of the body is tuned (lr is spec.lr; a rank without a body means LoRA).
   */
  setfit?: { pairs?: number; batchPairs?: number; body?: SetFitBody; rank?: number; alpha?: number };
  /** knn: the number of neighbours (default: chosen by leave-one-out on the labels). */
  knnK?: number;
  prompt?: Partial<TaskPrompt>;
  /** Contextual calibration for zero-/few-shot (default true). */
  calibrate?: boolean;
  /**
   * Training checkpoints go here (head, lora, full, setfit): a run with the same spec and folder resumes
   * from the newest, so a preempted or interrupted job continues where it stopped.
   */
  checkpointDir?: string;
}

export interface AdaptProgress {
  step: number;
  total: number;
  loss?: number;
  tokens?: number;
  elapsedSeconds: number;
}

export interface AdaptMetrics {
  accuracy: number;
  macroF1: number;
  ece: number;
  logLoss: number;
}

export interface AdaptOutcome {
  out: string | null;
  method: AdaptMethod;
  task: string;
  labels: string[];
  labelsPerClass: number | "all";
  seed: number;
  trainExamples: number;
  testExamples: number;
  metrics: AdaptMetrics;
  trainableParameters: number;
  totalParameters: number;
  trainingTokens: number;
  /** Wall time of the whole call, and of the training part alone. */
  seconds: number;
  trainSeconds: number;
  /** The process's peak resident set and the tensors' peak native bytes (both since process start). */
  peakRssBytes: number;
  peakTensorBytes: number;
  /** Size of adapter.safetensors (0 when nothing was written). */
  adapterBytes: number;
  losses: number[];
}

export interface AdaptOptions {
  onProgress?: (p: AdaptProgress) => void;
  signal?: AbortSignal;
  /** Aborting it checkpoints and stops the training (needs spec.checkpointDir): runAdaptation then rejects with PreemptedError. */
  preempt?: AbortSignal;
  /** A task already loaded (the harness reuses one across runs). */
  task?: Task;
}

const DEFAULT_LR: Record<string, number> = { head: 3e-3, full: 3e-4, lora: 1e-3, scratch: 1e-3 };

/** The training examples: k per class (seeded), or all; every label must be present. */
export function trainingExamples(task: Task, k: number | "all", seed: number): Example[] {
  const train = k === "all" ? task.train : sampleKShot(task, k, seed);
  if (train.length === 0) throw new TaskError(`task ${task.name}: no training examples (the training split is empty)`);
  for (const l of task.labels) {
    if (k !== 0 && !train.some((e) => e.label === l)) {
      throw new TaskError(`task ${task.name}: label ${JSON.stringify(l)} is missing from the training split; every label needs at least one training example`);
    }
  }
  return train;
}

function scoreMetrics(probs: number[][], gold: number[]): AdaptMetrics {
  const pred = probs.map(argmax);
  return { accuracy: accuracy(pred, gold), macroF1: macroF1(pred, gold, probs[0]?.length), ece: expectedCalibrationError(probs, gold), logLoss: logLoss(probs, gold) };
}

const countOf = (ts: { size: number }[]): number => ts.reduce((s, t) => s + t.size, 0);


export async function runAdaptation(spec: AdaptSpec, opts: AdaptOptions = {}): Promise<AdaptOutcome> {
  const start = Date.now();
  if (!(ADAPT_METHODS as readonly string[]).includes(spec.method)) {
    throw new TaskError(`unknown adaptation method ${JSON.stringify(spec.method)}; methods are ${ADAPT_METHODS.join(", ")}`);
  }
  const ranks = launchedRank()?.size ?? 1;
  if (ranks > 1 && spec.method !== "full") throw new TaskError(`only --method full runs data-parallel; ${spec.method} runs in one process (this is one of ${ranks} MPI ranks)`);
  const seed = spec.seed ?? 0;
  const k = spec.labelsPerClass ?? "all";
  if (k !== "all" && (!Number.isInteger(k) || k < 0)) throw new RangeError(`labelsPerClass must be a non-negative integer or "all", got ${String(k)}`);
  if (k === 0 && spec.method !== "zero-shot") throw new RangeError(`method ${spec.method} needs labels: labelsPerClass 0 only suits zero-shot`);
  const task = opts.task ?? resolveTask(spec.task, { seed: spec.splitSeed ?? 0, test: spec.testFile, labels: spec.labels });
  const base = loadBase(spec.base);
  const test = spec.maxTest !== undefined ? task.test.slice(0, spec.maxTest) : task.test;
  if (test.length === 0) throw new TaskError(`task ${task.name}: the test split is empty`);
  const train = spec.method === "zero-shot" ? [] : trainingExamples(task, k, seed);
  const gold = test.map((e) => labelIndex(task, e.label));
  const y = train.map((e) => labelIndex(task, e.label));
  const totalParameters = countOf(base.model.parameters());
  const progress = opts.onProgress;
  const outcome = (probs: number[][], part: { trainable: number; tensors: Record<string, RawTensor> | null; config: Record<string, unknown>; ft?: FineTuneResult; trainSeconds: number }): AdaptOutcome => {
    let adapterBytes = 0;
    if (spec.out !== undefined && part.tensors !== null) {
      saveAdapter(spec.out, { method: spec.method, task: task.name, labels: task.labels, config: { ...part.config, labelsPerClass: k, seed }, base: base.identity }, part.tensors);
      adapterBytes = statSync(join(spec.out, "adapter.safetensors")).size;
    }
    return {
      out: spec.out !== undefined && part.tensors !== null ? spec.out : null,
      method: spec.method, task: task.name, labels: task.labels, labelsPerClass: k, seed,
      trainExamples: train.length, testExamples: test.length, metrics: scoreMetrics(probs, gold),
      trainableParameters: part.trainable, totalParameters, trainingTokens: part.ft?.tokens ?? 0,
      seconds: (Date.now() - start) / 1000, trainSeconds: part.trainSeconds,
      peakRssBytes: process.resourceUsage().maxRSS * 1024, peakTensorBytes: memoryStats().peakNativeBytes,
      adapterBytes, losses: part.ft?.losses ?? [],
    };
  };

  if (spec.method === "zero-shot" || spec.method === "few-shot") {
    const prompt = promptFor(task, spec.prompt);
    const calibrate = spec.calibrate ?? true;
    if (spec.method === "few-shot" && !can(base.model, "generate")) throw new TaskError("few-shot in-context prompting needs a causal LM (gpt2) base; use probe, head, lora or full with a BERT base");
    const t0 = Date.now();
    const result = can(base.model, "generate")
      ? classifyCausal(base.model, base.tok, task.labels, test, { template: prompt.template, verbalizers: prompt.verbalizers, demonstrations: train, calibrate })
      : classifyMasked(base.model, base.tok, task.labels, test, { template: prompt.cloze, verbalizers: prompt.verbalizers, calibrate });
    progress?.({ step: 1, total: 1, elapsedSeconds: (Date.now() - t0) / 1000 });
    // How many demonstrations fit beside each query (the context holds no more than fit).
    const used = result.demonstrationsUsed ?? [];
    const demonstrationsUsed = used.length === 0 ? null : { mean: used.reduce((a, b) => a + b, 0) / used.length, min: Math.min(...used), max: Math.max(...used), of: train.length };
    const config = { ...prompt, calibrate, calibration: result.calibration, demonstrations: train.map((e) => ({ ...e })), ...(spec.method === "few-shot" ? { demonstrationsUsed } : {}) };
    return outcome(result.probs, { trainable: 0, tensors: {}, config, trainSeconds: 0 });
  }

  const maxTokens = spec.maxTokens ?? 128;
  if (spec.method === "probe") {
    const t0 = Date.now();
    const X = embedTexts(base.model, base.tok, train.map((e) => exampleText(e)), { maxTokens });
    const { probe, history } = trainProbe(X, y, task.labels.length, { seed });
    const trainSeconds = (Date.now() - t0) / 1000;
    progress?.({ step: history.length, total: history.length, loss: history.at(-1)?.trainLoss, elapsedSeconds: trainSeconds });
    const probs = probeProbs(probe, embedTexts(base.model, base.tok, test.map((e) => exampleText(e)), { maxTokens }));
    return outcome(probs, { trainable: probe.dim * probe.numClasses + probe.numClasses, tensors: probeTensors(probe), config: { maxTokens, pooling: poolingOf(base.model) }, trainSeconds });
  }

  if (spec.method === "prototype" || spec.method === "knn") {
    const t0 = Date.now();
    const pooling = poolingOf(base.model);
    const X = embedTexts(base.model, base.tok, train.map((e) => exampleText(e)), { maxTokens });
    const Xtest = embedTexts(base.model, base.tok, test.map((e) => exampleText(e)), { maxTokens });
    if (spec.method === "prototype") {
      const p = fitPrototypes(X, y, task.labels.length);
      const trainSeconds = (Date.now() - t0) / 1000;
      progress?.({ step: 1, total: 1, elapsedSeconds: trainSeconds });
      return outcome(prototypeProbs(p, Xtest), { trainable: 0, tensors: prototypeTensors(p), config: { maxTokens, pooling, scale: p.scale }, trainSeconds });
    }
    const n = fitNeighbours(X, y, task.labels.length, { k: spec.knnK });
    const trainSeconds = (Date.now() - t0) / 1000;
    progress?.({ step: 1, total: 1, elapsedSeconds: trainSeconds });
    return outcome(neighbourProbs(n, Xtest), { trainable: 0, tensors: neighbourTensors(n), config: { maxTokens, pooling, k: n.k, scale: n.scale }, trainSeconds });
  }

  if (spec.method === "setfit") {
    const r = await trainSetFit(base.model, base.tok, train.map((e) => exampleText(e)), y, task.labels.length, {
      ...spec.setfit, lr: spec.lr, maxTokens, seed, signal: opts.signal, onProgress: progress,
      ...(spec.checkpointDir === undefined ? {} : { checkpoint: { dir: spec.checkpointDir }, preempt: opts.preempt }),
    });
    const probs = r.probs(test.map((e) => exampleText(e)));
    const config = { maxTokens: r.maxTokens, pooling: r.pooling, body: r.body, pairs: r.pairs, steps: r.steps, lr: r.lr, ...(r.lora !== null ? { lora: r.lora } : {}) };
    const ft: FineTuneResult = { steps: r.steps, losses: r.losses, tokens: r.tokens, seconds: r.seconds };
    return outcome(probs, { trainable: r.trainableParameters, tensors: r.tensors, config, ft, trainSeconds: r.seconds });
  }

  const encoder = spec.method === "scratch" ? freshLike(base.model, seed + 1) : base.model;
  const clf = new SequenceClassifier(encoder, base.tok, task.labels.length, { maxTokens, seed });
  const head = clf.score.parameters();
  let trainable = head;
  let loraHandle: ReturnType<typeof applyLoRA> | null = null;
  if (spec.method === "head") {
    for (const p of encoder.parameters()) p.requiresGrad = false;
  } else if (spec.method === "lora") {
    const { rank = 3, alpha = 2 * rank, dropout = 0.05, targets } = spec.lora ?? {};
    loraHandle = applyLoRA(encoder, { rank, alpha, dropout, targets: targets ?? loraTargets(encoder), seed });
    trainable = [...loraHandle.trainableParameters(), ...head];
  } else {
    trainable = [...encoder.parameters(), ...head];
  }
  // Full fine-tuning runs data-parallel when this process is one rank of several (mpirun, --procs):
  // every rank trains on its rows of each batch; rank 0 alone checkpoints, scores and saves.
  const dp = spec.method === "full" ? joinIfLaunched() : null;
  if (dp !== null && !dp.world.leader) spec = { ...spec, out: undefined };
  const ft = await fineTune(clf, train.map((e) => exampleText(e)), y, {
    parallel: dp ?? undefined,
    trainable, steps: spec.steps, epochs: spec.epochs, lr: spec.lr ?? DEFAULT_LR[spec.method], batchSize: spec.batchSize, seed,
    signal: opts.signal, onProgress: progress, preempt: spec.checkpointDir === undefined ? undefined : opts.preempt,
    checkpoint: spec.checkpointDir === undefined ? undefined : { dir: spec.checkpointDir, rngs: dropoutRngs(encoder, ...(loraHandle?.layers.map(([, l]) => l) ?? [])) },
  });
  if (loraHandle !== null) loraHandle.merge();
  const probs = clf.predict(test.map((e) => exampleText(e)));
  if (loraHandle !== null) loraHandle.unmerge();
  const headTensors: Record<string, RawTensor> = {
    "score.weight": f32([...clf.score.weight.shape], clf.score.weight.toArray() as Float32Array),
    "score.bias": f32([...clf.score.bias!.shape], clf.score.bias!.toArray() as Float32Array),
  };
  let tensors: Record<string, RawTensor> | null = headTensors;
  if (spec.method === "lora") tensors = { ...loraHandle!.tensors(), ...headTensors };
  if (spec.method === "full") {
    tensors = { ...headTensors };
    for (const [name, p] of encoder.namedParameters()) tensors[name] = f32([...p.shape], p.toArray() as Float32Array);
  }
  if (spec.method === "scratch") tensors = null;  // a baseline, not an adaptation of this base
  const config: Record<string, unknown> = {
    maxTokens: clf.maxTokens, pooling: poolingOf(encoder), steps: ft.steps, lr: spec.lr ?? DEFAULT_LR[spec.method], batchSize: spec.batchSize ?? 16,
    ...(loraHandle !== null ? { lora: loraHandle.config } : {}),
  };
  return outcome(probs, { trainable: countOf(trainable), tensors, config, ft, trainSeconds: ft.seconds });
}

/** The adapter manifest type, re-exported for callers that read outcomes and artifacts together. */
export type { AdapterManifest };
