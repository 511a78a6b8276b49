/**
 * Contrastive (CLIP) pretraining on image–caption pairs: an objective for the Trainer.
 *
 * Each step draws B distinct images (epochs of shuffled order), one random caption of each,
 * augments the images lightly, and minimises the symmetric InfoNCE loss. logit_scale is
 * clamped to ln(100) after every step, as in CLIP's paper. Validation is the loss on held-out
 * pairs (first caption, no augmentation), plus any scores `onEval` adds (zero-shot accuracy).
 *
 *     new Trainer({ model: clip, objective: contrastive(clip, { captions, train, val, batch: 64 }), betas: [0.9, 0.98], eps: 1e-6, outDir, seconds: 180 });
 *
 * ContrastiveTrainer is that call with CLIP's defaults and results counted in images.
 */
import type { CaptionEncoder } from "../data/captions.js";
import { augmentInto, normalizeInto } from "../data/images.js";
import { imageOf, type PairDataset } from "../data/pairs.js";
import type { ClipModel } from "../models/clip/model.js";
import { contrastiveLoss } from "../models/clip/ops.js";
import { noGrad } from "../tensor/autograd.js";
import type { Rng } from "../tensor/rng.js";
import { Tensor, empty } from "../tensor/tensor.js";
import type { DataParallel } from "./parallel/index.js";
import { Trainer, type Objective, type StepRecord } from "./trainer.js";

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

export interface ContrastiveObjectiveOptions {
  captions: CaptionEncoder;
  train: PairDataset;
  /** Held-out pairs for the validation loss (first caption of each, no augmentation). */
  val?: PairDataset;
  batch: number;
  augment?: boolean;
  /** Extra held-out scores (e.g. zero-shot accuracy) computed at each validation, stored in the step's record. */
  onEval?: () => Record<string, number>;
  /**
   * Data-parallel: this rank encodes its rows of every global batch of `batch` pairs, and the
   * image and text embeddings of all ranks are all-gathered (with their gradient) so that the
   * InfoNCE loss is the single-process loss over the whole global batch.
   */
  parallel?: Pick<DataParallel, "rows" | "gather">;
}

export type PairBatch = { pixels: Tensor; ids: Tensor };

/** Rows [lo, hi) of a batch tensor [B, ...]. */
function rowsOf(t: Tensor, lo: number, hi: number): Tensor {
  const per = t.size / t.shape[0];
  const out = empty([hi - lo, ...t.shape.slice(1)], t.dtype);
  if (t.dtype === "int32") out.ids.set(t.ids.subarray(lo * per, hi * per));
  else out.data.set(t.data.subarray(lo * per, hi * per));
  return out;
}

