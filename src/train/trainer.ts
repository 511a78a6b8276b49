/**
 * The one training loop. An objective says what a batch is and what it costs; the loop owns
 * everything else: AdamW with clipping and gradient accumulation, the budget and its learning-rate
 * schedule (schedule.ts), loss smoothing, the progress line, metrics JSONL and the loss curve
 * (history.ts), atomic checkpoints with exact resume, SIGINT/SIGTERM, an onStep callback and an
 * AbortSignal.
 *
 *     const trainer = new Trainer({ model: gpt, objective: languageModeling(gpt, clm, { train, val, batch: 16, ctx: 128 }),
 *       outDir: "runs/gpt", seconds: 600 });
 *     trainer.resume();                      // the newest checkpoint in outDir, if any
 *     const r = await trainer.run();         // r.steps, r.seen (tokens), r.valLoss, r.history
 *
 * Objectives here: languageModeling with clm or mlm (language.ts), contrastive image–text pairs
 * (contrastive.ts), and classification of labeled texts (adapt/finetune.ts). Generative
 * fine-tuning fits the same contract: packed examples as inputs, targets −1 outside the tokens
 * to learn, count() the tokens read.
 *
 * Exact resume: the objective draws every batch from the trainer's data RNG (and from state()
 * it can save, such as an epoch's order), dropout draws from the model's RNG, both states go into
 * each checkpoint with the step, the units seen and the training time, and kernels are
 * deterministic for a given thread count; so a resumed step/token-budget run repeats the
 * uninterrupted run's losses exactly. A time budget resumes its schedule from the saved time.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Module } from "../nn/module.js";
import { AdamW, clipGradNorm, type ParamGroup } from "../optim/adamw.js";
import { type Precision, defaultPrecision, parsePrecision, withPrecision } from "../tensor/precision.js";
import { Rng } from "../tensor/rng.js";
import type { Device } from "../tensor/device.js";
import { Tensor, fromHost } from "../tensor/tensor.js";
import { listCheckpoints, loadCheckpoint, saveCheckpoint, type CheckpointState } from "./checkpoint.js";
import { MetricsLog, smoothLoss, type StepRecord, type Unit } from "./history.js";
import { Progress } from "./progress.js";
import { BudgetSchedule, type ScheduleKind } from "./schedule.js";

export type { StepRecord, Unit } from "./history.js";

/** What an objective's validation measured. */
export interface Validation {
  /** Mean held-out loss; null when the objective has no held-out data but still scores something. */
  loss: number | null;
  /** More held-out numbers, stored in the step's record (valPerplexity, zero-shot accuracy...). */
  scores?: Record<string, number>;
}

/** A training objective: how to draw a batch, what it costs, and (optionally) how to validate. */
export interface Objective<B> {
  /** "clm", "mlm", "contrastive", "classification": names checkpoints and, by default, the progress line. */
  readonly name: string;
  /** What count() counts. */
  readonly unit: Unit;
  /** Units in every batch, when that is fixed (a `tokens` budget needs it to size its schedule). */
  readonly unitsPerBatch?: number;
  /** The loss chart's title and y axis. */
  readonly chart?: { title: string; yLabel: string };
  /**
   * The next training batch. All its randomness comes from `rng` (the trainer's data RNG, saved in
   * checkpoints) or from what state() saves, so a resumed run draws the same batches.
   */
  next(rng: Rng): B;
  /** The batch's scalar loss, on the autograd tape (the trainer calls backward). */
  loss(batch: B): Tensor;
  /** Units (tokens, images, examples) the batch consumed. */
  count(batch: B): number;
  /** Frees what the batch holds; called after backward. */
  release?(batch: B): void;
  /** Called after each optimizer step; the numbers returned go into the step's record (CLIP: logitScale). */
  afterStep?(): Record<string, number> | void;
  /**
   * Held-out evaluation, every evalEvery steps and at the end, with the model in eval mode.
   * `rng` is seeded the same at every call, so that evaluations with random masks compare.
   */
  validate?(rng: Rng): Validation;
  /** Data-order state beyond the RNG (merged into the checkpoint's `extra`), and its restore. */
  state?(): Record<string, unknown>;
  restore?(extra: Record<string, unknown>): void;
}

