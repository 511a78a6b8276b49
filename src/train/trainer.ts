/**
 * The pretraining loop shared by every objective: AdamW with warm-up + cosine decay,
 * gradient accumulation, clipping, periodic validation (loss, perplexity, bits per byte),
 * atomic checkpoints keeping the last K, exact resume, SIGINT/SIGTERM handling, metrics
 * JSONL, a progress line and a loss-curve SVG beside the checkpoints.
 *
 * Exact resume: batch sampling and dropout draw from RNGs whose states go into every
 * checkpoint with the step, token count and schedule, and kernels are deterministic for a
 * given thread count, so a resumed run repeats the uninterrupted run's losses exactly.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TokenSource } from "../data/tokens.js";
import type { Module } from "../nn/module.js";
import { AdamW, clipGradNorm, cosineSchedule, type ParamGroup } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { Rng } from "../tensor/rng.js";
import { listCheckpoints, loadCheckpoint, saveCheckpoint, type CheckpointState } from "./checkpoint.js";
import type { LossModel, Objective } from "./objectives.js";
import { lineChartSvg } from "./plot.js";
import { Progress } from "./progress.js";

export interface TrainableModel extends Module, LossModel {
  readonly rng: Rng;
  readonly config: object;
  paramGroups(weightDecay: number): ParamGroup[];
}

export interface TrainerOptions {
  model: TrainableModel;
  objective: Objective;
  train: TokenSource;
  val: TokenSource;
  outDir: string;
  batch: number;
  ctx: number;
  gradAccum?: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  weightDecay?: number;
  clip?: number;
  /** Budget: whichever comes first. A time budget fixes the schedule length after 5 steps. */
  steps?: number;
  tokens?: number;
  seconds?: number;
  evalEvery?: number;
  evalWindows?: number;
  checkpointEvery?: number;
  keepLast?: number;
  seed?: number;
  /** Bytes per token of the validation text, for bits per byte. */
  bytesPerToken?: number;
  quiet?: boolean;
  /** Install SIGINT/SIGTERM handlers that checkpoint and stop (default true). */
  handleSignals?: boolean;
  /** Called after every optimizer step. */
  onStep?: (record: StepRecord) => void;
}

export interface StepRecord {
  step: number;
  tokens: number;
  loss: number;
  lr: number;
  seconds: number;
  tokensPerSecond: number;
  valLoss?: number;
  valPerplexity?: number;
  valBitsPerByte?: number;
}

export interface TrainResult {
  steps: number;
  tokens: number;
  seconds: number;
  valLoss: number;
  stoppedBy: "budget" | "signal";
  resumedFrom: number | null;
  history: StepRecord[];
}

export class Trainer {
  readonly opt: AdamW;
  private readonly o: Required<Omit<TrainerOptions, "steps" | "tokens" | "seconds" | "bytesPerToken" | "onStep">> & Pick<TrainerOptions, "steps" | "tokens" | "seconds" | "bytesPerToken" | "onStep">;
  private readonly dataRng: Rng;
  private step = 0;
  private tokens = 0;
  private elapsedBefore = 0;
  private totalSteps: number;
  private stopSignal: string | null = null;
  private scheduleFitted = false;
  private fitMark = 0;

  constructor(options: TrainerOptions) {
    this.o = {
      gradAccum: 1, lr: 1e-3, minLr: (options.lr ?? 1e-3) / 10, warmup: 100, weightDecay: 0.1, clip: 1,
      evalEvery: 200, evalWindows: 32, checkpointEvery: 200, keepLast: 3, seed: 1234, quiet: false, handleSignals: true,
      ...options,
    };
    const { batch, ctx, train, val } = this.o;
    if (!(Number.isInteger(batch) && batch > 0 && Number.isInteger(ctx) && ctx > 0)) throw new RangeError(`Trainer: batch and ctx must be positive integers, got ${batch} and ${ctx}`);
    if (this.o.steps === undefined && this.o.tokens === undefined && this.o.seconds === undefined) throw new Error("Trainer: give a budget: steps, tokens or seconds");
    if (train.length < ctx + 1) throw new RangeError(`Trainer: the training data has ${train.length} tokens, fewer than one window of ctx + 1 = ${ctx + 1}`);
    if (val.length < ctx + 1) throw new RangeError(`Trainer: the validation data has ${val.length} tokens, fewer than one window of ctx + 1 = ${ctx + 1}`);
    this.dataRng = new Rng(this.o.seed);
    this.opt = new AdamW(this.o.model.paramGroups(this.o.weightDecay), { lr: this.o.lr, betas: [0.9, 0.95] });
    const perStep = batch * ctx * this.o.gradAccum;
    this.totalSteps = Math.min(this.o.steps ?? Infinity, this.o.tokens !== undefined ? Math.ceil(this.o.tokens / perStep) : Infinity);
    mkdirSync(this.o.outDir, { recursive: true });
  }

  /** Asks the loop to checkpoint and stop after the current step (what SIGINT/SIGTERM do). */
  requestStop(reason = "stop requested"): void {
    this.stopSignal = reason;
  }

