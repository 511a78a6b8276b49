/**
 * A sequence classifier on a pretrained encoder: pooled hidden states of the base (GPT or
 * BERT; mean unless the base records another pooling) and a linear head [C -> K]. The same object serves head fine-tuning (body frozen), full
 * fine-tuning, LoRA (body wrapped by applyLoRA) and the from-scratch baseline (a fresh body).
 *
 * Variable-length texts, exactly: a causal body never lets a position see a later one, so GPT
 * batches are right-padded and pooled with a [B, 1, T] weight row that is 1/len on real tokens
 * and 0 on padding; a bidirectional body (BERT) has no attention mask here, so its batches are
 * split into groups of equal length and each group's loss is weighted by its share of the batch.
 *
 *     const clf = new SequenceClassifier(gpt, tok, 2, { seed: 0 });
 *     const loss = clf.loss(texts, labels);  loss.backward();  ...
 *     clf.predict(texts);   // number[][] of label probabilities
 */
import type { TextTokenizer } from "../data/tokenizer.js";
import { Linear } from "../nn/layers.js";
import { can, contextLength, createLike, hiddenSize as modelHiddenSize, poolHidden, poolingOf } from "../models/registry.js";
import { lengthBatches } from "../models/batching.js";
import { noGrad } from "../tensor/autograd.js";
import { Rng } from "../tensor/rng.js";
import { Tensor, ids as idsTensor, tensor } from "../tensor/tensor.js";
import { add, scale } from "../tensor/ops/elementwise.js";
import { matmul } from "../tensor/ops/matmul.js";
import { crossEntropy } from "../tensor/ops/nn.js";
import { mean } from "../tensor/ops/reduce.js";
import { reshape } from "../tensor/ops/views.js";
import type { Encoder } from "./probe.js";
import type { ForwardContext, RowAdapter } from "../nn/context.js";
import { type PieceOptions, type Steps, lengthPieces, paddedTokens, sum, tokenizeSteps } from "./steps.js";

export interface ClassifierOptions {
  /** Texts are cut to this many tokens (default and maximum: the model's context). */
  maxTokens?: number;
  /** Seeds the head's initialisation. */
  seed?: number;
  /**
   * A LoRA adapter bound to the encoder, applied through the forward context to every row
   * (inference on a shared base: the encoder itself is never changed).
   */
  adapter?: RowAdapter;
}

export function hiddenSize(model: Encoder): number {
  return modelHiddenSize(model);
}

export function contextSize(model: Encoder): number {
  return contextLength(model);
}

export class SequenceClassifier {
  /** [C -> K], in_out layout; saved in adapters as `score.weight` / `score.bias`. */
  readonly score: Linear;
  readonly maxTokens: number;
  private readonly pending: Tensor[] = [];
  private readonly ctx: ForwardContext | undefined;

  constructor(readonly encoder: Encoder, readonly tok: TextTokenizer, readonly numClasses: number, { maxTokens, seed = 0, adapter }: ClassifierOptions = {}) {
    if (!Number.isInteger(numClasses) || numClasses < 2) throw new RangeError(`SequenceClassifier: numClasses must be an integer >= 2, got ${numClasses}`);
    const ctx = contextSize(encoder);
    this.maxTokens = Math.min(maxTokens ?? ctx, ctx);
    if (!(this.maxTokens >= 1)) throw new RangeError(`SequenceClassifier: maxTokens must be >= 1, got ${maxTokens}`);
    this.score = new Linear(hiddenSize(encoder), numClasses, { std: 0.02, rng: new Rng(seed + 0x5c0e) });
    this.ctx = adapter === undefined ? undefined : { adapters: [{ start: 0, count: -1, adapter }] };
  }

  /**
   * Runs the body; a frozen body (no trainable tensor in it) runs under noGrad, which frees its
   * activations at once instead of leaving them to the garbage collector.
   */
  private body(fn: () => Tensor): Tensor {
    return this.encoder.parameters().length === 0 ? noGrad(fn) : fn();
  }

  /** Token ids of a text, cut to maxTokens; an empty text still gets one token. */
  encode(text: string): number[] {
    const ids = Array.from(this.tok.encode(text)).slice(0, this.maxTokens);
    return ids.length > 0 ? ids : [this.tok.eot];
  }