/**
 * How a data-parallel runtime (train/parallel/) joins the loop; without one the loop is the
 * single-process one, unchanged. Every method is called on every rank at the same point.
 */
export interface ParallelStep {
  /** Only the leader (rank 0) prints progress, validates, and writes metrics, the loss curve and checkpoints. */
  readonly leader: boolean;
  /** Before the step's last backward: start reducing each gradient bucket as autograd completes it. */
  beginLastBackward(): void;
  /**
   * After backward: waits for every bucket; returns what every rank must agree on: the global
   * loss (the sum of the micro-batch losses), the leader's training clock, and whether any rank was asked to stop.
   */
  finish(local: { loss: number; seconds: number; stop: boolean }): Promise<{ loss: number; seconds: number; stop: boolean }>;
  /** Clips to the global norm and updates the parameters, in place of clipGradNorm + opt.step (a sharded optimizer). */
  update?(clip: number): void;
  /** Before a checkpoint is written (collective: a sharded optimizer gathers its moments), and after. */
  beforeCheckpoint?(): void;
  afterCheckpoint?(): void;
}

/** A model the trainer can checkpoint: named parameters, decay groups, a dropout RNG and a config. */
export interface TrainableModel extends Module {
  readonly rng: Rng;
  readonly config: object;
  paramGroups(weightDecay: number): ParamGroup[];
}

export interface TrainerOptions<B> {
  objective: Objective<B>;
  /** The model trained; needed for checkpoints (outDir). Without it give paramGroups. */
  model?: TrainableModel;
  /** Optimizer groups (default: model.paramGroups(weightDecay)). */
  paramGroups?: ParamGroup[];
  /** The trained tensors in the order their gradients are clipped together (default: model.parameters()). */
  parameters?: Tensor[];
  /** Checkpoints, metrics.jsonl and loss.svg go here; nothing is written without it. */
  outDir?: string;
  gradAccum?: number;
  lr?: number;
  /** Default lr / 10. */
  minLr?: number;
  warmup?: number;
  /** A time budget's share spent decaying to minLr (default 0.2). */
  decayFraction?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  clip?: number;
  /** Budget: whichever comes first (schedule.ts: steps or tokens get a cosine schedule, seconds alone warm-up–stable–decay). */
  steps?: number;
  tokens?: number;
  seconds?: number;
  evalEvery?: number;
  checkpointEvery?: number;
  keepLast?: number;
  /** Seeds the data RNG (and the validation RNG, with seed + 1). */
  seed?: number;
  quiet?: boolean;
  /** Progress line label (default the objective's name). */
  label?: string;
  /** Install SIGINT/SIGTERM handlers that checkpoint and stop (default: when there is an outDir). */
  handleSignals?: boolean;
  /** Called after every optimizer step. */
  onStep?: (record: StepRecord) => void;
  /** Aborting it stops the run before the next step with an AbortedError (nothing is saved). */
  signal?: AbortSignal;
  /** Data-parallel training (train/parallel/): built from the trainer's optimizer and parameter order. */
  parallel?: (trainer: { opt: AdamW; parameters: Tensor[] }) => ParallelStep;
  /**
   * "bf16": mixed precision, the matrix products of every step (forward and backward) and of
   * validation on bf16 operands with float32 accumulation; parameters, gradients, optimizer
   * state and checkpoints stay float32 (tensor/precision.ts). Default: PLINTH_PRECISION, else "fp32".
   */
  precision?: Precision;
  /** Milliseconds, for every time the trainer measures (default performance.now); tests inject a fake clock. */
  now?: () => number;
}

export interface TrainResult {
  steps: number;
  /** Units seen (the objective's unit). */
  seen: number;
  /** Training time, across resumes. */
  seconds: number;
  /** The last validation loss (NaN when the objective does not validate). */
  valLoss: number;
  stoppedBy: "budget" | "signal";
  resumedFrom: number | null;
  schedule: ScheduleKind;
  history: StepRecord[];
}

