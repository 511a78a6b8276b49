/**
 * Losses that couple the whole batch (CLIP's and the sentence embedder's InfoNCE: every other row
 * of the batch is a negative) cannot be averaged from per-rank losses: a rank's rows need every
 * other rank's rows as negatives. `gatherRows` all-gathers a rank's features [n, E] into the
 * global [P·n, E] (rank r's rows at [r·n, (r+1)·n)), recorded on the autograd graph, so each rank
 * computes the single-process loss on the whole batch (as open_clip's gather_with_grad).
 *
 * Backward: every rank computes the same loss from the same gathered features, so every rank's
 * gradient with respect to the gathered features is the same [P·n, E] tensor g. The gradient of
 * the sum of the P ranks' losses with respect to rank r's own rows is Σ_s g_s[rows of r] =
 * P · g[rows of r] -- what open_clip's reduce-scatter computes, here without communication. The
 * gradient averaging (buckets.ts divides by P) then gives each parameter the single-process
 * gradient: (1/P) Σ_r P · (rank r's rows' share) = the whole batch's gradient. Parameters the loss
 * uses directly (CLIP's logit_scale) get the full gradient on every rank, averaged to itself.
 */
import { record } from "../../tensor/autograd.js";
import { cpu } from "../../tensor/device.js";
import { empty, type Tensor } from "../../tensor/tensor.js";
import type { World } from "./world.js";

/** x [n, ...] on every rank -> [P·n, ...], rank r's rows at [r·n, (r+1)·n); differentiable (see above). Collective. */
export function gatherRows(world: World, x: Tensor, what = "the feature all-gather"): Tensor {
  if (x.ndim < 1) throw new RangeError(`gatherRows: a scalar has no rows to gather`);
  if (x.device !== cpu) throw new Error(`gatherRows: tensor on ${x.device.name}; data-parallel training gathers CPU tensors only`);
  const P = world.size, n = x.shape[0], size = x.size;
  const send = Float32Array.from(x.data.subarray(0, size));
  const recv = new Float32Array(size * P);
  world.doneSync(world.mpi.allgather(send, recv), `${what} of ${size} floats`);
  const out = empty([n * P, ...x.shape.slice(1)]);
  out.data.set(recv);
  const lo = world.rank * size;
  return record("gatherRows", [x], out, (g) => {
    const gx = empty(x.shape);
    const src = g.data, dst = gx.data;
    for (let i = 0; i < size; i++) dst[i] = P * src[lo + i];
    return [gx];
  });
}
