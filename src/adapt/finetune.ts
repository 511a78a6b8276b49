/**
 * Supervised fine-tuning of a SequenceClassifier on labeled texts: head only (body frozen),
 * full (every body tensor and the head), or LoRA (the body frozen and wrapped by applyLoRA; the
 * adapter factors and the head train). The classification objective below plugs into the one
 * Trainer (src/train/trainer.ts), which brings AdamW with linear warm-up and cosine decay,
 * gradient clipping, progress after every step, and an AbortSignal that stops between steps.
 *
 *     const clf = new SequenceClassifier(gpt, tok, 2);
 *     const lora = applyLoRA(gpt, { rank: 4 });
 *     const r = await fineTune(clf, texts, labels, { trainable: [...lora.trainableParameters(), ...clf.score.parameters()] });
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Module } from "../nn/module.js";
import type { ParamGroup } from "../optim/adamw.js";
import { Rng } from "../tensor/rng.js";
import type { Tensor } from "../tensor/tensor.js";
import { shuffled } from "../tasks/task.js";
import type { DataParallel } from "../train/parallel/index.js";
import { AbortedError, Trainer, type Objective, type TrainableModel } from "../train/trainer.js";
import type { SequenceClassifier } from "./classifier.js";

export { AbortedError } from "../train/trainer.js";

export interface FineTuneProgress {
  step: number;
  total: number;
  loss: number;
  /** Tokens read by the body so far. */
  tokens: number;
  elapsedSeconds: number;
}

export interface FineTuneOptions {
  /** The tensors to train (the rest keep requiresGrad = false). */
  trainable: Tensor[];
  /** Optimizer steps; default: `epochs` passes over the data, at least minSteps, at most maxSteps. */
  steps?: number;
  epochs?: number;
  minSteps?: number;
  maxSteps?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  warmupFraction?: number;
  clip?: number;
  seed?: number;
  onProgress?: (p: FineTuneProgress) => void;
  signal?: AbortSignal;
  /**
   * Data-parallel over MPI ranks (train/parallel): `batchSize` is the global batch (a multiple of
   * the world size); every rank draws the same shuffled batch and trains on its rows, and the
   * gradients are averaged, so the run follows the single-process one. Rank 0 alone checkpoints.
   */
  parallel?: DataParallel;
  /**
   * Checkpoints of the trained tensors, the optimizer and the data order in `dir`, every `every`
   * steps (default 100) and when preempted; a later call with the same dir and the same setup
   * resumes from the newest, exactly when `rngs` holds the dropout generators in use.
   */
  checkpoint?: { dir: string; every?: number; rngs?: Rng[] };
  /**
   * Aborting it makes the run checkpoint and stop after the current step; fineTune then throws
   * PreemptedError (a job runner re-queues the job and resumes it later). Needs `checkpoint`.
   */
  preempt?: AbortSignal;
}

/** Thrown by fineTune when `preempt` stopped it: the checkpoint at `step` resumes it. */
export class PreemptedError extends Error {
  constructor(readonly step: number, readonly total: number) {
    super(`training was preempted at step ${step} of ${total}; a checkpoint was saved to resume from`);
    this.name = "PreemptedError";
  }
}

/** The losses of every step a checkpointed run logged (its metrics.jsonl), across resumes. */
export function loggedLosses(path: string): number[] {
  return readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => (JSON.parse(l) as { loss: number }).loss);
}

/** Several generators saved and restored as one state (the trainer checkpoints one model RNG). */
class RngSet extends Rng {
  constructor(private readonly members: Rng[]) {
    super(0);
  }
  override getState(): number[] {
    return this.members.flatMap((r) => r.getState());
  }
  override setState(state: number[]): void {
    if (state.length !== 5 * this.members.length) throw new Error(`fineTune resume: the checkpoint holds ${state.length / 5} dropout RNG states, this run has ${this.members.length}`);
    this.members.forEach((r, i) => r.setState(state.slice(5 * i, 5 * i + 5)));
  }
}

/** The dropout generators of a body and its LoRA layers (each once), saved with checkpoints so a resumed run draws the same masks. */
export const dropoutRngs = (...holders: object[]): Rng[] =>
  [...new Set(holders.map((h) => (h as { rng?: unknown }).rng).filter((r): r is Rng => r instanceof Rng))];

/** The trained tensors as the model the trainer checkpoints: `trained.0`, `trained.1`, ... in the order given. */
export class TrainedTensors extends Module implements TrainableModel {
  readonly trained: Tensor[];
  readonly rng: Rng;
  readonly config: { trained: number[][] };
  constructor(tensors: Tensor[], rngs: Rng[]) {
    super();
    this.trained = tensors;
    this.rng = new RngSet(rngs);
    this.config = { trained: tensors.map((t) => [...t.shape]) };
  }
  paramGroups(): ParamGroup[] {
    return [{ params: this.trained }];
  }
}

export interface FineTuneResult {
  steps: number;
  losses: number[];
  tokens: number;
  seconds: number;
}

/** The default number of optimizer steps for n examples. */
export function defaultSteps(n: number, { epochs = 8, batchSize = 16, minSteps = 40, maxSteps = 400 } = {}): number {
  return Math.max(minSteps, Math.min(maxSteps, Math.ceil((epochs * n) / batchSize)));
}

/**
 * Cross-entropy of the classifier on batches of labeled texts, in seeded epochs: each epoch is
 * a fresh shuffle of the examples, seeded by (seed, epoch). Counts the tokens the body reads.
 */