/** Thrown by run() when its AbortSignal fires (the name is what the job workers report). */
export class AbortedError extends Error {
  constructor(message = "training was cancelled") {
    super(message);
    this.name = "AbortError";
  }
}

const RATE_LABEL: Record<Unit, string> = { tokens: "tok/s", images: "img/s", examples: "ex/s" };

export class Trainer<B> {
  readonly opt: AdamW;
  readonly schedule: BudgetSchedule;
  private readonly o: TrainerOptions<B> & Required<Pick<TrainerOptions<B>, "gradAccum" | "lr" | "clip" | "evalEvery" | "checkpointEvery" | "keepLast" | "seed" | "quiet" | "handleSignals" | "now" | "label">>;
  private readonly parameters: Tensor[];
  private readonly dataRng: Rng;
  private readonly log: MetricsLog | null;
  private step = 0;
  private seen = 0;
  private elapsedBefore = 0;
  private runStart: number;
  private stopReason: string | null = null;
  private readonly par: ParallelStep | null;
  /** Data-parallel runs: the clock and stop request every rank agreed on at the last step. */
  private agreedSeconds = 0;
  private agreedStop = false;

  constructor(options: TrainerOptions<B>) {
    const now = options.now ?? (() => performance.now());
    this.o = {
      gradAccum: 1, lr: 1e-3, clip: 1, evalEvery: 200, checkpointEvery: 200, keepLast: 3, seed: 1234, quiet: false,
      handleSignals: options.outDir !== undefined, label: options.objective.name, ...defined(options), now,
    };
    const { model, objective, outDir, gradAccum, lr } = this.o;
    if (!(Number.isInteger(gradAccum) && gradAccum >= 1)) throw new RangeError(`Trainer: gradAccum must be a positive integer, got ${gradAccum}`);
    if (outDir !== undefined && model === undefined) throw new Error("Trainer: checkpoints (outDir) need the model");
    this.o.precision = this.o.precision === undefined ? defaultPrecision() : parsePrecision(this.o.precision, "Trainer: precision");
    const groups = this.o.paramGroups ?? model?.paramGroups(this.o.weightDecay ?? 0.1);
    if (groups === undefined) throw new Error("Trainer: give the model or paramGroups");
    this.parameters = this.o.parameters ?? model?.parameters() ?? groups.flatMap((g) => g.params);
    this.opt = new AdamW(groups, { lr, betas: this.o.betas ?? [0.9, 0.95], eps: this.o.eps });
    const budget = { steps: this.o.steps, tokens: this.o.tokens, seconds: this.o.seconds };
    const unitsPerStep = objective.unitsPerBatch === undefined ? undefined : objective.unitsPerBatch * gradAccum;
    this.schedule = new BudgetSchedule(budget, unitsPerStep, { lr, minLr: this.o.minLr ?? lr / 10, warmup: this.o.warmup ?? 100, decayFraction: this.o.decayFraction });
    this.dataRng = new Rng(this.o.seed);
    this.runStart = now();
    if (outDir !== undefined) mkdirSync(outDir, { recursive: true });
    this.par = this.o.parallel?.({ opt: this.opt, parameters: this.parameters }) ?? null;
    if (this.par !== null && !this.par.leader) this.o.quiet = true;
    this.log = outDir === undefined || this.par?.leader === false ? null : new MetricsLog(join(outDir, "metrics.jsonl"), objective.unit);
  }

  /** Asks the loop to checkpoint and stop after the current step (what SIGINT/SIGTERM do). */
  requestStop(reason = "stop requested"): void {
    this.stopReason = reason;
  }

  private elapsed(): number {
    return this.elapsedBefore + (this.o.now() - this.runStart) / 1000;
  }

