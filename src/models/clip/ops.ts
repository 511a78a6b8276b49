/**
 * Ops CLIP needs beyond the native set, composed from differentiable ops (so their
 * backward comes from the pieces; each has a gradcheck test):
 *   quickGelu   x * sigmoid(1.702 x)                       (OpenAI CLIP's activation)
 *   l2Normalize x / ||x||_2 over the last axis              (rows onto the unit sphere)
 *   contrastiveLoss  symmetric InfoNCE over a batch of N matched pairs:
 *     logits_per_text = exp(logit_scale) * T Iᵀ  [N, N], logits_per_image = its transpose;
 *     loss = (CE(logits_per_text, arange N) + CE(logits_per_image, arange N)) / 2
 */
import { ShapeError, fmt } from "../../tensor/shape.js";
import { Tensor, fromHost } from "../../tensor/tensor.js";
import { add, div, exp, mul, scale, sigmoid, sqrt } from "../../tensor/ops/elementwise.js";
import { matmul } from "../../tensor/ops/matmul.js";
import { crossEntropy } from "../../tensor/ops/nn.js";
import { sum } from "../../tensor/ops/reduce.js";
import { transpose } from "../../tensor/ops/views.js";

export function quickGelu(x: Tensor): Tensor {
  return mul(x, sigmoid(scale(x, 1.702)));
}

/** Rows of x [..., D] divided by their L2 norm (no epsilon, like HF's `x / x.norm(dim=-1, keepdim=True)`). */
export function l2Normalize(x: Tensor): Tensor {
  if (x.ndim < 1 || x.shape[x.ndim - 1] === 0) throw new ShapeError(`l2Normalize: x${fmt(x.shape)}: expected a non-empty last axis`);
  return div(x, sqrt(sum(mul(x, x), -1, true)));
}

/** Index tensors read by a node's backward must outlive it: the node releases them after its backward runs. */
function ownedBy(out: Tensor, ...ts: Tensor[]): Tensor {
  if (out.node !== null) out.node.saved.push(...ts);
  else for (const t of ts) t.release();
  return out;
}

export interface ContrastiveOutput {
  loss: Tensor;
  /** [N, N]: row i scores text i against every image. */
  logitsPerText: Tensor;
  logitsPerImage: Tensor;
}

/**
 * imageEmbeds and textEmbeds [N, E], already L2-normalised; logitScale a scalar parameter
 * (the log of the inverse temperature). Pair i is (image i, text i).
 */
export function contrastiveLoss(imageEmbeds: Tensor, textEmbeds: Tensor, logitScale: Tensor): ContrastiveOutput {
  if (imageEmbeds.ndim !== 2 || textEmbeds.ndim !== 2 || imageEmbeds.shape[0] !== textEmbeds.shape[0] || imageEmbeds.shape[1] !== textEmbeds.shape[1]) {
    throw new ShapeError(`contrastiveLoss: imageEmbeds${fmt(imageEmbeds.shape)} and textEmbeds${fmt(textEmbeds.shape)}: expected two [N, E] tensors of one shape`);
  }
  if (logitScale.size !== 1) throw new ShapeError(`contrastiveLoss: logitScale${fmt(logitScale.shape)}: expected a single value`);
  const N = imageEmbeds.shape[0];
  if (N < 2) throw new ShapeError(`contrastiveLoss: a batch of ${N} pair(s) has no negatives; expected N >= 2`);
  const logitsPerText = mul(matmul(textEmbeds, transpose(imageEmbeds)), exp(logitScale));
  const logitsPerImage = transpose(logitsPerText);
  // One label tensor per cross-entropy: each node frees its own after its backward has read it.
  const arange = (): Tensor => fromHost(Int32Array.from({ length: N }, (_, i) => i), [N], logitsPerText.device);
  const lt = arange(), li = arange();
  const perText = ownedBy(crossEntropy(logitsPerText, lt), lt);
  const perImage = ownedBy(crossEntropy(logitsPerImage, li), li);
  return { loss: scale(add(perText, perImage), 0.5), logitsPerText, logitsPerImage };
}
