// Bad input to the public ops: each validates shapes and dtypes in TypeScript and throws an
// error that names the op, the shapes it got and the shapes it expected. (The raw binding's
// own checks are in binding.test.ts.)
import { test } from "node:test";
import assert from "node:assert/strict";
import * as T from "../src/tensor/index.js";

const f = (...shape: number[]): T.Tensor => T.randn(shape);
const i32 = (values: number[], shape?: number[]): T.Tensor => T.ids(values, shape ?? [values.length]);

// ---- public ops --------------------------------------------------------------------------

test("binary ops name the op and both shapes when they do not broadcast", () => {
  for (const op of ["add", "sub", "mul", "div"] as const) {
    assert.throws(() => T[op](f(2, 3), f(4, 5)), new RegExp(`^ShapeError: ${op}: a\\[2,3\\] and b\\[4,5\\] do not broadcast: dim -2 is 2 vs 4, expected equal or 1`));
    assert.throws(() => T[op](f(2, 1, 5), f(3, 4)), new RegExp(`${op}: a\\[2,1,5\\] and b\\[3,4\\] do not broadcast`));
    assert.throws(() => T[op](f(3), i32([1, 2, 3])), new RegExp(`^TypeError: ${op}: expected a float32 tensor, got int32\\[3\\]`));
    assert.throws(() => T[op](i32([1, 2]), 2), new RegExp(`${op}: expected a float32 tensor, got int32\\[2\\]`));
    assert.throws(() => T[op]("x" as unknown as T.Tensor, f(2)), new RegExp(`${op}: expected a Tensor, got string`));
  }
});

test("unary ops, gelu and dropout reject int32 tensors and bad probabilities", () => {
  for (const op of ["neg", "exp", "log", "tanh", "relu", "sigmoid", "sqrt", "gelu"] as const) {
    assert.throws(() => T[op](i32([1, 2, 3, 4], [2, 2])), new RegExp(`^TypeError: ${op}: expected a float32 tensor, got int32\\[2,2\\]`));
  }
  assert.throws(() => T.scale(i32([1]), 2), /scale: expected a float32 tensor, got int32\[1\]/);
  assert.throws(() => T.addScalar(i32([1]), 2), /addScalar: expected a float32 tensor, got int32\[1\]/);
  assert.throws(() => T.dropout(i32([1]), 0.5), /dropout: expected a float32 tensor, got int32\[1\]/);
  for (const p of [1, -0.1, NaN, 2]) assert.throws(() => T.dropout(f(3), p), new RegExp(`^RangeError: dropout: p must be in \\[0, 1\\), got ${p}`));
});

test("matmul names both shapes and what it expected", () => {
  assert.throws(() => T.matmul(f(2, 3), f(4, 5)), /^ShapeError: matmul: a\[2,3\] @ b\[4,5\]: expected a.shape\[-1\] == b.shape\[-2\]/);
  assert.throws(() => T.matmul(f(3), f(3, 2)), /matmul: a\[3\] @ b\[3,2\]: expected both to have at least 2 dims/);
  assert.throws(() => T.matmul(f(2, 3), f(3)), /matmul: a\[2,3\] @ b\[3\]: expected both to have at least 2 dims/);
  assert.throws(() => T.matmul(f(2, 3, 4), f(3, 4, 5)), /matmul: a\[2,3,4\] @ b\[3,4,5\]: batch dims \[2\] vs \[3\], expected equal \(or b 2-D\)/);
  assert.throws(() => T.matmul(f(2, 4), f(2, 4, 5)), /matmul: a\[2,4\] @ b\[2,4,5\]: batch dims \[\] vs \[2\]/);
  assert.throws(() => T.matmul(f(2, 3), i32([1, 2, 3], [3, 1])), /matmul: expected a float32 tensor, got int32\[3,1\]/);
});

