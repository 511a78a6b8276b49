/**
 * Linear probe: frozen pooled embeddings of the base (its encoder states pooled as the base
 * records: mean by default, or the last token / first position), standardised, then multinomial logistic regression
 * trained with the project's own ops (linear + crossEntropy + AdamW with weight decay),
 * early-stopped on a held-out slice of the training examples.
 *
 *     const X = embedTexts(bert, tok, task.train.map((e) => exampleText(e)));
 *     const { probe } = trainProbe(X, task.train.map((e) => labelIndex(task, e.label)), task.labels.length);
 *     probeProbs(probe, embedTexts(bert, tok, texts));   // number[][]
 */
import type { TextTokenizer } from "../data/tokenizer.js";
import { type Pooling, type TextModel, contextLength, embedSequences, poolingOf } from "../models/registry.js";
import { noGrad } from "../tensor/autograd.js";
import { ids as idsTensor, tensor, zeros } from "../tensor/tensor.js";
import { linear } from "../tensor/ops/matmul.js";
import { crossEntropy } from "../tensor/ops/nn.js";
import { AdamW } from "../optim/adamw.js";
import { shuffled } from "../tasks/task.js";
import { type PieceOptions, type Steps, lengthPieces, paddedTokens, sum, tokenizeSteps } from "./steps.js";

/** A text base (GPT or BERT): the registry's TextModel. */
export type Encoder = TextModel;

const maxPositions = contextLength;

export interface EmbedOptions {
  /** Texts are cut to this many tokens (default and maximum: the model's context). */
  maxTokens?: number;
  /** Default: the base's recorded pooling (mean unless its config.json names another). */
  pooling?: Pooling;
}

/** Pooled embeddings of texts under noGrad (each truncated to the model's context; batched by length). */
export function embedTexts(model: Encoder, tok: TextTokenizer, texts: readonly string[], { maxTokens = maxPositions(model), pooling = poolingOf(model) }: EmbedOptions = {}): Float32Array[] {
  const limit = Math.min(maxTokens, maxPositions(model));
  const seqs = texts.map((t) => {
    const ids = Array.from(tok.encode(t)).slice(0, limit);
    return ids.length > 0 ? ids : [tok.eot];  // an empty text still gets one token to pool
  });
  return embedSequences(model, seqs, pooling);
}

/**
 * embedTexts in pieces (steps.ts): tokenized in slices, then embedded in forwards of bounded
 * size, shortest first; the vectors equal embedTexts'.
 */
export function* embedTextsSteps(model: Encoder, tok: TextTokenizer, texts: readonly string[], { maxTokens = maxPositions(model), pooling = poolingOf(model) }: EmbedOptions = {}, p: PieceOptions = {}): Steps<Float32Array[]> {
  const limit = Math.min(maxTokens, maxPositions(model));
  const full = yield* tokenizeSteps(texts, (t) => Array.from(tok.encode(t)), p);
  const seqs = full.map((ids) => (ids.length > 0 ? ids.slice(0, limit) : [tok.eot]));
  const lengths = seqs.map((s) => s.length);
  yield { kind: "plan", sequences: seqs.length, tokens: sum(lengths), inputTokens: sum(full.map((ids) => ids.length)) };
  const out = new Array<Float32Array>(seqs.length);
  for (const piece of lengthPieces(lengths, p)) {
    const vectors = embedSequences(model, piece.map((i) => seqs[i]), pooling);
    piece.forEach((i, k) => (out[i] = vectors[k]));
    yield { kind: "forward", tokens: paddedTokens(piece, lengths) };
  }
  return out;
}

export interface LinearProbe {
  dim: number;
  numClasses: number;
  /** Feature standardisation learned on the training features. */
  mean: Float32Array;
  std: Float32Array;
  /** [dim, numClasses] (in_out layout) and [numClasses]. */
  weight: Float32Array;
  bias: Float32Array;
}

export interface ProbeOptions {
  epochs?: number;
  lr?: number;
  weightDecay?: number;
  /** Fraction held out for early stopping (none when fewer than 10 examples). */
  valFraction?: number;
  /** Epochs without a better held-out loss before stopping. */
  patience?: number;
  seed?: number;
}

export interface ProbeResult {
  probe: LinearProbe;
  history: { epoch: number; trainLoss: number; valLoss: number | null }[];
  bestEpoch: number;
}

function checkFeatures(op: string, X: readonly Float32Array[], dim?: number): number {
  if (X.length === 0) throw new RangeError(`${op}: no examples`);
  const D = dim ?? X[0].length;
  X.forEach((x, i) => {
    if (x.length !== D) throw new RangeError(`${op}: example ${i} has ${x.length} features, expected ${D}`);
  });
  return D;
}