  /** Loads the newest complete checkpoint in outDir, if any; returns its step. */
  resume(): number | null {
    const { outDir, model, objective } = this.o;
    if (outDir === undefined || model === undefined) return null;
    const latest = listCheckpoints(outDir).at(-1);
    if (latest === undefined) return null;
    const state = loadCheckpoint(latest.path, model, this.opt);
    if (JSON.stringify(state.config) !== JSON.stringify(model.config)) {
      throw new Error(`resume: ${latest.path} was written for another model config:\n  checkpoint ${JSON.stringify(state.config)}\n  this run   ${JSON.stringify(model.config)}`);
    }
    const extra = state.extra ?? {};
    this.step = state.step;
    this.seen = state.tokens;
    this.elapsedBefore = state.elapsedSeconds;
    // A step/token budget keeps the schedule length it started with.
    if (this.schedule.kind === "cosine" && state.totalSteps >= 0 && extra.schedule !== "wsd") this.schedule.totalSteps = state.totalSteps;
    this.dataRng.setState(state.dataRng);
    model.rng.setState(state.modelRng);
    objective.restore?.(extra);
    this.log?.truncate(state.step);
    return state.step;
  }

  checkpoint(): string {
    const { outDir, model, objective } = this.o;
    if (outDir === undefined || model === undefined) throw new Error("Trainer.checkpoint: no outDir");
    const total = this.schedule.totalSteps;
    const state: CheckpointState = {
      version: 1, step: this.step, tokens: this.seen, elapsedSeconds: this.elapsed(), totalSteps: Number.isFinite(total) ? total : -1,
      dataRng: this.dataRng.getState(), modelRng: model.rng.getState(), optimizer: { step: this.opt.steps, lr: this.opt.lr }, config: model.config,
      extra: { objective: objective.name, schedule: this.schedule.kind, ...objective.state?.() },
    };
    if (this.par === null) return saveCheckpoint(outDir, model, this.opt, state, this.o.keepLast);
    this.par.beforeCheckpoint?.();
    try {
      return this.par.leader ? saveCheckpoint(outDir, model, this.opt, state, this.o.keepLast) : "";
    } finally {
      this.par.afterCheckpoint?.();
    }
  }

  /** The objective's validation with the model in eval mode (null when it has none). */
  validate(): Validation | null {
    const { objective, model, seed } = this.o;
    if (objective.validate === undefined || this.par?.leader === false) return null;
    const wasTraining = model?.training ?? false;
    model?.eval();
    try {
      return withPrecision(this.o.precision!, () => objective.validate!(new Rng(seed + 1)));
    } finally {
      model?.train(wasTraining);
    }
  }