  /**
   * Logits for groups of sequences: calls `use(rows, logits)` once per forward group, where
   * rows are indices into seqs and logits is [rows.length, K]. The input tensors it makes go
   * into `inputs`: autograd does not own them, and backward still reads them.
   */
  private forwardGroups(seqs: number[][], inputs: Tensor[], use: (rows: number[], logits: Tensor) => void): void {
    const pooling = poolingOf(this.encoder);
    if (pooling !== "mean") {
      // A base that records another pooling (last token, first position) is classified by it.
      const causal = can(this.encoder, "generate");
      const out = this.body(() => {
        const r = poolHidden(this.encoder, seqs, pooling, { causal, padId: this.tok.eot, ctx: this.ctx });
        inputs.push(...r.inputs);
        return r.pooled;
      });
      use(seqs.map((_, i) => i), this.score.forward(out));
      if (out.node === null) inputs.push(out);
      return;
    }
    if (can(this.encoder, "generate")) {
      const T = Math.max(...seqs.map((s) => s.length));
      const padded = seqs.map((s) => [...s, ...new Array<number>(T - s.length).fill(this.tok.eot)]);
      const weights = new Float32Array(seqs.length * T);
      seqs.forEach((s, r) => weights.fill(1 / s.length, r * T, r * T + s.length));
      const ids = idsTensor(padded), w = tensor(weights, [seqs.length, 1, T]);
      inputs.push(ids, w);
      const pooled = this.body(() => reshape(matmul(w, this.encoder.hidden(ids, this.ctx)), [seqs.length, hiddenSize(this.encoder)]));
      use(seqs.map((_, i) => i), this.score.forward(pooled));
      if (pooled.node === null) inputs.push(pooled);
      return;
    }
    for (const rows of lengthBatches(seqs.map((s) => s.length))) {
      const ids = idsTensor(rows.map((i) => seqs[i]));
      inputs.push(ids);
      const pooled = this.body(() => mean(this.encoder.hidden(ids, this.ctx), 1));
      use(rows, this.score.forward(pooled));
      if (pooled.node === null) inputs.push(pooled);
    }
  }

  /** Mean cross-entropy over the batch (a tensor to call backward on). */
  loss(texts: readonly string[], labels: readonly number[]): Tensor {
    if (texts.length !== labels.length || texts.length === 0) throw new RangeError(`SequenceClassifier.loss: ${texts.length} texts for ${labels.length} labels (need the same, non-zero count)`);
    labels.forEach((c, i) => {
      if (!Number.isInteger(c) || c < 0 || c >= this.numClasses) throw new RangeError(`SequenceClassifier.loss: label ${c} of example ${i} is outside [0, ${this.numClasses})`);
    });
    const seqs = texts.map((t) => this.encode(t));
    const parts: Tensor[] = [];
    this.forwardGroups(seqs, this.pending, (rows, logits) => {
      const y = idsTensor(rows.map((i) => labels[i]), [rows.length]);
      this.pending.push(y);
      parts.push(rows.length === seqs.length ? crossEntropy(logits, y) : scale(crossEntropy(logits, y), rows.length / seqs.length));
    });
    return parts.reduce((a, b) => add(a, b));
  }

  /** Frees the input tensors of the last loss() calls; call it after backward. */
  releaseInputs(): void {
    for (const t of this.pending) if (!t.released) t.release();
    this.pending.length = 0;
  }

  /** Label probabilities (softmax in float64), batched, under noGrad. */
  predict(texts: readonly string[], batchSize = 32): number[][] {
    const out = new Array<number[]>(texts.length);
    const seqs = texts.map((t) => this.encode(t));
    // Similar lengths together keep GPT padding small.
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length);
    for (let b0 = 0; b0 < order.length; b0 += batchSize) this.predictBatch(seqs, order.slice(b0, b0 + batchSize), out);
    return out;
  }

  /**
   * predict in pieces (steps.ts): tokenized in slices, then forwards of at most `pieceTokens`
   * padded tokens (and `pieceRows`, default 32, sequences), shortest first; the probabilities
   * equal predict's.
   */
  *predictSteps(texts: readonly string[], p: PieceOptions = {}): Steps<number[][]> {
    const full = yield* tokenizeSteps(texts, (t) => Array.from(this.tok.encode(t)), p);
    const seqs = full.map((ids) => (ids.length > 0 ? ids.slice(0, this.maxTokens) : [this.tok.eot]));
    const lengths = seqs.map((s) => s.length);
    yield { kind: "plan", sequences: seqs.length, tokens: sum(lengths), inputTokens: sum(full.map((ids) => ids.length)) };
    const out = new Array<number[]>(texts.length);
    for (const piece of lengthPieces(lengths, { pieceRows: 32, ...p })) {
      this.predictBatch(seqs, piece, out);
      yield { kind: "forward", tokens: paddedTokens(piece, lengths) };
    }
    return out;
  }

  /** Probabilities of the sequences `batch` (indices into seqs) into out, in one noGrad scope so its activations are freed at once. */
  private predictBatch(seqs: number[][], batch: number[], out: number[][]): void {
    const K = this.numClasses;
    noGrad(() => {
      const inputs: Tensor[] = [];
      this.forwardGroups(batch.map((i) => seqs[i]), inputs, (rows, logits) => {
        const v = logits.toArray();
        rows.forEach((r, j) => (out[batch[r]] = softmaxRow(v.subarray(j * K, (j + 1) * K))));
      });
      for (const t of inputs) if (!t.released) t.release();
    });
  }
}

function softmaxRow(row: ArrayLike<number>): number[] {
  const a = Array.from(row);
  const m = Math.max(...a);
  const e = a.map((v) => Math.exp(v - m));
  const z = e.reduce((s, v) => s + v, 0);
  return e.map((v) => v / z);
}

/** A fresh model of the same architecture and size (the from-scratch baseline). */
export function freshLike(model: Encoder, seed: number): Encoder {
  return createLike(model, seed);
}