test("linear names x, weight, layout and bias shapes", () => {
  assert.throws(() => T.linear(f(2, 3), f(4, 5)), /^ShapeError: linear: x\[2,3\] @ weight\[4,5\] \(in_out\): expected x.shape\[-1\] == 4/);
  assert.throws(() => T.linear(f(2, 3), f(4, 3), null, "in_out"), /linear: x\[2,3\] @ weight\[4,3\] \(in_out\): expected x.shape\[-1\] == 4/);
  assert.throws(() => T.linear(f(2, 3), f(3, 4), null, "out_in"), /linear: x\[2,3\] @ weight\[3,4\] \(out_in\): expected x.shape\[-1\] == 4/);
  assert.throws(() => T.linear(f(2, 3), f(3)), /linear: weight\[3\] must be 2-D/);
  assert.throws(() => T.linear(f(2, 3), f(3, 4), f(3)), /linear: bias\[3\], expected \[4\]/);
  assert.throws(() => T.linear(f(2, 3), f(3, 4), f(1, 4)), /linear: bias\[1,4\], expected \[4\]/);
  assert.throws(() => T.linear(f(2, 3), T.transpose(f(4, 3))), /linear: weight and bias must be contiguous/);
  assert.throws(() => T.linear(i32([1, 2, 3], [1, 3]), f(3, 4)), /linear: expected a float32 tensor, got int32\[1,3\]/);
  assert.throws(() => T.linear(f(2, 3), f(3, 4), null, "in-out" as T.WeightLayout), /linear: layout "in-out", expected "in_out" or "out_in"/);
});

test("softmax and layerNorm name the shapes", () => {
  assert.throws(() => T.softmax(T.tensor(1)), /^ShapeError: softmax: x\[\] has 0 dims, expected at least 1/);
  assert.throws(() => T.softmax(i32([1])), /softmax: expected a float32 tensor, got int32\[1\]/);
  assert.throws(() => T.layerNorm(f(2, 4), f(3), f(4)), /^ShapeError: layerNorm: x\[2,4\] with weight\[3\] and bias\[4\]: expected both \[4\]/);
  assert.throws(() => T.layerNorm(f(2, 4), f(4), f(1, 4)), /layerNorm: x\[2,4\] with weight\[4\] and bias\[1,4\]: expected both \[4\]/);
  assert.throws(() => T.layerNorm(T.tensor(1), f(1), f(1)), /layerNorm: x\[\] has 0 dims, expected at least 1/);
  assert.throws(() => T.layerNorm(T.zeros([2, 0]), f(0), f(0)), /layerNorm: x\[2,0\]: expected a non-empty last axis/);
});

test("embedding: wrong dtypes and shapes, and out-of-range ids as a RangeError", () => {
  const table = f(5, 3);
  assert.throws(() => T.embedding(f(3), table), /^TypeError: embedding: ids must be int32, got float32\[3\]/);
  assert.throws(() => T.embedding(i32([1]), i32([1, 2], [1, 2])), /embedding: expected a float32 tensor, got int32\[1,2\]/);
  assert.throws(() => T.embedding(i32([1]), f(5)), /embedding: table\[5\] must be \[V, C\]/);
  assert.throws(() => T.embedding(i32([0, 7, 1]), table), /^RangeError: embedding: ids for table\[5,3\]: .*index 7 at position 1 is out of range \[0, 5\)/);
  assert.throws(() => T.embedding(i32([0, -1]), table), /^RangeError: embedding: ids for table\[5,3\]: .*index -1 at position 1/);
  assert.throws(() => T.embedding(i32([5], [1, 1]), table), /RangeError: embedding: .*index 5 at position 0 is out of range \[0, 5\)/);
  table.requiresGrad = true;
  assert.equal(table.grad, null, "a failed lookup leaves no gradient behind");
});

test("crossEntropy: shapes, dtypes, out-of-range targets, all targets ignored", () => {
  assert.throws(() => T.crossEntropy(f(2, 3, 5), i32([1, 2, 3, 4, 0, 1, 2, 3], [2, 4])),
    /^ShapeError: crossEntropy: logits\[2,3,5\] vs targets\[2,4\]: expected targets.shape == logits.shape\[:-1\]/);
  assert.throws(() => T.crossEntropy(f(4, 5), i32([1, 2], [2])), /crossEntropy: logits\[4,5\] vs targets\[2\]/);
  assert.throws(() => T.crossEntropy(T.tensor(1), T.ids([0], [])), /crossEntropy: logits\[\] vs targets\[\]/);
  assert.throws(() => T.crossEntropy(f(2, 5), f(2)), /^TypeError: crossEntropy: targets must be int32, got float32\[2\]/);
  assert.throws(() => T.crossEntropy(i32([1, 2], [1, 2]), i32([1])), /crossEntropy: expected a float32 tensor, got int32\[1,2\]/);
  assert.throws(() => T.crossEntropy(f(3, 5), i32([0, 5, 1])), /^RangeError: crossEntropy: targets for 5 classes: .*index 5 at position 1 is out of range \[0, 5\)/);
  assert.throws(() => T.crossEntropy(f(2, 5), i32([-1, -3])), /crossEntropy: every one of the 2 targets is ignored/);
});