  async run(): Promise<TrainResult> {
    const o = this.o;
    const { objective, gradAccum } = o;
    const resumedFrom = this.step > 0 ? this.step : null;
    if (resumedFrom === null) this.log?.reset();
    const onSignal = (sig: string) => () => void (this.stopReason = sig);
    const handlers = o.handleSignals ? (["SIGINT", "SIGTERM"] as const).map((s) => [s, onSignal(s)] as const) : [];
    for (const [s, h] of handlers) process.on(s, h);
    const progress = o.quiet ? null : new Progress(resumedFrom === null ? o.label : `resume@${resumedFrom}`);
    const history: StepRecord[] = [];
    this.runStart = o.now();
    this.agreedSeconds = this.elapsedBefore;
    const par = this.par;
    const seenAtStart = this.seen;
    let smooth = NaN, valLoss = NaN, validatedAt = -1;
    let stoppedBy: TrainResult["stoppedBy"] = "budget";
    o.model?.train();
    try {
      for (;;) {
        if (o.signal?.aborted) throw new AbortedError();
        if (par === null ? this.stopReason !== null : this.agreedStop) {
          stoppedBy = "signal";
          break;
        }
        if (this.schedule.finished(this.step, par === null ? this.elapsed() : this.agreedSeconds)) break;
        let lossSum = 0;
        for (let micro = 0; micro < gradAccum; micro++) {
          const batch = objective.next(this.dataRng);
          withPrecision(o.precision!, () => {
            const loss = objective.loss(batch);
            const value = loss.item();
            if (!Number.isFinite(value)) {
              objective.release?.(batch);
              throw new Error(`${objective.name}: the loss became ${value} at step ${this.step + 1} (lower the learning rate?)`);
            }
            lossSum += value;
            if (par !== null && micro === gradAccum - 1) par.beginLastBackward();
            loss.backward(gradAccum === 1 ? undefined : scalar(1 / gradAccum, loss.device));
            loss.release();
          });
          this.seen += objective.count(batch);
          objective.release?.(batch);
        }
        // The LR is set once the gradients are ready: a time budget's schedule then reads the time at
        // the end of the step (less the update), so the step that crosses the budget runs at minLr.
        if (par !== null) {
          const agreed = await par.finish({ loss: lossSum, seconds: this.elapsed(), stop: this.stopReason !== null });
          lossSum = agreed.loss;
          this.agreedSeconds = agreed.seconds;
          this.agreedStop = agreed.stop;
        }
        const lr = this.schedule.lr(this.step, par === null ? this.elapsed() : this.agreedSeconds);
        this.opt.lr = lr;
        if (par?.update !== undefined) par.update(o.clip);
        else {
          clipGradNorm(this.parameters, o.clip);
          this.opt.step();
        }
        this.opt.zeroGrad();
        const stats = objective.afterStep?.() ?? undefined;
        this.step++;
        const value = lossSum / gradAccum;
        smooth = smoothLoss(smooth, value);
        const seconds = this.elapsed();
        const runSeconds = (o.now() - this.runStart) / 1000;
        const rec: StepRecord = { step: this.step, seen: this.seen, loss: value, lr, seconds, rate: Math.round((this.seen - seenAtStart) / runSeconds), schedule: this.schedule.kind };
        if (stats !== undefined) rec.stats = stats;
        if (o.precision !== "fp32") rec.precision = o.precision;
        if (this.step % o.evalEvery === 0 || this.schedule.finished(this.step, seconds)) {
          const v = this.validate();
          validatedAt = this.step;
          if (v !== null && v.loss !== null) valLoss = rec.valLoss = v.loss;
          if (v?.scores !== undefined) rec.scores = v.scores;
        }
        history.push(rec);
        this.log?.append(rec);
        if (o.outDir !== undefined && this.step % o.checkpointEvery === 0) this.checkpoint();
        o.onStep?.(rec);
        progress?.update(this.schedule.fraction(this.step, rec.seconds), {
          step: String(this.step), loss: smooth.toFixed(3), val: Number.isNaN(valLoss) ? "--" : valLoss.toFixed(3), [RATE_LABEL[objective.unit]]: rec.rate.toLocaleString("en-US"),
        });
        // Yield to the event loop so that signal handlers, an abort or a server in this process can run.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (validatedAt !== this.step) {
        const v = this.validate();
        if (v !== null && v.loss !== null) valLoss = v.loss;
      }
      if (o.outDir !== undefined) {
        if (history.length > 0 || listCheckpoints(o.outDir).length === 0) this.checkpoint();
        if (this.log !== null) writeFileSync(join(o.outDir, "loss.svg"), this.log.curveSvg(objective.chart ?? { title: `${objective.name} training`, yLabel: "loss" }));
      }
      if (progress !== null) {
        progress.update(1, { step: String(this.step), loss: Number.isNaN(smooth) ? "--" : smooth.toFixed(3), val: Number.isNaN(valLoss) ? "--" : valLoss.toFixed(3) }, true);
        progress.done();
        if (stoppedBy === "signal" && o.outDir !== undefined) process.stderr.write(`${this.stopReason}: saved a checkpoint at step ${this.step} in ${o.outDir}; run again to resume\n`);
      }
    } finally {
      for (const [s, h] of handlers) process.off(s, h);
    }
    return { steps: this.step, seen: this.seen, seconds: this.elapsed(), valLoss, stoppedBy, resumedFrom, schedule: this.schedule.kind, history };
  }
}

/** The options given a value (an explicit `undefined` keeps the default). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function scalar(v: number, on: Device): Tensor {
  return fromHost(Float32Array.of(v), [], on);
}
