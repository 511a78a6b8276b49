/**
 * Self-supervised language-model objectives over a token stream: random windows of T+1 tokens,
 * turned into inputs and targets by a task:
 *   clm  next-token prediction (GPT): x = w[:, :T], y = w[:, 1:]
 *   mlm  masked LM (BERT): 15% of positions are targets; of those 80% become [MASK],
 *        10% a random token, 10% stay; the loss is over the targets only.
 * Validation reads evalWindows windows spread evenly over the held-out stream: loss, perplexity,
 * and bits per byte given the tokenizer's bytes per token.
 *
 *     new Trainer({ model: gpt, objective: languageModeling(gpt, clm, { train, val, batch: 16, ctx: 128 }), outDir, steps: 1000 });
 */
import { sequentialWindows } from "../data/batches.js";
import type { TokenSource } from "../data/tokens.js";
import type { GPT } from "../models/gpt/model.js";
import { noGrad } from "../tensor/autograd.js";
import type { Rng } from "../tensor/rng.js";
import type { Device } from "../tensor/device.js";
import { Tensor, empty, toDeviceRaw } from "../tensor/tensor.js";
import type { Objective } from "./trainer.js";

export interface LossModel {
  /** Mean cross-entropy of the model on (inputs, targets); targets < 0 are ignored. */
  loss(inputs: Tensor, targets: Tensor): Tensor;
}

/** How windows of T+1 tokens become (inputs, targets). */
export interface TokenTask {
  readonly name: "clm" | "mlm";
  batch(windows: Int32Array, B: number, T: number, rng: Rng): { x: Tensor; y: Tensor };
}

