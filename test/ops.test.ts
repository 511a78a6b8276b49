// Every differentiable op, forward and backward, against float64 references and central
// differences (test/helpers/gradcheck.ts), on odd sizes, broadcasting and non-contiguous views.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as T from "../src/tensor/index.js";
import { backend } from "../src/native/index.js";
import { gradcheck, type GradcheckOptions, type InputSpec } from "./helpers/gradcheck.js";
import {
  attentionRef, binaryRef, catRef, crossEntropyRef, embeddingRef, gelu64, geluRef, layerNormRef, linearRef, matmulRef,
  permuteRef, reduceRef, reshapeRef, sigmoid64, sliceRef, softmaxRef, transposeRef, unaryRef, type Reference,
} from "./helpers/reference.js";

type Op = (xs: T.Tensor[]) => T.Tensor;
const check = (name: string, specs: InputSpec[], op: Op, ref: Reference, opts?: GradcheckOptions): void => {
  test(name, () => void gradcheck(name, specs, op, ref, opts));
};
const TR: InputSpec["view"] = { transpose: [-2, -1] };

// ---- binary ops with broadcasting -------------------------------------------------------

const binaries = [
  { name: "add", f: T.add, ref: (a: number, b: number) => a + b },
  { name: "sub", f: T.sub, ref: (a: number, b: number) => a - b },
  { name: "mul", f: T.mul, ref: (a: number, b: number) => a * b },
  { name: "div", f: T.div, ref: (a: number, b: number) => a / b },
] as const;

const pairs: [number[], number[], string?][] = [
  [[3, 17], [17]],
  [[17], [3, 17]],
  [[33, 1], [1, 3]],
  [[2, 1, 5], [3, 1]],
  [[3, 1], [2, 1, 5]],
  [[], [3, 3]],
  [[1], [65]],
  [[5, 17], [5, 17], "views"],
];

for (const { name, f, ref } of binaries) {
  for (const [sa, sb, kind] of pairs) {
    // Divisors stay away from 0, where 1/b and its derivative blow up.
    const b: InputSpec = name === "div" ? { shape: sb, minAbs: 0.5 } : { shape: sb };
    const a: InputSpec = { shape: sa };
    if (kind === "views") {
      a.view = TR;
      b.view = { slice: [1, 2, 3] };
    }
    check(`${name} [${sa}] & [${sb}]${kind ? " (non-contiguous)" : ""}`, [a, b], ([x, y]) => f(x, y), binaryRef(ref));
  }
  const c = 2.5;
  const posDiv = name === "div" ? { minAbs: 0.5 } : {};
  check(`${name} tensor & number`, [{ shape: [3, 17], view: TR }], ([x]) => f(x, c), unaryRef((x) => ref(x, c)));
  check(`${name} number & tensor`, [{ shape: [17, 3], ...posDiv }], ([x]) => f(c, x), unaryRef((x) => ref(c, x)));
  check(`${name} of a tensor with itself`, [{ shape: [33], ...posDiv }], ([x]) => f(x, x), unaryRef((x) => ref(x, x)));
}

test("binary ops of two constants record nothing", () => {
  const a = T.randn([3]), b = T.randn([3]);
  const y = T.mul(a, b);
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
});

// ---- unary ops ---------------------------------------------------------------------------

const unaries: { name: string; f: (x: T.Tensor) => T.Tensor; ref: (x: number) => number; spec: Partial<InputSpec> }[] = [
  { name: "neg", f: T.neg, ref: (x) => -x, spec: {} },
  { name: "exp", f: T.exp, ref: Math.exp, spec: { range: [-2, 2] } },
  { name: "log", f: T.log, ref: Math.log, spec: { range: [0.2, 3] } },
  { name: "tanh", f: T.tanh, ref: Math.tanh, spec: {} },
  { name: "relu", f: T.relu, ref: (x) => Math.max(x, 0), spec: { minAbs: 0.05 } },
  { name: "sigmoid", f: T.sigmoid, ref: sigmoid64, spec: { std: 2 } },
  { name: "sqrt", f: T.sqrt, ref: Math.sqrt, spec: { range: [0.2, 3] } },
  { name: "scale", f: (x) => T.scale(x, -1.7), ref: (x) => -1.7 * x, spec: {} },
  { name: "addScalar", f: (x) => T.addScalar(x, 0.3), ref: (x) => x + 0.3, spec: {} },
  { name: "gelu", f: T.gelu, ref: gelu64, spec: { std: 2 } },
];

