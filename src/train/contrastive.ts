/**
 * Contrastive (CLIP) pretraining on image–caption pairs. The token-window Trainer does not
 * fit pairs, so this loop reuses its parts: AdamW with warm-up + cosine decay and decay
 * groups, gradient clipping, atomic checkpoints with exact resume (step, RNG states, schedule),
 * metrics JSONL, a progress line with images/s and ETA, and a loss-curve SVG.
 *
 * Each step draws B distinct images (epochs of shuffled order), one random caption of each,
 * augments the images lightly, and minimises the symmetric InfoNCE loss. logit_scale is
 * clamped to ln(100) after every step, as in CLIP's paper.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CaptionEncoder } from "../data/captions.js";
import { augmentInto, normalizeInto } from "../data/images.js";
import { imageOf, type PairDataset } from "../data/pairs.js";
import type { ClipModel } from "../models/clip/model.js";
import { AdamW, clipGradNorm, cosineSchedule } from "../optim/adamw.js";
import { noGrad } from "../tensor/autograd.js";
import { Rng } from "../tensor/rng.js";
import { Tensor, empty } from "../tensor/tensor.js";
import { listCheckpoints, loadCheckpoint, saveCheckpoint, type CheckpointState } from "./checkpoint.js";
import { lineChartSvg } from "./plot.js";
import { Progress } from "./progress.js";

export interface ContrastiveOptions {
  model: ClipModel;
  captions: CaptionEncoder;
  train: PairDataset;
  /** Held-out pairs for the validation loss (first caption of each, no augmentation). */
  val?: PairDataset;
  outDir: string;
  batch: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  weightDecay?: number;
  clip?: number;
  steps?: number;
  seconds?: number;
  evalEvery?: number;
  checkpointEvery?: number;
  keepLast?: number;
  seed?: number;
  augment?: boolean;
  quiet?: boolean;
  onStep?: (r: ContrastiveStep) => void;
  /** Extra held-out scores (e.g. zero-shot accuracy) computed at each evaluation, stored in the step's record. */
  onEval?: () => Record<string, number>;
}

export interface ContrastiveStep {
  step: number;
  images: number;
  loss: number;
  lr: number;
  logitScale: number;
  seconds: number;
  imagesPerSecond: number;
  valLoss?: number;
  scores?: Record<string, number>;
}

export interface ContrastiveResult {
  steps: number;
  images: number;
  seconds: number;
  valLoss: number | null;
  resumedFrom: number | null;
  history: ContrastiveStep[];
}

const MAX_LOGIT_SCALE = Math.log(100);

/** Pixels [B, 3, S, S] and caption ids [B, T] for the pairs (index, caption) given. */
export function pairBatch(ds: PairDataset, enc: CaptionEncoder, picks: readonly { index: number; caption: number }[], rng: Rng | null): { pixels: Tensor; ids: Tensor } {
  const B = picks.length, S = ds.size, n = ds.pixelsPer;
  const pixels = empty([B, 3, S, S]);
  const ids = empty([B, enc.length], "int32");
  const px = pixels.data, id = ids.ids;
  picks.forEach(({ index, caption }, b) => {
    const rgb = imageOf(ds, index);
    if (rng !== null) augmentInto(rgb, S, px, b * n, rng);
    else normalizeInto(rgb, px, b * n);
    enc.encodeInto(ds.items[index].captions[caption], id, b * enc.length);
  });
  return { pixels, ids };
}

export class ContrastiveTrainer {
  readonly opt: AdamW;
  private readonly o: Required<Omit<ContrastiveOptions, "val" | "steps" | "seconds" | "onStep" | "onEval">> & Pick<ContrastiveOptions, "val" | "steps" | "seconds" | "onStep" | "onEval">;
  private readonly dataRng: Rng;
  private step = 0;
  private images = 0;
  private elapsedBefore = 0;
  private totalSteps: number;
  private order: number[] = [];
  private cursor = 0;
  private stop: string | null = null;

  constructor(options: ContrastiveOptions) {
    this.o = { lr: 5e-4, minLr: (options.lr ?? 5e-4) / 10, warmup: 50, weightDecay: 0.1, clip: 1, evalEvery: 100, checkpointEvery: 500, keepLast: 2, seed: 1234, augment: true, quiet: false, ...options };
    const { batch, train } = this.o;
    if (!Number.isInteger(batch) || batch < 2) throw new RangeError(`ContrastiveTrainer: batch ${batch} must be an integer >= 2 (the other pairs are the negatives)`);
    if (train.items.length < batch) throw new RangeError(`ContrastiveTrainer: ${train.items.length} training pairs are fewer than one batch of ${batch}`);
    if (this.o.steps === undefined && this.o.seconds === undefined) throw new Error("ContrastiveTrainer: give a budget: steps or seconds");
    if (train.size !== this.o.model.config.vision_config.image_size) {
      throw new RangeError(`ContrastiveTrainer: images are ${train.size}x${train.size}, the model expects vision_config.image_size ${this.o.model.config.vision_config.image_size}`);
    }
    this.dataRng = new Rng(this.o.seed);
    this.opt = new AdamW(this.o.model.paramGroups(this.o.weightDecay), { lr: this.o.lr, betas: [0.9, 0.98], eps: 1e-6 });
    this.totalSteps = this.o.steps ?? Infinity;
    mkdirSync(this.o.outDir, { recursive: true });
  }

