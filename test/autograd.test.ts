// Autograd around the ops: graphs where gradients meet, empty tensors, noGrad and the
// release of what backward consumed, gradients that accumulate, and the gradcheck helper
// itself (it must fail on a wrong backward, forward, shape, graph or view layout).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as T from "../src/tensor/index.js";
import { gradcheck, type GradcheckOptions, type InputSpec } from "./helpers/gradcheck.js";
import {
  attentionRef, crossEntropyRef, geluRef, layerNormRef, linearRef, matmulRef, reduceRef, unaryRef, type Reference,
} from "./helpers/reference.js";

type Op = (xs: T.Tensor[]) => T.Tensor;
const check = (name: string, specs: InputSpec[], op: Op, ref: Reference, opts?: GradcheckOptions): void => {
  test(name, () => void gradcheck(name, specs, op, ref, opts));
};
const TR: InputSpec["view"] = { transpose: [-2, -1] };

// ---- compositions: graphs where gradients meet ---------------------------------------------

check("a diamond: a = exp(x); a*a + a", [{ shape: [17], range: [-1, 1] }], ([x]) => {
  const a = T.exp(x);
  return T.add(T.mul(a, a), a);
}, unaryRef((x) => Math.exp(2 * x) + Math.exp(x)));

check("an MLP block: gelu(layerNorm(x) @ W + b) @ V, then cross-entropy", [
  { shape: [2, 3, 17] }, { shape: [17] }, { shape: [17] }, { shape: [17, 33], std: 0.3 }, { shape: [33] }, { shape: [33, 5], std: 0.3 },
], ([x, g, bb, w, b, v]) => {
  const targets = T.ids([1, 4, -1, 0, 2, 3], [2, 3]);
  return T.crossEntropy(T.matmul(T.gelu(T.linear(T.layerNorm(x, g, bb), w, b)), v), targets);
}, ([x, g, bb, w, b, v], [sx, , , sw, sb, sv]) => {
  const h = layerNormRef()([x, g, bb], [sx, [17], [17]]);
  const l = linearRef("in_out")([h.data, w, b], [h.shape, sw, sb]);
  const a = geluRef([l.data], [l.shape]);
  const o = matmulRef([a.data, v], [a.shape, sv]);
  return crossEntropyRef([1, 4, -1, 0, 2, 3])([o.data], [o.shape]);
});

check("attention block: qkv = x @ W, attention, sum", [{ shape: [2, 5, 8] }, { shape: [8, 24], std: 0.5 }],
  ([x, w]) => T.sum(T.causalSelfAttention(T.matmul(x, w), 2)),
  ([x, w], [sx, sw]) => {
    const qkv = matmulRef([x, w], [sx, sw]);
    const o = attentionRef(2)([qkv.data], [qkv.shape]);
    return reduceRef("sum")([o.data], [o.shape]);
  });

// ---- empty tensors -----------------------------------------------------------------------

test("empty tensors flow through ops and backward", () => {
  const x = T.zeros([0, 3]);
  x.requiresGrad = true;
  const w = T.randn([3, 4]);
  w.requiresGrad = true;
  const y = T.layerNorm(T.gelu(T.matmul(x, w)), T.ones([4]), T.zeros([4]));
  assert.deepEqual(y.shape, [0, 4]);
  T.sum(T.softmax(y)).backward();
  assert.deepEqual(x.grad!.shape, [0, 3]);
  assert.deepEqual([...w.grad!.toArray()], new Array(12).fill(0), "no rows: a zero weight gradient");
  assert.deepEqual([...T.matmul(T.zeros([2, 0]), T.zeros([0, 3])).toArray()], [0, 0, 0, 0, 0, 0], "K = 0");
  assert.deepEqual([...T.sum(T.zeros([2, 0]), 1).toArray()], [0, 0]);
  assert.ok(T.mean(T.zeros([2, 0]), 1).toArray().every(Number.isNaN), "the mean of nothing is NaN");
  assert.deepEqual(T.embedding(T.ids([], [0]), T.zeros([3, 2])).shape, [0, 2]);
  assert.deepEqual(T.causalSelfAttention(T.zeros([1, 0, 6]), 2).shape, [1, 0, 2]);
  assert.deepEqual(T.cat([T.zeros([0, 2]), T.ones([1, 2])]).shape, [1, 2]);
});