export function classification(clf: SequenceClassifier, texts: readonly string[], labels: readonly number[], { batchSize, seed }: { batchSize: number; seed: number }): Objective<number[]> {
  const n = texts.length;
  const lengths = texts.map((t) => clf.encode(t).length);  // tokens each example feeds the body, counted once
  let epoch = 0, order: number[] = [], cursor = 0;
  return {
    name: "classification",
    unit: "tokens",
    next() {
      const batch: number[] = [];
      while (batch.length < batchSize) {
        if (cursor >= order.length) {
          order = shuffled(Array.from({ length: n }, (_, i) => i), seed * 1000 + epoch++);
          cursor = 0;
        }
        batch.push(order[cursor++]);
      }
      return batch;
    },
    loss: (batch) => clf.loss(batch.map((i) => texts[i]), batch.map((i) => labels[i])),
    count: (batch) => batch.reduce((s, i) => s + lengths[i], 0),
    release: () => clf.releaseInputs(),
    state: () => ({ epoch, order, cursor }),
    restore(extra) {
      ({ epoch, order, cursor } = extra as { epoch: number; order: number[]; cursor: number });
    },
  };
}

/**
 * This rank's rows of every global batch (data-parallel). The classifier's loss is a mean over the
 * rows and every rank holds the same number, so the average across ranks is the global mean.
 */
function rowsOfBatch(objective: Objective<number[]>, batchSize: number, dp: DataParallel | undefined): Objective<number[]> {
  if (dp === undefined) return objective;
  const { lo, hi } = dp.rows(batchSize, "batch of examples");
  const counts = new WeakMap<number[], number>();
  return {
    ...objective,
    next(rng) {
      const global = objective.next(rng);
      const mine = global.slice(lo, hi);
      counts.set(mine, objective.count(global));
      return mine;
    },
    count: (batch) => counts.get(batch) ?? objective.count(batch),
  };
}

/** Trains and resolves when done; yields to the event loop after every step, so a worker reads a cancel message. */
export async function fineTune(clf: SequenceClassifier, texts: readonly string[], labels: readonly number[], o: FineTuneOptions): Promise<FineTuneResult> {
  const n = texts.length;
  if (n === 0) throw new RangeError("fineTune: no training examples (the dataset is empty)");
  if (labels.length !== n) throw new RangeError(`fineTune: ${n} texts for ${labels.length} labels`);
  if (o.trainable.length === 0) throw new RangeError("fineTune: nothing to train (no trainable tensors)");
  const batchSize = Math.min(o.batchSize ?? 16, n);
  const steps = o.steps ?? defaultSteps(n, { epochs: o.epochs, batchSize, minSteps: o.minSteps, maxSteps: o.maxSteps });
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`fineTune: steps must be a positive integer, got ${steps}`);
  const lr = o.lr ?? 1e-3;
  const decay = o.trainable.filter((t) => t.ndim >= 2), noDecay = o.trainable.filter((t) => t.ndim < 2);
  const trainer = new Trainer({
    objective: rowsOfBatch(classification(clf, texts, labels, { batchSize, seed: o.seed ?? 0 }), batchSize, o.parallel), parallel: o.parallel?.attach,
    paramGroups: [{ params: decay, weightDecay: o.weightDecay ?? 0.01 }, { params: noDecay, weightDecay: 0 }], parameters: o.trainable,
    lr, minLr: lr * 0.1, warmup: Math.max(1, Math.round(steps * (o.warmupFraction ?? 0.1))), betas: [0.9, 0.999], eps: 1e-8, clip: o.clip ?? 1.0,
    steps, quiet: true, handleSignals: false, signal: o.signal,
    onStep: (r) => o.onProgress?.({ step: r.step, total: steps, loss: r.loss, tokens: r.seen, elapsedSeconds: r.seconds }),
    ...(o.checkpoint === undefined ? {} : {
      model: new TrainedTensors(o.trainable, o.checkpoint.rngs ?? []), outDir: o.checkpoint.dir, checkpointEvery: o.checkpoint.every ?? 100, keepLast: 2,
    }),
  });
  if (o.preempt !== undefined && o.checkpoint === undefined) throw new RangeError("fineTune: preempt needs checkpoint (a preempted run resumes from its checkpoint)");
  const preempt = () => trainer.requestStop("preempted");
  o.preempt?.addEventListener("abort", preempt, { once: true });
  if (o.preempt?.aborted) preempt();
  const wasTraining = clf.encoder.training;
  clf.encoder.train(true);
  try {
    trainer.resume();
    const r = await trainer.run();
    if (r.stoppedBy === "signal") throw new PreemptedError(r.steps, steps);
    // A resumed run's history starts at the checkpoint; the log in its folder holds every step.
    const losses = r.resumedFrom !== null && o.checkpoint !== undefined ? loggedLosses(join(o.checkpoint.dir, "metrics.jsonl")) : r.history.map((h) => h.loss);
    return { steps: r.steps, losses, tokens: r.seen, seconds: r.seconds };
  } catch (e) {
    throw e instanceof AbortedError ? new AbortedError("the adaptation was cancelled") : e;
  } finally {
    o.preempt?.removeEventListener("abort", preempt);
    clf.releaseInputs();
    trainer.opt.release();
    for (const t of o.trainable) {
      t.grad?.release();
      t.grad = null;
    }
    clf.encoder.train(wasTraining);
  }
}
