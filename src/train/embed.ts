/**
 * A sentence-embedding objective on unlabeled text (SimCSE-style), for the one Trainer: every
 * step reads B spans of the token stream; each span is read twice, and the two pooled views of
 * one span are a positive pair while the other B - 1 spans of the batch are its negatives
 * (symmetric InfoNCE over cosine similarities / temperature, 0.05 by default).
 *
 * The two views differ by:
 *   dropout     dropout noise: the body runs twice with dropout on (p = `noise` where the
 *               model's own dropout is 0, as Plinth's presets have it), so the pair is the
 *               same text seen through two masks (SimCSE's unsupervised recipe);
 *   neighbours  the span and the span that follows it in the stream (neighbouring text of one
 *               document, mostly), with the model's own dropout.
 * Span lengths vary per batch (16 tokens up to `span`), so the body learns to embed short texts
 * like the ones a task labels, not only full windows.
 *
 *     new Trainer({ model, objective: sentenceEmbedding(model, { train, val, batch: 64, span: 64, pooling: "mean", causal: true, padId: eot }), steps: 500 });
 */
import type { TokenSource } from "../data/tokens.js";
import { l2Normalize } from "../models/clip/ops.js";
import { type Pooling, type PoolOptions, type HiddenBody, poolHidden } from "../models/pooling.js";
import { Dropout } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import type { Rng } from "../tensor/rng.js";
import { Tensor, ids as idsTensor } from "../tensor/tensor.js";
import { add, scale } from "../tensor/ops/elementwise.js";
import { matmul } from "../tensor/ops/matmul.js";
import { crossEntropy } from "../tensor/ops/nn.js";
import { slice, transpose } from "../tensor/ops/views.js";
import type { DataParallel } from "./parallel/index.js";
import type { Objective } from "./trainer.js";

export type EmbedViews = "dropout" | "neighbours";

export interface SentenceEmbeddingOptions {
  train: TokenSource;
  val: TokenSource;
  /** Spans per batch (each has B - 1 negatives). */
  batch: number;
  /** The longest span in tokens (each batch draws one length in [min(16, span), span]). */
  span: number;
  pooling: Pooling;
  causal: boolean;
  padId: number;
  views?: EmbedViews;
  temperature?: number;
  /** Dropout probability for the dropout views where the model has none (default 0.1). */
  noise?: number;
  /** Validation batches (default 8). */
  evalBatches?: number;
  /**
   * Data-parallel: `batch` is the global batch; this rank embeds its rows of it and the
   * embeddings of every rank are all-gathered (with their gradient), so the InfoNCE loss is the
   * single-process loss over the whole batch.
   */
  parallel?: Pick<DataParallel, "rows" | "gather">;
}

export interface SpanBatch {
  a: number[][];
  b: number[][];
  /** Data-parallel: the tokens of the whole global batch (a rank holds only its rows). */
  tokens?: number;
}

/** The Dropout layers of a module tree (the walk Module.train makes). */
function dropoutLayers(model: object): Dropout[] {
  const out: Dropout[] = [];
  const walk = (m: unknown): void => {
    if (m instanceof Dropout) out.push(m);
    else if (m instanceof Module) for (const v of Object.values(m)) walk(v);
    else if (Array.isArray(m)) m.forEach(walk);
  };
  walk(model);
  return out;
}

/** Runs fn with every zero-probability Dropout set to p (Dropout's p is fixed for users, not for this noise). */
function withNoise<T>(layers: Dropout[], p: number, fn: () => T): T {
  const zero = layers.filter((d) => d.p === 0);
  for (const d of zero) (d as { p: number }).p = p;
  try {
    return fn();
  } finally {
    for (const d of zero) (d as { p: number }).p = 0;
  }
}