for (const { name, f, ref, spec } of unaries) {
  check(`${name} [65]`, [{ shape: [65], ...spec }], ([x]) => f(x), unaryRef(ref));
  check(`${name} [17,3] transposed view`, [{ shape: [17, 3], view: TR, ...spec }], ([x]) => f(x), unaryRef(ref));
  check(`${name} [2,3,5] permuted, sliced view`, [{ shape: [2, 3, 5], view: [{ slice: [2, 1, 1] }, { permute: [1, 2, 0] }], ...spec }],
    ([x]) => f(x), unaryRef(ref));
}

// ---- dropout -----------------------------------------------------------------------------

test("dropout: gradient through the forward's mask, on a view", () => {
  const p = 0.3;
  let mask: Float32Array = new Float32Array(0);
  const rng = new T.Rng(7);
  gradcheck("dropout p=0.3 [17,33]", [{ shape: [17, 33], view: TR, minAbs: 0.05 }],
    ([x]) => {
      const y = T.dropout(x, p, true, rng);
      mask = y.toArray() as Float32Array; // kept elements are non-zero: inputs stay off 0
      return y;
    },
    ([x], [s]) => ({ data: x.map((v, i) => (mask[i] !== 0 ? v / (1 - p) : 0)), shape: [...s] }));
  const kept = mask.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0) / mask.length;
  assert.ok(kept > 0.55 && kept < 0.85, `kept fraction ${kept}`);
});

test("dropout keeps a fraction ~ 1-p and scales by 1/(1-p)", () => {
  for (const p of [0.1, 0.5, 0.9]) {
    const x = T.ones([64, 64]);
    const y = T.dropout(x, p, true, new T.Rng(11));
    const v = y.toArray();
    let kept = 0;
    for (const e of v) {
      if (e !== 0) {
        kept++;
        assert.ok(Math.abs(e - 1 / (1 - p)) < 1e-5 * (1 / (1 - p)), `kept value ${e}`);
      }
    }
    const frac = kept / v.length;
    // 4096 draws: the standard deviation of the fraction is <= 0.008.
    assert.ok(Math.abs(frac - (1 - p)) < 0.04, `p=${p}: kept fraction ${frac}`);
    const again = T.dropout(x, p, true, new T.Rng(11));
    assert.deepEqual(again.toArray(), v, "same seed, same mask");
    const other = T.dropout(x, p, true, new T.Rng(12));
    assert.notDeepEqual(other.toArray(), v, "another seed, another mask");
  }
});

test("dropout is the identity when p=0 or not training", () => {
  const x = T.randn([3, 5]);
  x.requiresGrad = true;
  assert.equal(T.dropout(x, 0), x);
  assert.equal(T.dropout(x, 0.5, false), x);
});

// ---- reductions --------------------------------------------------------------------------

for (const kind of ["sum", "mean"] as const) {
  const f = kind === "sum" ? T.sum : T.mean;
  for (const keepdim of [false, true]) {
    test(`${kind} over each axis and all, keepdim=${keepdim}`, () => {
      for (const axis of [0, 1, 2, -1, -3, undefined]) {
        const name = `${kind}(axis=${axis}, keepdim=${keepdim})`;
        gradcheck(`${name} [3,17,5]`, [{ shape: [3, 17, 5] }], ([x]) => f(x, axis, keepdim), reduceRef(kind, axis, keepdim));
        gradcheck(`${name} [5,3,17] view`, [{ shape: [5, 3, 17], view: [{ permute: [2, 0, 1] }, { slice: [1, 0, 1] }] }],
          ([x]) => f(x, axis, keepdim), reduceRef(kind, axis, keepdim));
      }
    });
  }
  check(`${kind} of a 0-d tensor and of [1]`, [{ shape: [] }], ([x]) => f(T.reshape(f(x), [1])), reduceRef(kind));
  check(`${kind} [65] all`, [{ shape: [65] }], ([x]) => f(x), reduceRef(kind));
}

test("max over each axis and all (forward only)", () => {
  for (const keepdim of [false, true]) {
    for (const axis of [0, 1, 2, -1, undefined]) {
      gradcheck(`max(axis=${axis}, keepdim=${keepdim})`, [{ shape: [3, 17, 5], view: { permute: [0, 2, 1] } }],
        ([x]) => T.max(x, axis, keepdim), reduceRef("max", axis, keepdim), { backward: false, fwdAtol: 0, fwdRtol: 0 });
    }
  }
  const x = T.randn([4]);
  x.requiresGrad = true;
  assert.equal(T.max(x).requiresGrad, false, "max has no gradient");
});