// ---- grad mode and memory ----------------------------------------------------------------

test("noGrad records nothing and releases the intermediates it did not return", () => {
  const x = T.randn([3, 4]);
  x.requiresGrad = true;
  const inner: T.Tensor[] = [];
  const { y, z } = T.noGrad(() => {
    assert.equal(T.isGradEnabled(), false);
    const a = T.exp(x);
    const b = T.mul(a, 2);
    inner.push(a, b);
    const y = T.add(b, 1);
    const z = T.sum(y);
    return { y, z };
  });
  assert.equal(T.isGradEnabled(), true);
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
  assert.equal(z.node, null);
  assert.ok(inner.length === 2 && inner.every((t) => t.released), "intermediates are released");
  assert.ok(!y.released && !z.released && !x.released, "results and outer tensors are kept");
  const xv = x.toArray();
  const yv = y.toArray();
  for (let i = 0; i < xv.length; i++) assert.ok(Math.abs(yv[i] - (2 * Math.exp(xv[i]) + 1)) < 1e-4 * yv[i]);
  // enableGrad inside noGrad records again.
  const w = T.noGrad(() => T.enableGrad(() => T.mul(x, 3)));
  assert.equal(w.requiresGrad, true);
  assert.ok(w.node !== null);
});

test("noGrad releases intermediates when its body throws, and restores grad mode", () => {
  const inner: T.Tensor[] = [];
  assert.throws(() => T.noGrad(() => {
    inner.push(T.ones([2]));
    throw new Error("boom");
  }), /boom/);
  assert.ok(inner[0].released);
  assert.equal(T.isGradEnabled(), true);
});

test("backward releases the graph's activations and saved buffers; leaves keep .grad", () => {
  const x = T.randn([4, 17]);
  const w = T.randn([17, 5]);
  x.requiresGrad = true;
  w.requiresGrad = true;
  const before = T.memoryStats().liveBuffers;
  const h = T.matmul(T.transpose(T.transpose(x)), w); // a contiguous view pair and a GEMM
  const a = T.gelu(h);
  const s = T.softmax(T.transpose(a)); // dense copy saved for the backward
  const loss = T.mean(s);
  const kept = T.tanh(a).retain();
  const loss2 = T.add(loss, T.sum(kept));
  loss2.backward();
  for (const t of [h, a, s, loss]) assert.ok(t.released, `${t} was released`);
  assert.ok(!kept.released, "a retained activation survives");
  assert.ok(!x.released && !w.released);
  assert.deepEqual(x.grad!.shape, [4, 17]);
  assert.deepEqual(w.grad!.shape, [17, 5]);
  // What is left: the root, the retained tensor and two gradients.
  assert.equal(T.memoryStats().liveBuffers - before, 4);
  assert.throws(() => a.data, /data: tensor\[4,5\] was released/);
  for (const t of [loss2, kept]) t.release();
  assert.equal(T.memoryStats().liveBuffers - before, 2);
});

test("gradients accumulate across backward calls and through repeated use", () => {
  const x = T.tensor([1, 2, 3]);
  x.requiresGrad = true;
  T.sum(T.scale(x, 2)).backward();
  T.sum(T.mul(x, x)).backward();
  assert.deepEqual([...x.grad!.toArray()], [2 + 2, 2 + 4, 2 + 6]);
  const g = T.tensor([1, -1, 0.5]);
  T.exp(x).backward(g);
  const want = [4 + Math.exp(1), 6 - Math.exp(2), 8 + 0.5 * Math.exp(3)];
  x.grad!.toArray().forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5 * Math.abs(want[i])));
});

