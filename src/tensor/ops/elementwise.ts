/**
 * Element-wise ops with NumPy broadcasting, scalar ops, unary functions, GELU and dropout.
 * Kernels: native/src/kernels/elementwise.inc, gelu.inc, dropout.inc.
 */
import { backend, BinaryOp, UnaryOp } from "../../native/index.js";
import { record } from "../autograd.js";
import { broadcastShapes, broadcastStrides, sameShape } from "../shape.js";
import { Rng, defaultRng } from "../rng.js";
import { Tensor, empty, zeros } from "../tensor.js";
import { dense, expectFloat } from "./util.js";

type Operand = Tensor | number;

function scalarTensor(v: number): Tensor {
  const t = empty([]);
  t.data[0] = v;
  return t;
}

function binary(name: string, op: number, a: Operand, b: Operand): Tensor {
  if (typeof b === "number" && a instanceof Tensor) {
    if (op === BinaryOp.add) return unary("add", UnaryOp.addScalar, a, b);
    if (op === BinaryOp.sub) return unary("sub", UnaryOp.addScalar, a, -b);
    if (op === BinaryOp.mul) return unary("mul", UnaryOp.scale, a, b);
    if (op === BinaryOp.div) return unary("div", UnaryOp.scale, a, 1 / b);
  }
  const saved: Tensor[] = [];
  const ta = typeof a === "number" ? scalarTensor(a) : a;
  const tb = typeof b === "number" ? scalarTensor(b) : b;
  if (typeof a === "number") saved.push(ta);
  if (typeof b === "number") saved.push(tb);
  expectFloat(name, ta, tb);
  const shape = broadcastShapes(name, ta.shape, tb.shape);
  const ca = dense(ta, saved);
  const cb = dense(tb, saved);
  const sa = broadcastStrides(ca.shape, shape);
  const sb = broadcastStrides(cb.shape, shape);
  const out = empty(shape);
  backend.binaryForward(op, shape, sa, sb, ca.data, cb.data, out.data);
  const inputs = [ta, tb];
  return record(name, inputs, out, (g) => {
    const plain = sameShape(ta.shape, shape) && sameShape(tb.shape, shape);
    if (plain && op === BinaryOp.add) return [g, g];
    const ga = ta.requiresGrad ? zeros([...ta.shape]) : null;
    const gb = tb.requiresGrad ? zeros([...tb.shape]) : null;
    backend.binaryBackward(op, shape, sa, sb, ca.data, cb.data, g.data, ga?.data ?? null, gb?.data ?? null);
    return [ga, gb];
  }, saved);
}

export const add = (a: Operand, b: Operand): Tensor => binary("add", BinaryOp.add, a, b);
export const sub = (a: Operand, b: Operand): Tensor => binary("sub", BinaryOp.sub, a, b);
export const mul = (a: Operand, b: Operand): Tensor => binary("mul", BinaryOp.mul, a, b);
export const div = (a: Operand, b: Operand): Tensor => binary("div", BinaryOp.div, a, b);

function unary(name: string, op: number, x: Tensor, alpha = 0): Tensor {
  expectFloat(name, x);
  const saved: Tensor[] = [];
  const cx = dense(x, saved);
  const out = empty([...x.shape]);
  backend.unaryForward(op, x.size, cx.data, out.data, alpha);
  return record(name, [x], out, (g) => {
    const gx = empty([...x.shape]);
    backend.unaryBackward(op, x.size, cx.data, out.data, g.data, gx.data, alpha, false);
    return [gx];
  }, saved);
}

export const neg = (x: Tensor): Tensor => unary("neg", UnaryOp.neg, x);
export const exp = (x: Tensor): Tensor => unary("exp", UnaryOp.exp, x);
export const log = (x: Tensor): Tensor => unary("log", UnaryOp.log, x);
export const tanh = (x: Tensor): Tensor => unary("tanh", UnaryOp.tanh, x);
export const relu = (x: Tensor): Tensor => unary("relu", UnaryOp.relu, x);
export const sigmoid = (x: Tensor): Tensor => unary("sigmoid", UnaryOp.sigmoid, x);
export const sqrt = (x: Tensor): Tensor => unary("sqrt", UnaryOp.sqrt, x);
export const scale = (x: Tensor, s: number): Tensor => unary("scale", UnaryOp.scale, x, s);
export const addScalar = (x: Tensor, s: number): Tensor => unary("addScalar", UnaryOp.addScalar, x, s);

/** GELU, GPT-2's tanh approximation. */
export function gelu(x: Tensor): Tensor {
  expectFloat("gelu", x);
  const saved: Tensor[] = [];
  const cx = dense(x, saved);
  const out = empty([...x.shape]);
  backend.geluForward(x.size, cx.data, out.data);
  return record("gelu", [x], out, (g) => {
    const gx = empty([...x.shape]);
    backend.geluBackward(x.size, cx.data, g.data, gx.data, false);
    return [gx];
  }, saved);
}

/** Inverted dropout; identity when p == 0 or not training. The mask is regenerated from a seed in the backward. */
export function dropout(x: Tensor, p: number, training = true, rng: Rng = defaultRng): Tensor {
  expectFloat("dropout", x);
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const saved: Tensor[] = [];
  const cx = dense(x, saved);
  const seed = rng.seed();
  const out = empty([...x.shape]);
  backend.dropoutForward(x.size, cx.data, out.data, p, seed);
  return record("dropout", [x], out, (g) => {
    const gx = empty([...x.shape]);
    backend.dropoutBackward(x.size, g.data, gx.data, p, seed, false);
    return [gx];
  }, saved);
}
