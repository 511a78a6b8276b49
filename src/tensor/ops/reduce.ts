/**
 * Reductions (kernels: native/src/kernels/reduce.inc). `axis` undefined reduces everything.
 * max has no gradient (it serves inference: sampling, accuracy).
 */
import { ReduceOp } from "../../native/index.js";
import { record } from "../autograd.js";
import { ShapeError, fmt, normAxis, numel } from "../shape.js";
import { Tensor, empty, f32 } from "../tensor.js";
import { dense, expectFloat } from "./util.js";

function reduce(name: string, op: number, x: Tensor, axis: number | undefined, keepdim: boolean): Tensor {
  expectFloat(name, x);
  const k = x.device.kernels, dev = x.device;
  const saved: Tensor[] = [];
  const cx = dense(x, saved);
  let outer: number, n: number, inner: number, shape: number[];
  const ax = axis === undefined ? undefined : normAxis(name, axis, x.shape);
  if (ax === undefined || x.ndim === 0) {
    [outer, n, inner] = [1, x.size, 1];
    shape = keepdim ? x.shape.map(() => 1) : [];
  } else {
    outer = numel(x.shape.slice(0, ax));
    n = x.shape[ax];
    inner = numel(x.shape.slice(ax + 1));
    shape = [...x.shape];
    if (keepdim) shape[ax] = 1;
    else shape.splice(ax, 1);
  }
  if (n === 0 && op === ReduceOp.max) throw new ShapeError(`${name}: cannot take the max over an empty axis of tensor${fmt(x.shape)}`);
  const out = empty(shape, "float32", dev);
  k.reduceForward(op, outer, n, inner, f32(cx), f32(out));
  for (const s of saved) s.release();
  if (op === ReduceOp.max) return out;
  return record(name, [x], out, (g) => {
    const gx = empty([...x.shape], "float32", dev);
    k.reduceBackward(op, outer, n, inner, f32(g), f32(gx), false);
    return [gx];
  });
}

export const sum = (x: Tensor, axis?: number, keepdim = false): Tensor => reduce("sum", ReduceOp.sum, x, axis, keepdim);
export const mean = (x: Tensor, axis?: number, keepdim = false): Tensor => reduce("mean", ReduceOp.mean, x, axis, keepdim);
export const max = (x: Tensor, axis?: number, keepdim = false): Tensor => reduce("max", ReduceOp.max, x, axis, keepdim);
