/**
 * A time- or step-bounded causal-LM training loop: AdamW with warm-up + cosine decay,
 * clipping, periodic validation, metrics JSONL, an SVG loss curve and a progress line.
 * (Checkpointing, resume and signal handling live in the full trainer.)
 */
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomWindows, sequentialWindows } from "../data/batches.js";
import type { GPT } from "../models/gpt/model.js";
import { AdamW, clipGradNorm, cosineSchedule } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { Rng } from "../tensor/rng.js";
import { lineChartSvg } from "./plot.js";
import { Progress, formatSeconds } from "./progress.js";

export interface TrainLMOptions {
  model: GPT;
  train: Int32Array;
  val: Int32Array;
  batch: number;
  ctx: number;
  /** Stop after this many seconds (the schedule is fitted to it after the first steps). */
  seconds?: number;
  steps?: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  weightDecay?: number;
  evalEvery?: number;
  evalWindows?: number;
  seed?: number;
  outDir?: string;
  quiet?: boolean;
}

export interface TrainLMResult {
  steps: number;
  tokens: number;
  seconds: number;
  trainLoss: number;
  valLoss: number;
  history: { step: number; tokens: number; trainLoss: number; valLoss?: number; lr: number; seconds: number }[];
}

/** Mean per-token cross-entropy over consecutive windows of `tokens`. */
export function evaluateLM(model: GPT, tokens: Int32Array, ctx: number, batch: number, maxWindows = 64): number {
  let total = 0, count = 0;
  const wasTraining = model.training;
  model.eval();
  for (const { x, y } of sequentialWindows(tokens, batch, ctx, maxWindows)) {
    const loss = noGrad(() => model.forward(x, y).loss!.item());
    total += loss * x.size;
    count += x.size;
    x.release();
    y.release();
  }
  model.train(wasTraining);
  if (count === 0) throw new RangeError(`evaluateLM: ${tokens.length} tokens hold no full window of ${ctx + 1}`);
  return total / count;
}

export function trainLM(o: TrainLMOptions): TrainLMResult {
  const lr = o.lr ?? 1e-3;
  const warmup = o.warmup ?? 50;
  const evalEvery = o.evalEvery ?? 100;
  const rng = new Rng(o.seed ?? 1234);
  const opt = new AdamW(o.model.paramGroups(o.weightDecay ?? 0.1), { lr, betas: [0.9, 0.95] });
  if (o.outDir) mkdirSync(o.outDir, { recursive: true });
  const metricsPath = o.outDir ? join(o.outDir, "metrics.jsonl") : null;
  if (metricsPath) writeFileSync(metricsPath, "");
  const progress = new Progress("pretrain");
  const history: TrainLMResult["history"] = [];
  const t0 = performance.now();
  let totalSteps = o.steps ?? Infinity;
  let step = 0, tokens = 0, smooth = NaN, valLoss = NaN;
  o.model.train();
  for (;;) {
    const elapsed = (performance.now() - t0) / 1000;
    if (step >= totalSteps) break;
    if (o.seconds !== undefined && step === 5 && o.steps === undefined) {
      // Fit the cosine schedule to the time budget from the measured step time.
      totalSteps = Math.max(10, Math.floor((o.seconds / elapsed) * 5));
    }
    if (o.seconds !== undefined && elapsed >= o.seconds) break;
    const lrNow = cosineSchedule(step, { lr, warmup, totalSteps: Number.isFinite(totalSteps) ? totalSteps : 1e9, minLr: o.minLr ?? lr / 10 });
    opt.lr = lrNow;
    const { x, y } = randomWindows(o.train, o.batch, o.ctx, rng);
    const { loss } = o.model.forward(x, y);
    const value = loss!.item();
    loss!.backward();
    clipGradNorm(o.model.parameters(), 1.0);
    opt.step();
    opt.zeroGrad();
    loss!.release();
    x.release();
    y.release();
    step++;
    tokens += o.batch * o.ctx;
    smooth = Number.isNaN(smooth) ? value : 0.95 * smooth + 0.05 * value;
    const record: TrainLMResult["history"][number] = { step, tokens, trainLoss: value, lr: lrNow, seconds: (performance.now() - t0) / 1000 };
    if (step % evalEvery === 0 || step === totalSteps) {
      valLoss = evaluateLM(o.model, o.val, o.ctx, o.batch, o.evalWindows ?? 32);
      record.valLoss = valLoss;
    }
    history.push(record);
    if (metricsPath) appendFileSync(metricsPath, JSON.stringify(record) + "\n");
    if (!o.quiet) {
      const frac = o.seconds !== undefined ? record.seconds / o.seconds : step / totalSteps;
      progress.update(frac, {
        step: String(step),
        loss: smooth.toFixed(3),
        val: Number.isNaN(valLoss) ? "--" : valLoss.toFixed(3),
        "tok/s": Math.round(tokens / record.seconds).toLocaleString("en-US"),
      });
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  valLoss = evaluateLM(o.model, o.val, o.ctx, o.batch, o.evalWindows ?? 32);
  if (history.length > 0) history[history.length - 1].valLoss = valLoss;
  if (!o.quiet) {
    progress.update(1, { step: String(step), loss: smooth.toFixed(3), val: valLoss.toFixed(3), time: formatSeconds(seconds) }, true);
    progress.done();
  }
  if (o.outDir) {
    const svg = lineChartSvg(
      [
        { name: "train loss (EMA)", color: "#1f77b4", points: emaPoints(history) },
        { name: "validation loss", color: "#d62728", points: history.filter((h) => h.valLoss !== undefined).map((h) => [h.tokens, h.valLoss!]) },
      ],
      { title: "GPT pretraining loss", xLabel: "tokens seen", yLabel: "cross-entropy (nats/token)" },
    );
    writeFileSync(join(o.outDir, "loss.svg"), svg);
  }
  return { steps: step, tokens, seconds, trainLoss: smooth, valLoss, history };
}

function emaPoints(history: TrainLMResult["history"]): [number, number][] {
  let s = NaN;
  return history.map((h) => {
    s = Number.isNaN(s) ? h.trainLoss : 0.95 * s + 0.05 * h.trainLoss;
    return [h.tokens, s];
  });
}
