/**
 * Supervised fine-tuning of a SequenceClassifier on labeled texts: head only (body frozen),
 * full (every body tensor and the head), or LoRA (the body frozen and wrapped by applyLoRA; the
 * adapter factors and the head train). AdamW with linear warm-up and cosine decay, gradient
 * clipping, seeded shuffling; progress after every step; an AbortSignal stops between steps.
 *
 *     const clf = new SequenceClassifier(gpt, tok, 2);
 *     const lora = applyLoRA(gpt, { rank: 4 });
 *     const r = fineTune(clf, texts, labels, { trainable: [...lora.trainableParameters(), ...clf.score.parameters()] });
 */
import { AdamW, clipGradNorm, cosineSchedule } from "../optim/adamw.js";
import type { Tensor } from "../tensor/tensor.js";
import { shuffled } from "../eval/tasks.js";
import type { SequenceClassifier } from "./classifier.js";

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
}

export interface FineTuneResult {
  steps: number;
  losses: number[];
  tokens: number;
  seconds: number;
}

export class AbortedError extends Error {
  constructor(message = "the adaptation was cancelled") {
    super(message);
    this.name = "AbortError";
  }
}

/** The default number of optimizer steps for n examples. */
export function defaultSteps(n: number, { epochs = 8, batchSize = 16, minSteps = 40, maxSteps = 400 } = {}): number {
  return Math.max(minSteps, Math.min(maxSteps, Math.ceil((epochs * n) / batchSize)));
}

/**
 * Trains and resolves when done. It yields to the event loop about every 50 ms, so that a
 * worker reads a cancel message and a server in the same process keeps answering.
 */
export async function fineTune(clf: SequenceClassifier, texts: readonly string[], labels: readonly number[], o: FineTuneOptions): Promise<FineTuneResult> {
  const n = texts.length;
  if (n === 0) throw new RangeError("fineTune: no training examples (the dataset is empty)");
  if (labels.length !== n) throw new RangeError(`fineTune: ${n} texts for ${labels.length} labels`);
  if (o.trainable.length === 0) throw new RangeError("fineTune: nothing to train (no trainable tensors)");
  const batchSize = Math.min(o.batchSize ?? 16, n);
  const steps = o.steps ?? defaultSteps(n, { epochs: o.epochs, batchSize, minSteps: o.minSteps, maxSteps: o.maxSteps });
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`fineTune: steps must be a positive integer, got ${steps}`);
  const lr = o.lr ?? 1e-3, clip = o.clip ?? 1.0, seed = o.seed ?? 0;
  const warmup = Math.max(1, Math.round(steps * (o.warmupFraction ?? 0.1)));

  const decay = o.trainable.filter((t) => t.ndim >= 2), noDecay = o.trainable.filter((t) => t.ndim < 2);
  const opt = new AdamW([{ params: decay, weightDecay: o.weightDecay ?? 0.01 }, { params: noDecay, weightDecay: 0 }], { lr });
  const wasTraining = clf.encoder.training;
  clf.encoder.train(true);
  const start = Date.now();
  const losses: number[] = [];
  const lengths = texts.map((t) => clf.encode(t).length);  // tokens each example feeds the body, counted once
  let tokens = 0, epoch = 0, order: number[] = [], cursor = 0, lastYield = Date.now();
  try {
    for (let step = 1; step <= steps; step++) {
      if (Date.now() - lastYield > 50) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = Date.now();
      }
      if (o.signal?.aborted) throw new AbortedError();
      const batch: number[] = [];
      while (batch.length < batchSize) {
        if (cursor >= order.length) {
          order = shuffled(Array.from({ length: n }, (_, i) => i), seed * 1000 + epoch++);
          cursor = 0;
        }
        batch.push(order[cursor++]);
      }
      tokens += batch.reduce((s, i) => s + lengths[i], 0);
      const loss = clf.loss(batch.map((i) => texts[i]), batch.map((i) => labels[i]));
      const value = loss.item();
      if (!Number.isFinite(value)) throw new Error(`fineTune: the loss became ${value} at step ${step} (lr ${lr} too high?)`);
      loss.backward();
      clf.releaseInputs();
      clipGradNorm(o.trainable, clip);
      opt.lr = cosineSchedule(step - 1, { lr, warmup, totalSteps: steps });
      opt.step();
      opt.zeroGrad();
      losses.push(value);
      o.onProgress?.({ step, total: steps, loss: value, tokens, elapsedSeconds: (Date.now() - start) / 1000 });
    }
  } finally {
    clf.releaseInputs();
    opt.release();
    for (const t of o.trainable) {
      t.grad?.release();
      t.grad = null;
    }
    clf.encoder.train(wasTraining);
  }
  return { steps, losses, tokens, seconds: (Date.now() - start) / 1000 };
}