// ---- softmax, layerNorm ------------------------------------------------------------------

check("softmax [3,17]", [{ shape: [3, 17], std: 2 }], ([x]) => T.softmax(x), softmaxRef);
check("softmax [2,3,33] view", [{ shape: [2, 3, 33], std: 2, view: { permute: [1, 2, 0] } }], ([x]) => T.softmax(x), softmaxRef);
check("softmax [5,1]", [{ shape: [5, 1] }], ([x]) => T.softmax(x), softmaxRef);
check("softmax [65] large logits", [{ shape: [65], std: 20 }], ([x]) => T.softmax(x), softmaxRef);

const ln = (C: number, x: InputSpec): InputSpec[] => [x, { shape: [C], range: [0.5, 1.5] }, { shape: [C] }];
check("layerNorm [3,17]", ln(17, { shape: [3, 17] }), ([x, w, b]) => T.layerNorm(x, w, b), layerNormRef());
check("layerNorm [2,3,33] view", ln(33, { shape: [2, 3, 33], std: 3, view: [{ slice: [2, 1, 1] }, { transpose: [0, 1] }] }),
  ([x, w, b]) => T.layerNorm(x, w, b), layerNormRef());
check("layerNorm [1,65] eps=1e-3", ln(65, { shape: [1, 65] }), ([x, w, b]) => T.layerNorm(x, w, b, 1e-3), layerNormRef(1e-3));
check("layerNorm [4,3] constant weight", [{ shape: [4, 3] }, { shape: [3], grad: false }, { shape: [3] }],
  ([x, w, b]) => T.layerNorm(x, w, b), layerNormRef());

// ---- embedding, cross-entropy ------------------------------------------------------------

test("embedding: repeated ids accumulate into the table", () => {
  const idList = [3, 0, 3, 6, 3, 1, 0, 6, 2, 3, 5, 3];
  const ids = T.ids(idList, [2, 6]);
  gradcheck("embedding [7,5] by ids[2,6]", [{ shape: [7, 5] }], ([t]) => T.embedding(ids, t), embeddingRef(idList, [2, 6]));
  gradcheck("embedding of a sliced table view", [{ shape: [7, 5], view: { slice: [1, 2, 1] } }],
    ([t]) => T.embedding(ids, t), embeddingRef(idList, [2, 6]));
  const one = T.ids([4], [1]);
  gradcheck("embedding [65,3] by one id", [{ shape: [65, 3] }], ([t]) => T.embedding(one, t), embeddingRef([4], [1]));
});

test("crossEntropy, with ignored targets", () => {
  const targets = [3, -1, 16, 0, -100, 7];
  const t = T.ids(targets, [6]);
  gradcheck("crossEntropy [6,17]", [{ shape: [6, 17], std: 2 }], ([x]) => T.crossEntropy(x, t), crossEntropyRef(targets));
  const t3 = [1, 32, -1, 0, 5, 17];
  const tt = T.ids(t3, [2, 3]);
  gradcheck("crossEntropy [2,3,33] view", [{ shape: [2, 3, 33], view: { permute: [2, 0, 1] } }],
    ([x]) => T.crossEntropy(x, tt), crossEntropyRef(t3));
  const single = T.ids([0], [1]);
  gradcheck("crossEntropy [1,1]", [{ shape: [1, 1] }], ([x]) => T.crossEntropy(x, single), crossEntropyRef([0]));
  const nc = T.transpose(T.ids([1, 2, 0, 4, -1, 3], [2, 3]));
  gradcheck("crossEntropy with non-contiguous targets", [{ shape: [3, 2, 5] }], ([x]) => T.crossEntropy(x, nc),
    crossEntropyRef([1, 4, 2, -1, 0, 3]));
});

// ---- attention ---------------------------------------------------------------------------

