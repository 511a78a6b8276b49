/**
 * Each rank's slice of the global batch. Every rank draws the whole global batch from the same
 * data RNG (cheap: token reads and masks), so the RNG stays in step on every rank and the global
 * batch is exactly the one a single process draws; rank r keeps rows [r*B/P, (r+1)*B/P). Its
 * loss is scaled by P times its share of the batch's targets, so that the average across ranks
 * of losses and gradients is the single-process mean (mlm slices hold unequal numbers of masked
 * targets; for clm the scale is exactly 1).
 */
import { scale } from "../../tensor/ops/elementwise.js";
import { empty, type Tensor } from "../../tensor/tensor.js";
import type { Objective } from "../trainer.js";

/** A batch of token rows: inputs and targets [B, T]; targets < 0 are not scored. */
export interface RowBatch {
  x: Tensor;
  y: Tensor;
}

interface Slice<B> {
  batch: B;
  /** P × (targets in this slice / targets in the global batch). */
  scale: number;
  count: number;
}

function rows(t: Tensor, lo: number, hi: number): Tensor {
  const T = t.shape[1];
  const out = empty([hi - lo, T], t.dtype);
  out.ids.set(t.ids.subarray(lo * T, hi * T));
  return out;
}

function targets(y: Int32Array): number {
  let n = 0;
  for (const t of y) if (t >= 0) n++;
  return n;
}

/** Wraps a token-batch objective so that this rank trains on its rows of every global batch. */
export function shardRows<B extends RowBatch>(objective: Objective<B>, rank: number, world: number): Objective<Slice<B>> {
  if (!(Number.isInteger(world) && world >= 1 && Number.isInteger(rank) && rank >= 0 && rank < world)) {
    throw new RangeError(`shardRows: rank ${rank} is not in a world of ${world}`);
  }
  return {
    name: objective.name,
    unit: objective.unit,
    unitsPerBatch: objective.unitsPerBatch,
    chart: objective.chart,
    next(rng) {
      const global = objective.next(rng);
      const B = global.x.shape[0];
      if (B % world !== 0) {
        objective.release?.(global);
        throw new RangeError(`data parallelism: the batch of ${B} rows does not split evenly over ${world} ranks (choose a --batch that is a multiple of ${world})`);
      }
      const lo = (rank * B) / world, hi = lo + B / world;
      const x = rows(global.x, lo, hi), y = rows(global.y, lo, hi);
      const all = targets(global.y.ids.subarray(0, global.y.size));
      const mine = targets(y.ids.subarray(0, y.size));
      const count = objective.count(global);
      objective.release?.(global);
      return { batch: { ...global, x, y }, scale: all === 0 ? 1 : (world * mine) / all, count };
    },
    loss({ batch, scale: s }) {
      const loss = objective.loss(batch);
      return s === 1 ? loss : scale(loss, s);
    },
    count: ({ count }) => count,
    release({ batch }) {
      objective.release?.(batch);
    },
    afterStep: objective.afterStep?.bind(objective),
    validate: objective.validate?.bind(objective),
    state: objective.state?.bind(objective),
    restore: objective.restore?.bind(objective),
  };
}