test("ops that write a leaf's .grad in place accumulate across backward calls", () => {
  const rng = new T.Rng(5);
  const x = T.randn([2, 3, 17], 1, rng), w = T.randn([17, 5], 1, rng), wo = T.randn([5, 17], 1, rng), bias = T.randn([5], 1, rng);
  const g = T.randn([17], 1, rng), b = T.randn([17], 1, rng), table = T.randn([7, 17], 1, rng);
  const leaves = [w, wo, bias, g, b, table];
  for (const t of leaves) t.requiresGrad = true;
  const ids = T.ids([1, 6, 1, 0, 1, 3], [2, 3]);
  const step = (): void => {
    const h = T.add(T.layerNorm(x, g, b), T.embedding(ids, table));
    const y = T.add(T.linear(h, w, bias), T.linear(h, wo, null, "out_in"));
    T.add(T.sum(T.mul(y, y)), T.sum(T.matmul(h, w))).backward();
  };
  step();
  const once = leaves.map((t) => t.grad!.toArray());
  step();
  leaves.forEach((t, i) => {
    const twice = t.grad!.toArray();
    twice.forEach((v, j) => assert.ok(Math.abs(v - 2 * once[i][j]) <= 1e-5 * Math.max(1, Math.abs(2 * once[i][j])),
      `leaf ${i} element ${j}: ${v} after two steps, expected 2 x ${once[i][j]}`));
  });
});

// ---- the helper itself -------------------------------------------------------------------

/** exp with a backward that is off by `err` (relative) on one element. */
function skewedExp(x: T.Tensor, err: number): T.Tensor {
  const out = T.noGrad(() => T.exp(x));
  return T.record("skewedExp", [x], out, (g) => {
    const gx = T.tensor(g.toArray().map((v, i) => v * out.data[i] * (i === 3 ? 1 + err : 1)), [...x.shape]);
    return [gx];
  });
}

test("gradcheck catches a backward that is 1% off on one element", () => {
  gradcheck("exact", [{ shape: [17], range: [-1, 1] }], ([x]) => skewedExp(x, 0), unaryRef(Math.exp));
  assert.throws(() => gradcheck("skewed", [{ shape: [17], range: [-1, 1] }], ([x]) => skewedExp(x, 0.01), unaryRef(Math.exp)),
    /skewed: gradient of input 0 \[17\]: element 3/);
});

test("gradcheck's directional mode catches a block of 1,000 of 20,001 gradients 1% off", () => {
  const skewBlock = (x: T.Tensor, err: number): T.Tensor => {
    const out = T.noGrad(() => T.exp(x));
    return T.record("skewBlock", [x], out, (g) => {
      const gx = T.tensor(g.toArray().map((v, i) => v * out.data[i] * (i >= 8000 && i < 9000 ? 1 + err : 1)), [...x.shape]);
      return [gx];
    });
  };
  const spec: InputSpec[] = [{ shape: [20001], range: [-1, 1] }];
  gradcheck("block exact", spec, ([x]) => skewBlock(x, 0), unaryRef(Math.exp), { directions: 3 });
  assert.throws(() => gradcheck("block skewed", spec, ([x]) => skewBlock(x, 0.01), unaryRef(Math.exp), { directions: 3 }),
    /block skewed: directional derivative 0/);
});

test("gradcheck catches a wrong forward, a wrong shape and a missing graph", () => {
  assert.throws(() => gradcheck("fwd", [{ shape: [5] }], ([x]) => T.scale(x, 1.001), unaryRef((v) => v)), /fwd: forward: element/);
  assert.throws(() => gradcheck("shape", [{ shape: [2, 3] }], ([x]) => T.reshape(x, [3, 2]), unaryRef((v) => v)), /output shape \[3,2\]/);
  assert.throws(() => gradcheck("nograd", [{ shape: [3] }], ([x]) => T.noGrad(() => T.exp(x)), unaryRef(Math.exp)),
    /does not require grad/);
});

test("gradcheck views: an op that ignores its input's strides is caught", () => {
  // Reads the transposed view's storage as if it were contiguous (the classic kernel bug).
  const stridesIgnored = (x: T.Tensor): T.Tensor => {
    const out = T.tensor(x.data.subarray(0, x.size), [...x.shape]);
    return T.record("stridesIgnored", [x], out, (g) => [T.tensor(g.toArray(), [...x.shape])]);
  };
  gradcheck("contiguous input", [{ shape: [3, 5] }], ([x]) => stridesIgnored(x), unaryRef((v) => v));
  assert.throws(() => gradcheck("layout", [{ shape: [3, 5], view: TR }], ([x]) => stridesIgnored(x), unaryRef((v) => v)),
    /layout: forward: element \d+ is/);
});