export function sentenceEmbedding(model: HiddenBody & Module, o: SentenceEmbeddingOptions): Objective<SpanBatch> {
  const { train, val, batch, span, pooling, views = "dropout", temperature = 0.05, noise = 0.1, evalBatches = 8 } = o;
  if (!(Number.isInteger(batch) && batch >= 2)) throw new RangeError(`sentenceEmbedding: batch ${batch} must be an integer >= 2 (the other spans are the negatives)`);
  if (!(Number.isInteger(span) && span >= 2)) throw new RangeError(`sentenceEmbedding: span must be an integer >= 2, got ${span}`);
  if (!(temperature > 0)) throw new RangeError(`sentenceEmbedding: temperature must be > 0, got ${temperature}`);
  if (!(noise >= 0 && noise < 1)) throw new RangeError(`sentenceEmbedding: noise must be in [0, 1), got ${noise}`);
  if (views !== "dropout" && views !== "neighbours") throw new RangeError(`sentenceEmbedding: views must be "dropout" or "neighbours", got ${JSON.stringify(views)}`);
  for (const [name, src, need] of [["training", train, views === "neighbours" ? 2 * span : span], ["validation", val, 2 * span]] as const) {
    if (src.length < need + 1) throw new RangeError(`sentenceEmbedding: the ${name} data has ${src.length} tokens, fewer than ${need + 1} (one pair of spans)`);
  }
  const shortest = Math.min(16, span);
  const layers = dropoutLayers(model);
  const pool: PoolOptions = { causal: o.causal, padId: o.padId };
  const pending: Tensor[] = [];
  const mine = o.parallel?.rows(batch, "batch of spans");

  const draw = (src: TokenSource, rng: Rng, mode: EmbedViews, starts?: number[]): SpanBatch => {
    const T = shortest + rng.int(span - shortest + 1);
    const a: number[][] = [], b: number[][] = [];
    for (let i = 0; i < batch; i++) {
      const n = mode === "neighbours" ? 2 * T : T;
      const at = starts?.[i] ?? rng.int(src.length - n);
      const buf = new Int32Array(n);
      src.read(at, buf);
      a.push(Array.from(buf.subarray(0, T)));
      b.push(mode === "neighbours" ? Array.from(buf.subarray(T)) : a[i]);
    }
    return { a, b };
  };

  /** Symmetric InfoNCE of the two views and the in-batch top-1 retrieval accuracy. */
  const lossOf = (x: SpanBatch, gathered = false): { loss: Tensor; top1: () => number } => {
    const n = x.a.length;
    const forward = () => {
      // Both views in one forward: one batch of 2B equal-length rows, so dropout draws fresh masks per row.
      const r = poolHidden(model, [...x.a, ...x.b], pooling, pool);
      pending.push(...r.inputs);
      return r.pooled;
    };
    const pooled = views === "dropout" && model.training ? withNoise(layers, noise, forward) : forward();
    const unit = l2Normalize(pooled);
    let u = slice(unit, 0, 0, n), v = slice(unit, 0, n, 2 * n);
    if (gathered) {
      u = o.parallel!.gather(u);
      v = o.parallel!.gather(v);
    }
    const B = u.shape[0];
    const logits = scale(matmul(u, transpose(v)), 1 / temperature);
    const t1 = idsTensor(Array.from({ length: B }, (_, i) => i), [B]), t2 = idsTensor(Array.from({ length: B }, (_, i) => i), [B]);
    pending.push(t1, t2);
    const loss = scale(add(crossEntropy(logits, t1), crossEntropy(transpose(logits), t2)), 0.5);
    return {
      loss,
      top1: () => {
        const l = logits.toArray();
        let hits = 0;
        for (let i = 0; i < B; i++) {
          let best = 0;
          for (let j = 1; j < B; j++) if (l[i * B + j] > l[i * B + best]) best = j;
          if (best === i) hits++;
        }
        return hits / B;
      },
    };
  };
  const release = (): void => {
    for (const t of pending) if (!t.released) t.release();
    pending.length = 0;
  };

  return {
    name: "embed",
    unit: "tokens",
    chart: { title: `sentence-embedding (${views} views) training`, yLabel: "InfoNCE (nats)" },
    next(rng) {
      const global = draw(train, rng, views);
      if (mine === undefined) return global;
      // Every rank draws the whole global batch (the data RNG stays in step) and keeps its rows.
      const tokens = global.a.reduce((s, r) => s + r.length, 0) * 2;
      return { a: global.a.slice(mine.lo, mine.hi), b: global.b.slice(mine.lo, mine.hi), tokens };
    },
    loss: (x) => lossOf(x, mine !== undefined).loss,
    count: (x) => x.tokens ?? x.a.reduce((s, r) => s + r.length, 0) * 2,
    release,
    validate(rng) {
      // Neighbouring spans spread evenly over the held-out stream, whatever the training views: two
      // noiseless views of one span would be identical, so only neighbours measure what was learned.
      let total = 0, top1 = 0;
      const stride = Math.max(1, Math.floor((val.length - 2 * span - 1) / (evalBatches * batch)));
      for (let k = 0; k < evalBatches; k++) {
        const starts = Array.from({ length: batch }, (_, i) => Math.min(val.length - 2 * span - 1, (k * batch + i) * stride));
        const x = draw(val, rng, "neighbours", starts);
        noGrad(() => {
          const r = lossOf(x);
          total += r.loss.item();
          top1 += r.top1();
        });
        release();
      }
      return { loss: total / evalBatches, scores: { valTop1: top1 / evalBatches } };
    },
  };
}