export function contrastive(model: ClipModel, { captions, train, val, batch, augment = true, onEval, parallel }: ContrastiveObjectiveOptions): Objective<PairBatch> {
  if (!Number.isInteger(batch) || batch < 2) throw new RangeError(`contrastive: batch ${batch} must be an integer >= 2 (the other pairs are the negatives)`);
  if (train.items.length < batch) throw new RangeError(`contrastive: ${train.items.length} training pairs are fewer than one batch of ${batch}`);
  const mine = parallel?.rows(batch, "batch of pairs");
  if (train.size !== model.config.vision_config.image_size) {
    throw new RangeError(`contrastive: images are ${train.size}x${train.size}, the model expects vision_config.image_size ${model.config.vision_config.image_size}`);
  }
  let order: number[] = [], cursor = 0;
  const picks = (rng: Rng) => {
    const out: { index: number; caption: number }[] = [];
    while (out.length < batch) {
      if (cursor >= order.length) {
        order = Array.from({ length: train.items.length }, (_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          [order[i], order[j]] = [order[j], order[i]];
        }
        cursor = 0;
      }
      const index = order[cursor++];
      out.push({ index, caption: rng.int(train.items[index].captions.length) });
    }
    return out;
  };
  return {
    name: "contrastive",
    unit: "images",
    unitsPerBatch: batch,
    chart: { title: "contrastive (CLIP) pretraining", yLabel: "symmetric InfoNCE (nats)" },
    next(rng) {
      const global = pairBatch(train, captions, picks(rng), augment ? rng : null);
      if (mine === undefined) return global;
      // Every rank draws (and augments) the whole global batch, so the data RNG stays in step; it keeps its rows.
      const local = { pixels: rowsOf(global.pixels, mine.lo, mine.hi), ids: rowsOf(global.ids, mine.lo, mine.hi) };
      global.pixels.release();
      global.ids.release();
      return local;
    },
    loss({ pixels, ids }) {
      if (parallel === undefined) return model.forward(pixels, ids).loss;
      const images = parallel.gather(model.imageEmbeds(pixels)), texts = parallel.gather(model.textEmbeds(ids));
      return contrastiveLoss(images, texts, model.logit_scale).loss;
    },
    count: () => batch,
    release({ pixels, ids }) {
      pixels.release();
      ids.release();
    },
    afterStep() {
      const ls = model.logit_scale.data;
      ls[0] = Math.min(Math.max(ls[0], 0), MAX_LOGIT_SCALE);
      return { logitScale: ls[0] };
    },
    validate() {
      const scores = onEval?.();
      return { loss: heldOutLoss(model, captions, val, batch), ...(scores !== undefined ? { scores } : {}) };
    },
    state: () => ({ order, cursor }),
    restore(extra) {
      order = (extra.order as number[] | undefined) ?? [];
      cursor = (extra.cursor as number | undefined) ?? 0;
    },
  };
}

/** Mean InfoNCE loss over the validation pairs in batches of B (first caption, no augmentation); null without 2 pairs. */
function heldOutLoss(model: ClipModel, captions: CaptionEncoder, val: PairDataset | undefined, batch: number): number | null {
  if (val === undefined || val.items.length < 2) return null;
  let total = 0, count = 0;
  for (let b0 = 0; b0 + 2 <= val.items.length; b0 += batch) {
    const picks = Array.from({ length: Math.min(batch, val.items.length - b0) }, (_, i) => ({ index: b0 + i, caption: 0 }));
    const loss = noGrad(() => {
      const { pixels, ids } = pairBatch(val, captions, picks, null);
      return model.forward(pixels, ids).loss.item();
    });
    total += loss * picks.length;
    count += picks.length;
  }
  return total / count;
}

export interface ContrastiveOptions extends Omit<ContrastiveObjectiveOptions, "parallel"> {
  model: ClipModel;
  /** Data-parallel over MPI ranks (train/parallel): the batch is the global batch. */
  parallel?: DataParallel;
  outDir: string;
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
  quiet?: boolean;
  onStep?: (r: ContrastiveStep) => void;
  now?: () => number;
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

const toStep = (r: StepRecord): ContrastiveStep => ({
  step: r.step, images: r.seen, loss: r.loss, lr: r.lr, logitScale: r.stats!.logitScale, seconds: r.seconds, imagesPerSecond: r.rate,
  ...(r.valLoss !== undefined ? { valLoss: r.valLoss } : {}), ...(r.scores !== undefined ? { scores: r.scores } : {}),
});

/** The Trainer with the contrastive objective and CLIP's optimizer settings (AdamW β2 0.98, ε 1e-6). */
export class ContrastiveTrainer {
  readonly trainer: Trainer<PairBatch>;

  constructor(o: ContrastiveOptions) {
    const lr = o.lr ?? 5e-4;
    this.trainer = new Trainer({
      model: o.model, objective: contrastive(o.model, o), parallel: o.parallel?.attach, outDir: o.outDir, lr, minLr: o.minLr ?? lr / 10, warmup: o.warmup ?? 50, weightDecay: o.weightDecay,
      betas: [0.9, 0.98], eps: 1e-6, clip: o.clip, steps: o.steps, seconds: o.seconds, evalEvery: o.evalEvery ?? 100, checkpointEvery: o.checkpointEvery ?? 500,
      keepLast: o.keepLast ?? 2, seed: o.seed, quiet: o.quiet, now: o.now, onStep: o.onStep && ((r) => o.onStep!(toStep(r))),
    });
  }

  resume(): number | null {
    return this.trainer.resume();
  }

  requestStop(reason?: string): void {
    this.trainer.requestStop(reason);
  }

  async run(): Promise<ContrastiveResult> {
    const r = await this.trainer.run();
    return { steps: r.steps, images: r.seen, seconds: r.seconds, valLoss: Number.isNaN(r.valLoss) ? null : r.valLoss, resumedFrom: r.resumedFrom, history: r.history.map(toStep) };
  }
}