for (const [B, Tn, C, nHead] of [[2, 1, 4, 1], [1, 3, 6, 2], [2, 3, 12, 4], [1, 17, 12, 3], [2, 17, 8, 1]]) {
  check(`causalSelfAttention B=${B} T=${Tn} C=${C} heads=${nHead}`, [{ shape: [B, Tn, 3 * C] }],
    ([x]) => T.causalSelfAttention(x, nHead), attentionRef(nHead));
}
check("causalSelfAttention on a sliced qkv view", [{ shape: [2, 17, 18], view: { slice: [2, 1, 2] } }],
  ([x]) => T.causalSelfAttention(x, 2), attentionRef(2));
check("causalSelfAttention with large scores", [{ shape: [1, 17, 12], std: 4 }], ([x]) => T.causalSelfAttention(x, 2), attentionRef(2));

// ---- matmul, linear ----------------------------------------------------------------------

const mm = ([a, b]: T.Tensor[]): T.Tensor => T.matmul(a, b);
for (const [M, K, N] of [[3, 17, 33], [1, 65, 1], [65, 3, 17], [33, 1, 33], [17, 33, 3]]) {
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    check(`matmul [${M},${K}]${ta ? "ᵀ" : ""} @ [${K},${N}]${tb ? "ᵀ" : ""}`,
      [{ shape: [M, K], view: ta ? TR : undefined }, { shape: [K, N], view: tb ? TR : undefined }], mm, matmulRef);
  }
}
check("matmul batched [2,3,17] @ [2,17,5]", [{ shape: [2, 3, 17] }, { shape: [2, 17, 5] }], mm, matmulRef);
check("matmul batched 4-D [2,2,3,5] @ [2,2,5,4]", [{ shape: [2, 2, 3, 5] }, { shape: [2, 2, 5, 4] }], mm, matmulRef);
check("matmul batched, both transposed views", [{ shape: [3, 17, 5], view: TR }, { shape: [3, 5, 33], view: TR }], mm, matmulRef);
check("matmul batched [1,3,17] @ [1,17,2]", [{ shape: [1, 3, 17] }, { shape: [1, 17, 2] }], mm, matmulRef);
check("matmul shared b: [2,17,33] @ [33,3]", [{ shape: [2, 17, 33] }, { shape: [33, 3] }], mm, matmulRef);
check("matmul shared b, a transposed", [{ shape: [3, 5, 17], view: TR }, { shape: [17, 4] }], mm, matmulRef);
check("matmul shared b transposed, a row-sliced", [{ shape: [2, 5, 17], view: { slice: [2, 3, 1] } }, { shape: [17, 4], view: TR }], mm, matmulRef);
check("matmul shared b, a with a sliced batch", [{ shape: [3, 5, 7], view: { slice: [0, 1, 1] } }, { shape: [7, 3] }], mm, matmulRef);
check("matmul with a permuted batch (copied)", [{ shape: [2, 3, 5], view: { permute: [1, 0, 2] } }, { shape: [2, 5, 4] }], mm, matmulRef);
check("matmul batched with b's batch permuted", [{ shape: [2, 3, 5] }, { shape: [2, 5, 4], view: { permute: [2, 0, 1] } }], mm, matmulRef);
check("matmul with a constant b", [{ shape: [3, 17] }, { shape: [17, 5], grad: false }], mm, matmulRef);
check("matmul with a constant a", [{ shape: [3, 17], grad: false }, { shape: [17, 5] }], mm, matmulRef);
check("matmul of a tensor with its own transpose", [{ shape: [5, 17] }], ([a]) => T.matmul(a, T.transpose(a)),
  ([a], [[m, k]]) => matmulRef([a, transposeRef(0, 1)([a], [[m, k]]).data], [[m, k], [k, m]]));

for (const layout of ["in_out", "out_in"] as const) {
  for (const withBias of [true, false]) {
    const w = layout === "in_out" ? [17, 5] : [5, 17];
    const specs: InputSpec[] = [{ shape: [2, 3, 17] }, { shape: w }];
    if (withBias) specs.push({ shape: [5] });
    const tag = `linear ${layout}${withBias ? " + bias" : ""}`;
    check(`${tag} [2,3,17] -> 5`, specs, ([x, wt, b]) => T.linear(x, wt, b ?? null, layout), linearRef(layout));
    const viewSpecs: InputSpec[] = [{ shape: [33, 17], view: TR }, ...specs.slice(1)];
    check(`${tag} on a transposed x view`, viewSpecs, ([x, wt, b]) => T.linear(x, wt, b ?? null, layout), linearRef(layout));
  }
}
check("linear of one row [65] -> 1", [{ shape: [65] }, { shape: [65, 1] }, { shape: [1] }], ([x, w, b]) => T.linear(x, w, b), linearRef("in_out"));

