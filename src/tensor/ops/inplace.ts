/**
 * In-place updates on whole tensors, for optimizers and training loops: they run on the
 * tensors' device, record nothing on the tape, and let layers above src/tensor/ update
 * parameters without reading device memory.
 *
 *   fill_        t[:] = value
 *   scale_       t[:] *= s
 *   sumSquares   sum(t^2) (a host number)
 *   adamwStep_   AdamW update of p with gradient g and moments m, v (all [n], one device)
 *
 * Kernels: native/src/kernels/{elementwise,adamw}.inc.
 */
import { UnaryOp } from "../../native/index.js";
import { ShapeError, fmt } from "../shape.js";
import { Tensor, f32 } from "../tensor.js";
import { expectFloat, kernelsOf } from "./util.js";

function whole(op: string, t: Tensor): void {
  if (!t.isContiguous()) throw new ShapeError(`${op}: tensor${fmt(t.shape)} must be contiguous`);
}

export function fill_(t: Tensor, value: number): Tensor {
  expectFloat("fill_", t);
  whole("fill_", t);
  t.device.kernels.fill(t.size, f32(t), value);
  return t;
}

export function scale_(t: Tensor, s: number): Tensor {
  expectFloat("scale_", t);
  whole("scale_", t);
  t.device.kernels.unaryForward(UnaryOp.scale, t.size, f32(t), f32(t), s);
  return t;
}

export function sumSquares(t: Tensor): number {
  expectFloat("sumSquares", t);
  whole("sumSquares", t);
  return t.device.kernels.sumSquares(t.size, f32(t));
}

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Bias corrections 1 - beta^t. */
  bc1: number;
  bc2: number;
}

export function adamwStep_(p: Tensor, g: Tensor, m: Tensor, v: Tensor, s: AdamWStep): void {
  expectFloat("adamwStep_", p, g, m, v);
  const k = kernelsOf("adamwStep_", "param,grad,m,v", p, g, m, v);
  for (const t of [p, g, m, v]) {
    whole("adamwStep_", t);
    if (t.size !== p.size) throw new ShapeError(`adamwStep_: tensor${fmt(t.shape)} for a parameter${fmt(p.shape)}: expected ${p.size} elements`);
  }
  k.adamwStep(p.size, f32(p), f32(g), f32(m), f32(v), s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, s.bc1, s.bc2);
}