  /** Loads the newest complete checkpoint in outDir, if any; returns its step. */
  resume(): number | null {
    const all = listCheckpoints(this.o.outDir);
    if (all.length === 0) return null;
    const latest = all[all.length - 1];
    const state = loadCheckpoint(latest.path, this.o.model, this.opt);
    if (JSON.stringify(state.config) !== JSON.stringify(this.o.model.config)) {
      throw new Error(`resume: ${latest.path} was written for another model config:\n  checkpoint ${JSON.stringify(state.config)}\n  this run   ${JSON.stringify(this.o.model.config)}`);
    }
    this.step = state.step;
    this.tokens = state.tokens;
    this.elapsedBefore = state.elapsedSeconds;
    this.totalSteps = state.totalSteps < 0 ? Infinity : state.totalSteps;
    this.scheduleFitted = Number.isFinite(this.totalSteps);
    this.dataRng.setState(state.dataRng);
    this.o.model.rng.setState(state.modelRng);
    this.truncateMetrics(state.step);
    return state.step;
  }

  private get metricsPath(): string {
    return join(this.o.outDir, "metrics.jsonl");
  }

  private truncateMetrics(step: number): void {
    if (!existsSync(this.metricsPath)) return;
    const kept = readFileSync(this.metricsPath, "utf8").split("\n").filter((l) => l.trim() !== "" && (JSON.parse(l) as StepRecord).step <= step);
    writeFileSync(this.metricsPath, kept.map((l) => l + "\n").join(""));
  }

  checkpoint(): string {
    const state: CheckpointState = {
      version: 1, step: this.step, tokens: this.tokens, elapsedSeconds: this.elapsedBefore + this.runSeconds(),
      totalSteps: Number.isFinite(this.totalSteps) ? this.totalSteps : -1, dataRng: this.dataRng.getState(),
      modelRng: this.o.model.rng.getState(), optimizer: { step: this.opt.steps, lr: this.opt.lr }, config: this.o.model.config,
      extra: { objective: this.o.objective.name },
    };
    return saveCheckpoint(this.o.outDir, this.o.model, this.opt, state, this.o.keepLast);
  }

  private runStart = performance.now();
  private runSeconds(): number {
    return (performance.now() - this.runStart) / 1000;
  }

  /** Mean validation loss over evalWindows windows spread evenly over the validation stream. */
  evaluate(): number {
    const { ctx, batch, val, evalWindows, model, objective } = this.o;
    const windows = Math.min(evalWindows, Math.floor((val.length - 1) / ctx));
    const span = val.length - ctx - 1;
    const startOf = (w: number) => (windows === 1 ? 0 : Math.floor((w * span) / (windows - 1)));
    const evalRng = new Rng(this.o.seed + 1);  // fixed masks for MLM, so evaluations compare
    const buf = new Int32Array(batch * (ctx + 1));
    let total = 0, count = 0;
    const wasTraining = model.training;
    model.eval();
    for (let w0 = 0; w0 < windows; w0 += batch) {
      const n = Math.min(batch, windows - w0);
      for (let b = 0; b < n; b++) val.read(startOf(w0 + b), buf.subarray(b * (ctx + 1), (b + 1) * (ctx + 1)));
      const { x, y } = objective.batch(buf, n, ctx, evalRng);
      const loss = noGrad(() => model.loss(x, y).item());
      let targets = 0;
      for (const t of y.ids.subarray(0, y.size)) if (t >= 0) targets++;
      total += loss * targets;
      count += targets;
      x.release();
      y.release();
    }
    model.train(wasTraining);
    return total / count;
  }