  /** Asks the loop to checkpoint and stop after the current step (what SIGINT/SIGTERM do). */
  requestStop(reason = "stop requested"): void {
    this.stop = reason;
  }

  private get metricsPath(): string {
    return join(this.o.outDir, "metrics.jsonl");
  }

  /** Loads the newest checkpoint in outDir, if any; returns its step. */
  resume(): number | null {
    const all = listCheckpoints(this.o.outDir);
    if (all.length === 0) return null;
    const state = loadCheckpoint(all[all.length - 1].path, this.o.model, this.opt);
    if (JSON.stringify(state.config) !== JSON.stringify(this.o.model.config)) throw new Error(`resume: ${all[all.length - 1].path} was written for another CLIP config`);
    const extra = state.extra as { order: number[]; cursor: number };
    this.step = state.step;
    this.images = state.tokens;
    this.elapsedBefore = state.elapsedSeconds;
    this.totalSteps = state.totalSteps < 0 ? Infinity : state.totalSteps;
    this.dataRng.setState(state.dataRng);
    this.o.model.rng.setState(state.modelRng);
    this.order = extra.order;
    this.cursor = extra.cursor;
    if (existsSync(this.metricsPath)) {
      const kept = readFileSync(this.metricsPath, "utf8").split("\n").filter((l) => l.trim() !== "" && (JSON.parse(l) as ContrastiveStep).step <= state.step);
      writeFileSync(this.metricsPath, kept.map((l) => l + "\n").join(""));
    }
    return state.step;
  }

  checkpoint(seconds: number): string {
    const state: CheckpointState = {
      version: 1, step: this.step, tokens: this.images, elapsedSeconds: seconds, totalSteps: Number.isFinite(this.totalSteps) ? this.totalSteps : -1,
      dataRng: this.dataRng.getState(), modelRng: this.o.model.rng.getState(), optimizer: { step: this.opt.steps, lr: this.opt.lr },
      config: this.o.model.config, extra: { objective: "contrastive", order: this.order, cursor: this.cursor },
    };
    return saveCheckpoint(this.o.outDir, this.o.model, this.opt, state, this.o.keepLast);
  }