test("causalSelfAttention names qkv's shape and the head count", () => {
  assert.throws(() => T.causalSelfAttention(f(2, 3, 10), 1), /^ShapeError: causalSelfAttention: qkv\[2,3,10\]: expected \[B, T, 3\*C\]/);
  assert.throws(() => T.causalSelfAttention(f(3, 12), 1), /causalSelfAttention: qkv\[3,12\]: expected \[B, T, 3\*C\]/);
  assert.throws(() => T.causalSelfAttention(f(1, 2, 12), 3), /causalSelfAttention: C=4 is not divisible by nHead=3/);
  assert.throws(() => T.causalSelfAttention(f(1, 2, 12), 0), /causalSelfAttention: C=4 is not divisible by nHead=0/);
  assert.throws(() => T.causalSelfAttention(f(1, 2, 12), 1.5), /causalSelfAttention: C=4 is not divisible by nHead=1.5/);
});

test("reductions name the op, the axis and the tensor's shape", () => {
  for (const op of ["sum", "mean", "max"] as const) {
    assert.throws(() => T[op](f(3, 4), 2), new RegExp(`^ShapeError: ${op}: axis 2 is out of range for tensor\\[3,4\\]`));
    assert.throws(() => T[op](f(3, 4), -3), new RegExp(`${op}: axis -3 is out of range for tensor\\[3,4\\]`));
    assert.throws(() => T[op](f(3, 4), 0.5), new RegExp(`${op}: axis 0.5 is out of range for tensor\\[3,4\\]`));
    assert.throws(() => T[op](i32([1])), new RegExp(`${op}: expected a float32 tensor, got int32\\[1\\]`));
  }
  assert.throws(() => T.max(T.zeros([2, 0]), 1), /max: cannot take the max over an empty axis of tensor\[2,0\]/);
  // A 0-d tensor has one axis to reduce over, as in PyTorch (axis 0 or -1).
  for (const axis of [0, -1]) assert.equal(T.sum(T.tensor(3), axis).item(), 3);
  assert.throws(() => T.sum(T.tensor(3), 1), /sum: axis 1 is out of range for tensor\[\]/);
});

test("views and copies name the shapes", () => {
  const x = f(2, 3);
  assert.throws(() => T.reshape(x, [4, 2]), /^ShapeError: reshape: tensor\[2,3\] has 6 elements, target \[4,2\] has 8/);
  assert.throws(() => T.reshape(x, [-1, 4]), /reshape: cannot reshape tensor\[2,3\] \(6 elements\) to \[-1,4\]/);
  assert.throws(() => T.reshape(x, [-1, -1]), /reshape: \[-1,-1\] has more than one -1/);
  assert.throws(() => T.reshape(x, [2, 1.5, 2]), /reshape: invalid target shape \[2,1.5,2\]/);
  assert.throws(() => T.permute(x, [0]), /^ShapeError: permute: got 1 dims \[0\] for tensor\[2,3\]/);
  assert.throws(() => T.permute(x, [0, 0]), /permute: \[0,0\] repeats an axis/);
  assert.throws(() => T.permute(x, [0, 2]), /permute: axis 2 is out of range for tensor\[2,3\]/);
  assert.throws(() => T.transpose(x, 0, 2), /transpose: axis 2 is out of range for tensor\[2,3\]/);
  assert.throws(() => T.transpose(f(3)), /transpose: axis -2 is out of range for tensor\[3\]/);
  assert.throws(() => T.slice(x, 1, 2, 4), /^ShapeError: slice: \[2, 4\) is out of range for axis 1 of tensor\[2,3\] \(size 3\)/);
  assert.throws(() => T.slice(x, 1, 2, 1), /slice: \[2, 1\) is out of range for axis 1 of tensor\[2,3\]/);
  assert.throws(() => T.slice(x, 0, -1, 1), /slice: \[-1, 1\) is out of range/);
  assert.throws(() => T.slice(x, 2, 0, 1), /slice: axis 2 is out of range for tensor\[2,3\]/);
  assert.throws(() => T.slice(T.tensor(1), 0, 0, 1), /slice: tensor\[\] has no axis to slice/);
  assert.throws(() => T.cat([]), /cat: needs at least one tensor/);
  assert.throws(() => T.cat([x, f(2, 4)], 0), /^ShapeError: cat: tensor\[2,4\] does not match \[2,3\] outside axis 0/);
  assert.throws(() => T.cat([x, f(2, 3, 1)], 0), /cat: tensor\[2,3,1\] does not match \[2,3\] outside axis 0/);
  assert.throws(() => T.cat([x, x], 2), /cat: axis 2 is out of range for tensor\[2,3\]/);
  assert.throws(() => T.cat([x, i32([1, 2, 3, 4, 5, 6], [2, 3])], 0), /^TypeError: cat: tensor int32\[2,3\] does not match float32\[2,3\]: expected one dtype/);
  assert.throws(() => T.cat([T.tensor(1), T.tensor(2)]), /cat: tensor\[\] has no axis to concatenate along/);
});