export const clm: TokenTask = {
  name: "clm",
  batch(windows, B, T) {
    const x = empty([B, T], "int32"), y = empty([B, T], "int32");
    for (let b = 0; b < B; b++) {
      x.ids.set(windows.subarray(b * (T + 1), b * (T + 1) + T), b * T);
      y.ids.set(windows.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
    }
    return { x, y };
  },
};

export function mlm({ maskToken, vocabSize, specialIds = [], rate = 0.15 }: { maskToken: number; vocabSize: number; specialIds?: number[]; rate?: number }): TokenTask {
  const special = new Set(specialIds);
  return {
    name: "mlm",
    batch(windows, B, T, rng) {
      const x = empty([B, T], "int32"), y = empty([B, T], "int32");
      const xi = x.ids, yi = y.ids;
      for (let b = 0; b < B; b++) {
        let any = false;
        for (let t = 0; t < T; t++) {
          const tok = windows[b * (T + 1) + t];
          const i = b * T + t;
          xi[i] = tok;
          yi[i] = -1;
          if (special.has(tok) || rng.uniform() >= rate) continue;
          any = true;
          yi[i] = tok;
          const r = rng.uniform();
          if (r < 0.8) xi[i] = maskToken;
          else if (r < 0.9) xi[i] = rng.int(vocabSize);
        }
        if (!any) {
          // Every row keeps at least one target so no batch is all-ignored (never a special id).
          const candidates: number[] = [];
          for (let t = 0; t < T; t++) if (!special.has(windows[b * (T + 1) + t])) candidates.push(t);
          if (candidates.length > 0) {
            const t = candidates[rng.int(candidates.length)];
            yi[b * T + t] = xi[b * T + t];
            xi[b * T + t] = maskToken;
          }
        }
      }
      return { x, y };
    },
  };
}

export interface LanguageModelingOptions {
  train: TokenSource;
  val: TokenSource;
  batch: number;
  ctx: number;
  /** Validation windows (default 32). */
  evalWindows?: number;
  /** Bytes per token of the validation text, for bits per byte. */
  bytesPerToken?: number;
  /** The device the model lives on: batches are made on the host and moved there (default the CPU). */
  device?: Device | string;
}

export type TokenBatch = { x: Tensor; y: Tensor };

/** The batch on `on` (the host tensors released), or as it is when on is the CPU or not given. */
function onDevice(b: TokenBatch, on: Device | string | undefined): TokenBatch {
  if (on === undefined || on === "cpu") return b;
  const out = { x: toDeviceRaw(b.x, on), y: toDeviceRaw(b.y, on) };
  if (out.x !== b.x) b.x.release();
  if (out.y !== b.y) b.y.release();
  return out;
}

export function languageModeling(model: LossModel, task: TokenTask, { train, val, batch, ctx, evalWindows = 32, bytesPerToken, device }: LanguageModelingOptions): Objective<TokenBatch> {
  if (!(Number.isInteger(batch) && batch > 0 && Number.isInteger(ctx) && ctx > 0)) throw new RangeError(`languageModeling: batch and ctx must be positive integers, got ${batch} and ${ctx}`);
  if (train.length < ctx + 1) throw new RangeError(`languageModeling: the training data has ${train.length} tokens, fewer than one window of ctx + 1 = ${ctx + 1}`);
  if (val.length < ctx + 1) throw new RangeError(`languageModeling: the validation data has ${val.length} tokens, fewer than one window of ctx + 1 = ${ctx + 1}`);
  const windows = new Int32Array(batch * (ctx + 1));
  return {
    name: task.name,
    unit: "tokens",
    unitsPerBatch: batch * ctx,
    chart: { title: `${task.name} pretraining`, yLabel: "cross-entropy (nats/token)" },
    next(rng) {
      for (let b = 0; b < batch; b++) train.read(rng.int(train.length - ctx), windows.subarray(b * (ctx + 1), (b + 1) * (ctx + 1)));
      return onDevice(task.batch(windows, batch, ctx, rng), device);
    },
    loss: ({ x, y }) => model.loss(x, y),
    count: () => batch * ctx,
    release({ x, y }) {
      x.release();
      y.release();
    },
    validate(rng) {
      const loss = windowLoss(model, task, val, batch, ctx, evalWindows, rng, device);
      const scores: Record<string, number> = { valPerplexity: Math.exp(loss) };
      if (bytesPerToken !== undefined) scores.valBitsPerByte = loss / Math.LN2 / bytesPerToken;
      return { loss, scores };
    },
  };
}

/** Mean loss per target over `windows` windows spread evenly over `val`. */
function windowLoss(model: LossModel, task: TokenTask, val: TokenSource, batch: number, ctx: number, maxWindows: number, rng: Rng,
  device?: Device | string): number {
  const windows = Math.min(maxWindows, Math.floor((val.length - 1) / ctx));
  const span = val.length - ctx - 1;
  const startOf = (w: number) => (windows === 1 ? 0 : Math.floor((w * span) / (windows - 1)));
  const buf = new Int32Array(batch * (ctx + 1));
  let total = 0, count = 0;
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const n = Math.min(batch, windows - w0);
    for (let b = 0; b < n; b++) val.read(startOf(w0 + b), buf.subarray(b * (ctx + 1), (b + 1) * (ctx + 1)));
    const host = task.batch(buf, n, ctx, rng);
    let targets = 0;
    for (const t of host.y.ids.subarray(0, host.y.size)) if (t >= 0) targets++;
    const { x, y } = onDevice(host, device);
    const loss = noGrad(() => model.loss(x, y).item());
    total += loss * targets;
    count += targets;
    x.release();
    y.release();
  }
  return total / count;
}

/** Mean per-token cross-entropy of a causal LM over consecutive windows of `tokens` (at most maxWindows). */
export function evaluateLM(model: GPT, tokens: Int32Array, ctx: number, batch: number, maxWindows = 64): number {
  let total = 0, count = 0;
  const wasTraining = model.training;
  model.eval();
  for (const { x, y } of sequentialWindows(tokens, batch, ctx, maxWindows)) {
    total += noGrad(() => model.loss(x, y).item()) * x.size;
    count += x.size;
    x.release();
    y.release();
  }
  model.train(wasTraining);
  if (count === 0) throw new RangeError(`evaluateLM: ${tokens.length} tokens hold no full window of ${ctx + 1}`);
  return total / count;
}