  private nextPicks(): { index: number; caption: number }[] {
    const { train, batch } = this.o;
    const picks: { index: number; caption: number }[] = [];
    while (picks.length < batch) {
      if (this.cursor >= this.order.length) {
        this.order = Array.from({ length: train.items.length }, (_, i) => i);
        for (let i = this.order.length - 1; i > 0; i--) {
          const j = this.dataRng.int(i + 1);
          [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
        }
        this.cursor = 0;
      }
      const index = this.order[this.cursor++];
      picks.push({ index, caption: this.dataRng.int(train.items[index].captions.length) });
    }
    return picks;
  }

  /** Mean InfoNCE loss over the validation pairs in batches of B (first caption, no augmentation). */
  evaluate(): number | null {
    const { val, batch, model, captions } = this.o;
    if (val === undefined || val.items.length < 2) return null;
    const wasTraining = model.training;
    model.eval();
    let total = 0, count = 0;
    for (let b0 = 0; b0 + 2 <= val.items.length; b0 += batch) {
      const picks = Array.from({ length: Math.min(batch, val.items.length - b0) }, (_, i) => ({ index: b0 + i, caption: 0 }));
      if (picks.length < 2) break;
      const loss = noGrad(() => {
        const { pixels, ids } = pairBatch(val, captions, picks, null);
        return model.forward(pixels, ids).loss.item();
      });
      total += loss * picks.length;
      count += picks.length;
    }
    model.train(wasTraining);
    return total / count;
  }

  async run(): Promise<ContrastiveResult> {
    const o = this.o;
    const resumedFrom = this.step > 0 ? this.step : null;
    if (resumedFrom === null) writeFileSync(this.metricsPath, "");
    const progress = new Progress(resumedFrom === null ? "contrastive" : `resume@${resumedFrom}`);
    const start = performance.now();
    const runSeconds = () => (performance.now() - start) / 1000;
    const imagesAtStart = this.images;
    const history: ContrastiveStep[] = [];
    let smooth = NaN, valLoss: number | null = null, fitted = this.step > 0 && Number.isFinite(this.totalSteps);
    let fitMark = 0;
    this.stop = null;
    const onSignal = (sig: string) => () => void (this.stop = sig);
    const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => [s, onSignal(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    o.model.train();
    try {
      while (this.stop === null && this.step < this.totalSteps) {
        const seconds = this.elapsedBefore + runSeconds();
        if (o.seconds !== undefined && seconds >= o.seconds) break;
        // A time budget sets the schedule length from the measured step time: after 10 steps, then
        // every 100 steps (timed from step 10, past warm-up allocations) until half the budget is
        // spent, since on a shared machine the speed of the first steps can mislead.
        const ran = this.step - (resumedFrom ?? 0);
        if (o.seconds !== undefined && o.steps === undefined && !fitted && (ran === 10 || (ran > 10 && ran % 100 === 0))) {
          if (ran === 10) fitMark = runSeconds();
          const perStep = ran === 10 ? runSeconds() / 10 : (runSeconds() - fitMark) / (ran - 10);
          this.totalSteps = this.step + Math.max(10, Math.floor((o.seconds - seconds) / perStep));
          fitted = seconds >= o.seconds / 2;
        }
        const lr = cosineSchedule(this.step, { lr: o.lr, warmup: o.warmup, totalSteps: Number.isFinite(this.totalSteps) ? this.totalSteps : 1e9, minLr: o.minLr });
        this.opt.lr = lr;
        const { pixels, ids } = pairBatch(o.train, o.captions, this.nextPicks(), o.augment ? this.dataRng : null);
        const { loss } = o.model.forward(pixels, ids);
        const value = loss.item();
        loss.backward();
        loss.release();
        pixels.release();
        ids.release();
        clipGradNorm(o.model.parameters(), o.clip);
        this.opt.step();
        this.opt.zeroGrad();
        const ls = o.model.logit_scale.data;
        ls[0] = Math.min(Math.max(ls[0], 0), MAX_LOGIT_SCALE);
        this.step++;
        this.images += o.batch;
        if (!Number.isFinite(value)) throw new Error(`contrastive training diverged at step ${this.step}: loss is ${value} (lower the learning rate?)`);
        smooth = Number.isNaN(smooth) ? value : 0.95 * smooth + 0.05 * value;
        const sec = this.elapsedBefore + runSeconds();
        const rec: ContrastiveStep = { step: this.step, images: this.images, loss: value, lr, logitScale: ls[0], seconds: sec, imagesPerSecond: Math.round((this.images - imagesAtStart) / runSeconds()) };
        if (this.step % o.evalEvery === 0 || this.step >= this.totalSteps) {
          valLoss = this.evaluate();
          if (valLoss !== null) rec.valLoss = valLoss;
          if (o.onEval !== undefined) {
            const wasTraining = o.model.training;
            o.model.eval();
            rec.scores = o.onEval();
            o.model.train(wasTraining);
          }
        }
        history.push(rec);
        appendFileSync(this.metricsPath, JSON.stringify(rec) + "\n");
        if (this.step % o.checkpointEvery === 0) this.checkpoint(sec);
        o.onStep?.(rec);
        if (!o.quiet) {
          const frac = Math.max(o.seconds !== undefined ? sec / o.seconds : 0, Number.isFinite(this.totalSteps) ? this.step / this.totalSteps : 0);
          progress.update(frac, { step: String(this.step), loss: smooth.toFixed(3), val: valLoss === null ? "--" : valLoss.toFixed(3), "img/s": String(rec.imagesPerSecond) });
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (history.length > 0 && history[history.length - 1].valLoss === undefined) valLoss = this.evaluate();
      const seconds = this.elapsedBefore + runSeconds();
      this.checkpoint(seconds);
      this.writeCurve();
      if (!o.quiet) {
        progress.update(1, { step: String(this.step), loss: Number.isNaN(smooth) ? "--" : smooth.toFixed(3) }, true);
        progress.done();
        if (this.stop !== null) process.stderr.write(`${this.stop}: saved a checkpoint at step ${this.step} in ${o.outDir}; run again to resume\n`);
      }
      return { steps: this.step, images: this.images, seconds, valLoss, resumedFrom, history };
    } finally {
      for (const [s, h] of handlers) process.off(s, h);
    }
  }

  private writeCurve(): void {
    const records = readFileSync(this.metricsPath, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as ContrastiveStep);
    let s = NaN;
    const train = records.map((r) => [r.images, (s = Number.isNaN(s) ? r.loss : 0.95 * s + 0.05 * r.loss)] as [number, number]);
    const val = records.filter((r) => r.valLoss !== undefined).map((r) => [r.images, r.valLoss!] as [number, number]);
    writeFileSync(join(this.o.outDir, "loss.svg"), lineChartSvg(
      [{ name: "train loss (EMA)", color: "#1f77b4", points: train }, { name: "held-out loss", color: "#d62728", points: val }],
      { title: "contrastive (CLIP) pretraining", xLabel: "images seen", yLabel: "symmetric InfoNCE (nats)" },
    ));
  }
}