function standardise(X: readonly Float32Array[], rows: number[], mu: Float32Array, sd: Float32Array): Float32Array {
  const D = mu.length;
  const out = new Float32Array(rows.length * D);
  rows.forEach((i, r) => {
    for (let d = 0; d < D; d++) out[r * D + d] = (X[i][d] - mu[d]) / sd[d];
  });
  return out;
}

export function trainProbe(X: readonly Float32Array[], y: readonly number[], numClasses: number, options: ProbeOptions = {}): ProbeResult {
  const { epochs = 300, lr = 0.05, weightDecay = 1e-2, valFraction = 0.2, patience = 30, seed = 0 } = options;
  const D = checkFeatures("trainProbe", X);
  if (y.length !== X.length) throw new RangeError(`trainProbe: ${X.length} feature rows for ${y.length} labels`);
  if (!Number.isInteger(numClasses) || numClasses < 2) throw new RangeError(`trainProbe: numClasses must be an integer >= 2, got ${numClasses}`);
  y.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c >= numClasses) throw new RangeError(`trainProbe: label ${c} of example ${i} is outside [0, ${numClasses})`);
  });

  const order = shuffled(Array.from({ length: X.length }, (_, i) => i), seed);
  const nVal = X.length >= 10 ? Math.max(1, Math.floor(X.length * valFraction)) : 0;
  const valRows = order.slice(0, nVal), trainRows = order.slice(nVal);

  const mu = new Float32Array(D), sd = new Float32Array(D);
  for (const i of trainRows) for (let d = 0; d < D; d++) mu[d] += X[i][d] / trainRows.length;
  for (const i of trainRows) for (let d = 0; d < D; d++) sd[d] += (X[i][d] - mu[d]) ** 2 / trainRows.length;
  for (let d = 0; d < D; d++) sd[d] = Math.sqrt(sd[d]) + 1e-6;

  const xTrain = standardise(X, trainRows, mu, sd), xVal = standardise(X, valRows, mu, sd);
  const W = zeros([D, numClasses]), b = zeros([numClasses]);
  W.requiresGrad = b.requiresGrad = true;
  const opt = new AdamW([{ params: [W], weightDecay }, { params: [b], weightDecay: 0 }], { lr });
  const history: ProbeResult["history"] = [];
  let best = { loss: Infinity, epoch: 0, W: W.data.slice(), b: b.data.slice() };
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const xt = tensor(xTrain, [trainRows.length, D]), yt = idsTensor(trainRows.map((i) => y[i]), [trainRows.length]);
      const loss = crossEntropy(linear(xt, W, b), yt);
      const trainLoss = loss.item();
      loss.backward();
      opt.step();
      opt.zeroGrad();
      for (const t of [loss, xt, yt]) if (!t.released) t.release();
      let valLoss: number | null = null;
      if (nVal > 0) {
        valLoss = noGrad(() => crossEntropy(linear(tensor(xVal, [nVal, D]), W, b), idsTensor(valRows.map((i) => y[i]), [nVal])).item());
      }
      history.push({ epoch, trainLoss, valLoss });
      const monitored = valLoss ?? trainLoss;
      if (monitored < best.loss - 1e-6) best = { loss: monitored, epoch, W: W.data.slice(), b: b.data.slice() };
      else if (nVal > 0 && epoch - best.epoch >= patience) break;
    }
  } finally {
    W.release();
    b.release();
  }
  return { probe: { dim: D, numClasses, mean: mu, std: sd, weight: best.W, bias: best.b }, history, bestEpoch: best.epoch };
}

/** Class probabilities of the probe for feature rows. */
export function probeProbs(probe: LinearProbe, X: readonly Float32Array[]): number[][] {
  if (X.length === 0) return [];
  const D = checkFeatures("probeProbs", X, probe.dim);
  const C = probe.numClasses;
  const flat = standardise(X, X.map((_, i) => i), probe.mean, probe.std);
  const logits = noGrad(() => {
    const W = tensor(probe.weight, [D, C]), b = tensor(probe.bias, [C]);
    return linear(tensor(flat, [X.length, D]), W, b).toArray();
  });
  // The softmax in float64, so each row sums to 1 to double precision.
  return X.map((_, i) => {
    const row = Array.from(logits.subarray(i * C, (i + 1) * C));
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const z = e.reduce((a, v) => a + v, 0);
    return e.map((v) => v / z);
  });
}

