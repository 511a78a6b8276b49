/**
 * Element-wise ops with NumPy broadcasting, scalar ops, unary functions, GELU and dropout.
 * Kernels: native/src/kernels/elementwise.inc, gelu.inc, dropout.inc.
 */
import { BinaryOp, UnaryOp } from "../../native/index.js";
import { type Device, cpu } from "../device.js";
import { record } from "../autograd.js";
import { broadcastShapes, broadcastStrides, sameShape } from "../shape.js";
import { Rng, defaultRng } from "../rng.js";
import { Tensor, empty, f32, fromHost, zeros } from "../tensor.js";
import { dense, expectFloat, kernelsOf } from "./util.js";

type Operand = Tensor | number;

function scalarTensor(v: number, on: Device): Tensor {
  return fromHost(Float32Array.of(v), [], on);
}

function binary(name: string, op: number, a: Operand, b: Operand): Tensor {
  if (typeof b === "number" && a instanceof Tensor) {
    if (op === BinaryOp.add) return unary("add", UnaryOp.addScalar, a, b);
    if (op === BinaryOp.sub) return unary("sub", UnaryOp.addScalar, a, -b);
    if (op === BinaryOp.mul) return unary("mul", UnaryOp.scale, a, b);
    if (op === BinaryOp.div) return unary("div", UnaryOp.scale, a, 1 / b);
  }
  const saved: Tensor[] = [];
  const on = a instanceof Tensor ? a.device : b instanceof Tensor ? b.device : cpu;
  const ta = typeof a === "number" ? scalarTensor(a, on) : a;
  const tb = typeof b === "number" ? scalarTensor(b, on) : b;
  if (typeof a === "number") saved.push(ta);
  if (typeof b === "number") saved.push(tb);
  expectFloat(name, ta, tb);
  const k = kernelsOf(name, "a,b", ta, tb);
  const shape = broadcastShapes(name, ta.shape, tb.shape);
  const ca = dense(ta, saved);
  const cb = dense(tb, saved);
  const sa = broadcastStrides(ca.shape, shape);
  const sb = broadcastStrides(cb.shape, shape);
  const out = empty(shape, "float32", on);
  k.binaryForward(op, shape, sa, sb, f32(ca), f32(cb), f32(out));
  const inputs = [ta, tb];
  return record(name, inputs, out, (g) => {
    const plain = sameShape(ta.shape, shape) && sameShape(tb.shape, shape);
    if (plain && op === BinaryOp.add) return [g, g];
    const ga = ta.requiresGrad ? zeros([...ta.shape], on) : null;
    const gb = tb.requiresGrad ? zeros([...tb.shape], on) : null;
    k.binaryBackward(op, shape, sa, sb, f32(ca), f32(cb), f32(g), ga === null ? null : f32(ga), gb === null ? null : f32(gb));
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
  const k = x.device.kernels;
  const out = empty([...x.shape], "float32", x.device);
  k.unaryForward(op, x.size, f32(cx), f32(out), alpha);
  return record(name, [x], out, (g) => {
    const gx = empty([...x.shape], "float32", x.device);
    k.unaryBackward(op, x.size, f32(cx), f32(out), f32(g), f32(gx), alpha, false);
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
  const k = x.device.kernels;
  const out = empty([...x.shape], "float32", x.device);
  k.geluForward(x.size, f32(cx), f32(out));
  return record("gelu", [x], out, (g) => {
    const gx = empty([...x.shape], "float32", x.device);
    k.geluBackward(x.size, f32(cx), f32(g), f32(gx), false);
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
  const k = x.device.kernels;
  const out = empty([...x.shape], "float32", x.device);
  k.dropoutForward(x.size, f32(cx), f32(out), p, seed);
  return record("dropout", [x], out, (g) => {
    const gx = empty([...x.shape], "float32", x.device);
    k.dropoutBackward(x.size, f32(g), f32(gx), p, seed, false);
    return [gx];
  }, saved);
}