// ---- views and copies --------------------------------------------------------------------

check("reshape [3,4,5] -> [12,5]", [{ shape: [3, 4, 5] }], ([x]) => T.reshape(x, [12, 5]), reshapeRef([12, 5]));
check("reshape [3,4,5] -> [-1,10]", [{ shape: [3, 4, 5] }], ([x]) => T.reshape(x, [-1, 10]), reshapeRef([-1, 10]));
check("reshape [3,4,5] -> [60]", [{ shape: [3, 4, 5] }], ([x]) => T.reshape(x, [60]), reshapeRef([60]));
check("reshape of a transposed view (copies)", [{ shape: [4, 5], view: TR }], ([x]) => T.reshape(x, [2, -1]), reshapeRef([2, -1]));
check("reshape to 0-d and back", [{ shape: [1] }], ([x]) => T.reshape(T.reshape(x, []), [1, 1]), reshapeRef([1, 1]));
check("permute [2,3,5] -> [2,0,1]", [{ shape: [2, 3, 5] }], ([x]) => T.permute(x, [2, 0, 1]), permuteRef([2, 0, 1]));
check("permute of a sliced view", [{ shape: [2, 3, 5], view: { slice: [1, 1, 1] } }], ([x]) => T.permute(x, [1, -1, 0]), permuteRef([1, 2, 0]));
check("transpose [3,17]", [{ shape: [3, 17] }], ([x]) => T.transpose(x), transposeRef(-2, -1));
check("transpose [2,3,5] (0,2)", [{ shape: [2, 3, 5] }], ([x]) => T.transpose(x, 0, 2), transposeRef(0, 2));
check("a transposed view feeding mul", [{ shape: [4, 3] }], ([x]) => T.mul(T.transpose(x), 2), ([x], [[a, b]]) => {
  const t = transposeRef(0, 1)([x], [[a, b]]);
  return { data: t.data.map((v) => 2 * v), shape: t.shape };
});
for (const [axis, start, end] of [[0, 1, 3], [1, 0, 17], [1, 5, 6], [-1, 2, 4], [2, 0, 0]]) {
  check(`slice [3,17,5] axis ${axis} [${start},${end})`, [{ shape: [3, 17, 5] }], ([x]) => T.slice(x, axis, start, end), sliceRef(axis, start, end));
}
check("slice of a transposed view", [{ shape: [5, 17], view: TR }], ([x]) => T.slice(x, 1, 1, 4), sliceRef(1, 1, 4));
check("slice of a slice", [{ shape: [6, 9] }], ([x]) => T.slice(T.slice(x, 1, 2, 8), 0, 1, 5),
  ([x], [s]) => { const a = sliceRef(1, 2, 8)([x], [s]); return sliceRef(0, 1, 5)([a.data], [a.shape]); });
check("contiguous of a transposed view", [{ shape: [3, 17], view: TR }], ([x]) => {
  const c = T.contiguous(x);
  assert.ok(c.isContiguous() && !x.isContiguous());
  return c;
}, unaryRef((v) => v));
test("contiguous of a contiguous tensor is the tensor", () => {
  const x = T.randn([3, 4]);
  assert.equal(T.contiguous(x), x);
});
for (const axis of [0, 1, -1]) {
  const shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]].map((s, i) => s.map((d, j) => (j === (axis + 3) % 3 ? d + i : d)));
  check(`cat axis ${axis} of [${shapes.map((s) => `[${s}]`).join(",")}]`,
    [{ shape: shapes[0] }, { shape: shapes[1], view: { slice: [0, 1, 0] } }, { shape: shapes[2], view: TR }],
    (xs) => T.cat(xs, axis), catRef(axis));
}
check("cat of one tensor", [{ shape: [3, 5] }], (xs) => T.cat(xs, 1), catRef(1));
check("cat with a constant input", [{ shape: [3, 5] }, { shape: [2, 5], grad: false }], (xs) => T.cat(xs, 0), catRef(0));

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
  const before = backend.memoryStats().liveBlocks;
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
  assert.equal(backend.memoryStats().liveBlocks - before, 4);
  assert.throws(() => a.data, /data: tensor\[4,5\] was released/);
  for (const t of [loss2, kept]) t.release();
  assert.equal(backend.memoryStats().liveBlocks - before, 2);
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