  async run(): Promise<TrainResult> {
    const o = this.o;
    const resumedFrom = this.step > 0 ? this.step : null;
    if (resumedFrom === null) writeFileSync(this.metricsPath, "");
    const onSignal = (sig: string) => () => {
      this.stopSignal = sig;
    };
    const handlers = o.handleSignals ? (["SIGINT", "SIGTERM"] as const).map((s) => [s, onSignal(s)] as const) : [];
    for (const [s, h] of handlers) process.on(s, h);
    const progress = new Progress(resumedFrom === null ? "pretrain" : `resume@${resumedFrom}`);
    const history: StepRecord[] = [];
    const windows = new Int32Array(o.batch * (o.ctx + 1));
    this.runStart = performance.now();
    const tokensAtStart = this.tokens;
    let smooth = NaN, valLoss = NaN;
    let stoppedBy: TrainResult["stoppedBy"] = "budget";
    o.model.train();
    try {
      for (;;) {
        if (this.stopSignal !== null) {
          stoppedBy = "signal";
          break;
        }
        const seconds = this.elapsedBefore + this.runSeconds();
        if (this.step >= this.totalSteps) break;
        if (o.seconds !== undefined && seconds >= o.seconds) break;
        // A time budget fixes the schedule length from the measured step time: first after 5
        // steps, then again after 50, when warm-up effects (first allocations, cold caches) are gone.
        const ran = this.step - (resumedFrom ?? 0);
        if (o.seconds !== undefined && o.steps === undefined && o.tokens === undefined && !this.scheduleFitted && (ran === 5 || ran === 50)) {
          if (ran === 5) this.fitMark = this.runSeconds();
          const perStep = ran === 5 ? this.runSeconds() / 5 : (this.runSeconds() - this.fitMark) / 45;
          this.totalSteps = this.step + Math.max(5, Math.floor((o.seconds - seconds) / perStep));
          if (ran === 50) this.scheduleFitted = true;
        }
        const lr = cosineSchedule(this.step, { lr: o.lr, warmup: o.warmup, totalSteps: Number.isFinite(this.totalSteps) ? this.totalSteps : 1e9, minLr: o.minLr });
        this.opt.lr = lr;
        let lossSum = 0;
        for (let micro = 0; micro < o.gradAccum; micro++) {
          for (let b = 0; b < o.batch; b++) {
            const start = this.dataRng.int(o.train.length - o.ctx);
            o.train.read(start, windows.subarray(b * (o.ctx + 1), (b + 1) * (o.ctx + 1)));
          }
          const { x, y } = o.objective.batch(windows, o.batch, o.ctx, this.dataRng);
          const loss = o.model.loss(x, y);
          lossSum += loss.item();
          loss.backward(o.gradAccum === 1 ? undefined : scalar(1 / o.gradAccum));
          loss.release();
          x.release();
          y.release();
        }
        clipGradNorm(o.model.parameters(), o.clip);
        this.opt.step();
        this.opt.zeroGrad();
        this.step++;
        this.tokens += o.batch * o.ctx * o.gradAccum;
        const value = lossSum / o.gradAccum;
        if (!Number.isFinite(value)) throw new Error(`training diverged at step ${this.step}: loss is ${value} (lower the learning rate?)`);
        smooth = Number.isNaN(smooth) ? value : 0.95 * smooth + 0.05 * value;
        const runSec = this.runSeconds();
        const rec: StepRecord = { step: this.step, tokens: this.tokens, loss: value, lr, seconds: this.elapsedBefore + runSec, tokensPerSecond: Math.round((this.tokens - tokensAtStart) / runSec) };
        const last = this.step >= this.totalSteps;
        if (this.step % o.evalEvery === 0 || last) {
          valLoss = this.evaluate();
          rec.valLoss = valLoss;
          rec.valPerplexity = Math.exp(valLoss);
          if (o.bytesPerToken !== undefined) rec.valBitsPerByte = valLoss / Math.LN2 / o.bytesPerToken;
        }
        history.push(rec);
        appendFileSync(this.metricsPath, JSON.stringify(rec) + "\n");
        if (this.step % o.checkpointEvery === 0) this.checkpoint();
        o.onStep?.(rec);
        if (!o.quiet) {
          const frac = o.seconds !== undefined ? rec.seconds / o.seconds : this.step / this.totalSteps;
          progress.update(frac, { step: String(this.step), loss: smooth.toFixed(3), val: Number.isNaN(valLoss) ? "--" : valLoss.toFixed(3), "tok/s": rec.tokensPerSecond.toLocaleString("en-US") });
        }
        // Yield to the event loop so SIGINT/SIGTERM handlers can run.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (history.length === 0 || history[history.length - 1].valLoss === undefined) valLoss = this.evaluate();
      if (history.length > 0 || listCheckpoints(o.outDir).length === 0) this.checkpoint();
      this.writeCurve();
      if (!o.quiet) {
        progress.update(1, { step: String(this.step), loss: Number.isNaN(smooth) ? "--" : smooth.toFixed(3), val: valLoss.toFixed(3) }, true);
        progress.done();
        if (stoppedBy === "signal") process.stderr.write(`${this.stopSignal}: saved a checkpoint at step ${this.step} in ${o.outDir}; run again to resume\n`);
      }
    } finally {
      for (const [s, h] of handlers) process.off(s, h);
    }
    return { steps: this.step, tokens: this.tokens, seconds: this.elapsedBefore + this.runSeconds(), valLoss, stoppedBy, resumedFrom, history };
  }

  private writeCurve(): void {
    const records = existsSync(this.metricsPath)
      ? readFileSync(this.metricsPath, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as StepRecord)
      : [];
    let s = NaN;
    const train = records.map((r) => {
      s = Number.isNaN(s) ? r.loss : 0.95 * s + 0.05 * r.loss;
      return [r.tokens, s] as [number, number];
    });
    const val = records.filter((r) => r.valLoss !== undefined).map((r) => [r.tokens, r.valLoss!] as [number, number]);
    writeFileSync(join(this.o.outDir, "loss.svg"), lineChartSvg(
      [{ name: "train loss (EMA)", color: "#1f77b4", points: train }, { name: "validation loss", color: "#d62728", points: val }],
      { title: `${this.o.objective.name} pretraining`, xLabel: "tokens seen", yLabel: "cross-entropy (nats/token)" },
    ));
  }
}

import { empty } from "../tensor/tensor.js";
function scalar(v: number) {
  const t = empty([]);
  t.data[0] = v;
  return t;
}
