/**
 * How a text body's hidden states become one sentence vector, chosen per base and recorded in
 * its config.json (`plinth_pooling`):
 *   mean  the average over the sequence's tokens (every base's default)
 *   last  the last token's state (a causal body's summary: it has read the whole text)
 *   cls   the first position's state (a bidirectional body only; Plinth's tokenizers add no [CLS],
 *         so a body pooled this way learns to summarise there, as the embed objective teaches it)
 *
 * poolHidden runs on the autograd tape (fine-tuning of the body, the embed objective); the
 * registry's embedSequences calls it under noGrad for any pooling but mean, whose path is kept.
 *
 *     setPooling(model, "last");  poolingOf(model);   // "last"
 *     const { pooled, inputs } = poolHidden(model, seqs, "last", { causal: true, padId: eot });   // pooled [N, C]
 */
import type { ForwardContext } from "../nn/context.js";
import { Tensor, ids as idsTensor, tensor } from "../tensor/tensor.js";
import { matmul } from "../tensor/ops/matmul.js";
import { embedding } from "../tensor/ops/nn.js";
import { cat, reshape } from "../tensor/ops/views.js";
import { lengthBatches } from "./batching.js";

export const POOLINGS = ["mean", "last", "cls"] as const;
export type Pooling = (typeof POOLINGS)[number];

/** config.json's field for the pooling (absent: mean). */
export const POOLING_CONFIG_KEY = "plinth_pooling";

export function isPooling(p: unknown): p is Pooling {
  return (POOLINGS as readonly unknown[]).includes(p);
}

/** The pooling named by `p`, or a clear error naming `where` and the choices. */
export function checkPooling(p: unknown, where: string): Pooling {
  if (!isPooling(p)) throw new RangeError(`${where}: pooling ${JSON.stringify(p)} is not one of ${POOLINGS.join(", ")}`);
  return p;
}

// A model's pooling lives beside it, not in its typed config: the config stays Hugging Face's.
const recorded = new WeakMap<object, Pooling>();

export function poolingOf(model: object): Pooling {
  return recorded.get(model) ?? "mean";
}

/** Whether the pooling was chosen (so a save records it) rather than the default. */
export function poolingRecorded(model: object): boolean {
  return recorded.has(model);
}

export function setPooling(model: object, pooling: Pooling, { causal }: { causal: boolean }): void {
  checkPooling(pooling, "setPooling");
  if (causal && pooling === "cls") throw new RangeError("setPooling: cls pooling needs a bidirectional body (BERT); a causal body's first position has seen only itself (use last or mean)");
  recorded.set(model, pooling);
}

export interface HiddenBody {
  hidden(ids: Tensor, ctx?: ForwardContext): Tensor;
}

export interface PoolOptions {
  /** Causal bodies are right-padded into one batch (no position sees a later one); bidirectional ones run in equal-length groups. */
  causal: boolean;
  /** The padding token of a causal batch. */
  padId: number;
  ctx?: ForwardContext;
}

/** The [rows, 1, T] weights that pick the pooled positions of sequences of `lengths` in a window of T. */
function poolWeights(lengths: readonly number[], T: number, pooling: Pooling): Tensor {
  const w = new Float32Array(lengths.length * T);
  lengths.forEach((n, r) => {
    if (pooling === "mean") w.fill(1 / n, r * T, r * T + n);
    else if (pooling === "last") w[r * T + n - 1] = 1;
    else w[r * T] = 1;
  });
  return tensor(w, [lengths.length, 1, T]);
}

/**
 * Pooled states [N, C] of `seqs` in their order, on the tape. `inputs` holds the tensors made
 * here that backward still reads: release them after backward (or at once under noGrad).
 */
export function poolHidden(body: HiddenBody, seqs: readonly (readonly number[])[], pooling: Pooling, { causal, padId, ctx }: PoolOptions): { pooled: Tensor; inputs: Tensor[] } {
  if (seqs.length === 0) throw new RangeError("poolHidden: no sequences");
  seqs.forEach((s, i) => {
    if (s.length === 0) throw new RangeError(`poolHidden: sequence ${i} is empty (give at least one token)`);
  });
  checkPooling(pooling, "poolHidden");
  if (causal && pooling === "cls") throw new RangeError("poolHidden: cls pooling needs a bidirectional body (BERT)");
  const inputs: Tensor[] = [];
  const lengths = seqs.map((s) => s.length);
  const pool = (rows: number[], T: number, rowIds: number[][]): Tensor => {
    const ids = idsTensor(rowIds), w = poolWeights(rows.map((i) => lengths[i]), T, pooling);
    inputs.push(ids, w);
    const h = body.hidden(ids, ctx);
    return reshape(matmul(w, h), [rows.length, h.shape[2]]);
  };
  if (causal) {
    const T = Math.max(...lengths);
    const rows = seqs.map((_, i) => i);
    return { pooled: pool(rows, T, seqs.map((s) => [...s, ...new Array<number>(T - s.length).fill(padId)])), inputs };
  }
  const groups = lengthBatches(lengths);
  const parts = groups.map((rows) => pool(rows, lengths[rows[0]], rows.map((i) => [...seqs[i]])));
  if (groups.length === 1 && groups[0].every((r, i) => r === i)) return { pooled: parts[0], inputs };
  // The groups' rows back into the callers' order: a differentiable gather of the concatenation.
  const stacked = parts.length === 1 ? parts[0] : cat(parts, 0);
  const at = new Array<number>(seqs.length);
  groups.flat().forEach((row, k) => (at[row] = k));
  const order = idsTensor(at, [at.length]);
  inputs.push(order);
  return { pooled: embedding(order, stacked), inputs };
}