test("ops given something other than a Tensor say so", () => {
  const x = f(2, 3);
  const bad = [null, undefined, "x", 3, [1, 2], { shape: [2, 3] }] as unknown as T.Tensor[];
  for (const b of bad) {
    const got = b === null ? "object" : typeof b;
    assert.throws(() => T.matmul(b, x), new RegExp(`^TypeError: matmul: expected a Tensor, got ${got}`));
    assert.throws(() => T.linear(x, b), new RegExp(`linear: expected a Tensor, got ${got}`));
    assert.throws(() => T.softmax(b), new RegExp(`softmax: expected a Tensor, got ${got}`));
    assert.throws(() => T.layerNorm(x, b, f(3)), new RegExp(`layerNorm: expected a Tensor, got ${got}`));
    assert.throws(() => T.embedding(b, f(4, 3)), new RegExp(`embedding: ids must be a Tensor, got ${got}`));
    assert.throws(() => T.crossEntropy(x, b), new RegExp(`crossEntropy: targets must be a Tensor, got ${got}`));
    assert.throws(() => T.causalSelfAttention(b, 1), new RegExp(`causalSelfAttention: expected a Tensor, got ${got}`));
    assert.throws(() => T.sum(b), new RegExp(`sum: expected a Tensor, got ${got}`));
    assert.throws(() => T.gelu(b), new RegExp(`gelu: expected a Tensor, got ${got}`));
    assert.throws(() => T.dropout(b, 0.1), new RegExp(`dropout: expected a Tensor, got ${got}`));
  }
});

test("creation, backward and item name the shapes", () => {
  assert.throws(() => T.tensor([1, 2, 3], [2, 2]), /^ShapeError: tensor: 3 values do not fill shape \[2,2\] \(expected 4\)/);
  assert.throws(() => T.zeros([2, -1]), /zeros|empty: invalid shape \[2,-1\]/);
  assert.throws(() => T.zeros([2, 1.5]), /empty: invalid shape \[2,1.5\]/);
  assert.throws(() => T.ids([1, 2.5]), /^TypeError: tensor: int32 value at 1 is 2.5/);
  assert.throws(() => T.ids([2 ** 31]), /tensor: int32 value at 0 is 2147483648/);
  assert.throws(() => f(2, 3).item(), /item: tensor\[2,3\] has 6 elements, expected 1/);
  assert.throws(() => i32([1]).data, /^TypeError: data: tensor is int32; use .ids/);
  assert.throws(() => f(1).ids, /ids: tensor is float32, expected int32/);
  const x = f(2, 3);
  assert.throws(() => x.backward(), /^Error: backward: tensor\[2,3\] does not require grad/);
  x.requiresGrad = true;
  const y = T.exp(x);
  assert.throws(() => y.backward(), /^ShapeError: backward: root\[2,3\] is not a scalar; pass a gradient of the same shape/);
  assert.throws(() => y.backward(f(3, 2)), /backward: gradient\[3,2\] does not match root\[2,3\]/);
});

test("huge tensors fail with an error, not a crash", () => {
  // 1 TiB: refused by the allocator (or, on a machine with that much memory, allocated untouched).
  try {
    T.empty([2 ** 38]).release();
  } catch (e) {
    assert.ok(e instanceof RangeError && /^alloc: /.test(e.message), `empty([2^38]) threw ${String(e)}`);
  }
  assert.throws(() => T.zeros([1e10, 1e10]), (e: Error) => (e instanceof RangeError || e instanceof TypeError) && /alloc/.test(e.message));
});

test("a released tensor reads as a clear error", () => {
  const x = f(3, 4);
  x.release();
  assert.equal(x.released, true);
  assert.throws(() => x.data, /^Error: data: tensor\[3,4\] was released/);
  assert.throws(() => x.toArray(), /toArray: tensor\[3,4\] was released/);
  assert.throws(() => T.exp(x), /tensor\[3,4\] was released/);
  assert.throws(() => T.transpose(x), /view: tensor\[3,4\] was released/);
  const w = f(2, 2);
  w.requiresGrad = true;
  const h = T.tanh(w);
  T.sum(h).backward();
  assert.throws(() => h.toArray(), /toArray: tensor\[2,2\] was released \(activations are freed by backward\(\); call .retain\(\)/);
  x.release(); // idempotent
});
