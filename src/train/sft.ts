/**
 * Supervised fine-tuning of a causal LM (generative fine-tuning): next-token loss on the tokens
 * an example marks to learn (assistant replies, completions; every token of plain text), with
 * targets −1 everywhere else, which the cross-entropy ignores. Short examples are packed into
 * rows of ctx + 1 tokens (first fit, in a seeded order per epoch); a row's unused tail is padding
 * with target −1. Packed examples see their predecessors in the row (no attention mask), as in
 * Hugging Face TRL's packing; each example starts after an end-of-text token of the one before.
 *
 *     const o = supervisedLM(gpt, { train, val, batch: 8, ctx: 128, pad: tok.eot });
 *     await new Trainer({ objective: o, paramGroups, steps: 200 }).run();
 *
 * Legend: B batch (rows), T ctx.
 */
import { noGrad } from "../tensor/autograd.js";
import type { Rng } from "../tensor/rng.js";
import { Tensor, empty } from "../tensor/tensor.js";
import type { LossModel } from "./language.js";
import type { Objective } from "./trainer.js";

/** What the objective needs of an example: its ids and which of them to learn (1). */
export interface LearnableSequence {
  ids: Int32Array;
  learn: Uint8Array;
}

/** A packed row: T inputs and T targets (−1 where nothing is learned). */
export interface PackedRow {
  x: Int32Array;
  y: Int32Array;
  /** Tokens of real examples in the row (the rest is padding). */
  used: number;
  /** The packed sequences, as indices into the list packed, in the row's order (a checkpoint rebuilds the row from them). */
  members?: number[];
}

/**
 * Packs sequences (in the given order) into rows of T inputs: each sequence of n tokens takes n
 * positions of a row (its ids shifted by one become the targets), first fit into the open rows.
 */
export function packSequences(seqs: readonly LearnableSequence[], T: number, pad: number): Required<PackedRow>[] {
  const rows: Required<PackedRow>[] = [];
  seqs.forEach((s, k) => {
    const n = s.ids.length;
    if (n < 2) return;
    if (n > T + 1) throw new RangeError(`packSequences: a sequence of ${n} tokens does not fit a row of ${T + 1}`);
    const need = n - 1;
    let row = rows.find((r) => r.used + need <= T) as Required<PackedRow> | undefined;
    if (row === undefined) {
      row = { x: new Int32Array(T).fill(pad), y: new Int32Array(T).fill(-1), used: 0, members: [] };
      rows.push(row);
    }
    row.members.push(k);
    for (let i = 0; i < need; i++) {
      row.x[row.used + i] = s.ids[i];
      row.y[row.used + i] = s.learn[i + 1] === 1 ? s.ids[i + 1] : -1;
    }
    row.used += need;
  });
  return rows.filter((r) => r.y.some((t) => t >= 0));
}

export interface SupervisedLMOptions {
  train: readonly LearnableSequence[];
  val?: readonly LearnableSequence[];
  /** Rows per batch. */
  batch: number;
  /** Row length T (at most the model's context). */
  ctx: number;
  /** Input id of padding (the end-of-text token). */
  pad: number;
}

export type SFTBatch = { x: Tensor; y: Tensor; tokens: number };

/** Mean loss per learned token of `rows`, with the model as it is (no gradient). */
export function packedLoss(model: LossModel, rows: readonly PackedRow[], batch: number): { loss: number; tokens: number } {
  let total = 0, count = 0;
  for (let at = 0; at < rows.length; at += batch) {
    const chunk = rows.slice(at, at + batch);
    const { x, y } = toTensors(chunk);
    let targets = 0;
    for (const r of chunk) for (const t of r.y) if (t >= 0) targets++;
    total += noGrad(() => model.loss(x, y).item()) * targets;
    count += targets;
    x.release();
    y.release();
  }
  return { loss: count === 0 ? NaN : total / count, tokens: count };
}

function toTensors(rows: readonly PackedRow[]): { x: Tensor; y: Tensor } {
  const T = rows[0].x.length;
  const x = empty([rows.length, T], "int32"), y = empty([rows.length, T], "int32");
  rows.forEach((r, b) => {
    x.ids.set(r.x, b * T);
    y.ids.set(r.y, b * T);
  });
  return { x, y };
}

/** The SFT objective for the one Trainer: epochs of packed rows in a seeded order, validated on the packed held-out set. */
export function supervisedLM(model: LossModel, { train, val = [], batch, ctx, pad }: SupervisedLMOptions): Objective<SFTBatch> & { epoch(): number } {
  if (!(Number.isInteger(batch) && batch > 0 && Number.isInteger(ctx) && ctx > 1)) throw new RangeError(`supervisedLM: batch and ctx must be positive integers (ctx > 1), got ${batch} and ${ctx}`);
  if (train.length === 0) throw new RangeError("supervisedLM: no training examples");
  const valRows = packSequences(val, ctx, pad);
  let queue: Required<PackedRow>[] = [];
  let epochs = 0;
  return {
    name: "sft",
    unit: "tokens",
    chart: { title: "generative fine-tuning", yLabel: "cross-entropy on learned tokens (nats)" },
    epoch: () => epochs,
    next(rng: Rng) {
      if (queue.length < batch) {
        // A new epoch: the examples in a fresh seeded order, packed; the previous epoch's rest goes first.
        const order = train.map((_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          [order[i], order[j]] = [order[j], order[i]];
        }
        const rows = packSequences(order.map((i) => train[i]), ctx, pad);
        if (rows.length === 0) throw new RangeError("supervisedLM: no training example has a token to learn");
        for (const r of rows) r.members = r.members.map((k) => order[k]);
        queue = [...queue, ...rows];
        epochs++;
      }
      const rows = queue.splice(0, Math.min(batch, queue.length));
      const { x, y } = toTensors(rows);
      return { x, y, tokens: rows.reduce((n, r) => n + r.used, 0) };
    },
    loss: ({ x, y }) => model.loss(x, y),
    count: (b) => b.tokens,
    release({ x, y }) {
      x.release();
      y.release();
    },
    // The epoch count and the rows not yet drawn, each as its examples (indices into train), so
    // a resumed run draws the same batches: a row rebuilt from its members alone packs the same.
    state: () => ({ sftEpochs: epochs, sftQueue: queue.map((r) => r.members) }),
    restore(extra) {
      const members = extra.sftQueue as number[][] | undefined;
      if (members === undefined) return;
      epochs = extra.sftEpochs as number;
      queue = members.map((m) => {
        const [row] = packSequences(m.map((i) => train[i]), ctx, pad);
        if (row === undefined || row.members.length !== m.length) throw new Error("supervisedLM resume: the checkpoint's rows do not match this training data");
        return { ...row, members: m };
      });
    },
    validate() {
      if (valRows.length === 0) return { loss: null };
      const { loss } = packedLoss(model, valRows, batch);
      return { loss, scores: { valPerplexity: Math.exp(loss) } };
    },
  };
}
