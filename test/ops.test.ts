// Every differentiable op, forward and backward, against float64 references and central
// differences (test/helpers/gradcheck.ts): odd sizes (1, 3, 17, 33, 65), broadcasting both
// ways, scalar operands and non-contiguous views (transposes, permutes, slices of larger
// leaves, whose .grad is what gets checked); then each kernel's large, blocked and
// multi-threaded paths, checked along random directions.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as T from "../src/tensor/index.js";
import { gradcheck, type GradcheckOptions, type InputSpec } from "./helpers/gradcheck.js";
import {
  attentionRef, binaryRef, catRef, crossEntropyRef, embeddingRef, gelu64, geluRef, layerNormRef, linearRef, matmulRef,
  mhaRef, permuteRef, reduceRef, reshapeRef, sigmoid64, sliceRef, softmaxRef, transposeRef, unaryRef, type Reference,
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
  [[3, 17], [17], "views"],
  [[33], [3, 33], "views"],
];

for (const { name, f, ref } of binaries) {
  for (const [sa, sb, kind] of pairs) {
    // Divisors stay away from 0, where 1/b and its derivative blow up.
    const b: InputSpec = name === "div" ? { shape: sb, minAbs: 0.5 } : { shape: sb };
    const a: InputSpec = { shape: sa };
    if (kind === "views") {
      a.view = sa.length >= 2 ? TR : { slice: [-1, 1, 2] };
      b.view = { slice: [-1, 2, 3] };
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

// Separate q, k, v (BERT, CLIP): full and causal, head counts 1..4, odd T, views of larger leaves.
const qkvOf = (shape: number[], view?: InputSpec["view"]): InputSpec[] => [0, 1, 2].map(() => ({ shape, view }));
for (const causal of [false, true]) {
  for (const [B, Tn, C, nHead] of [[2, 1, 4, 1], [1, 3, 6, 2], [2, 3, 12, 4], [1, 17, 12, 3], [2, 17, 8, 1]]) {
    check(`attention q,k,v ${causal ? "causal" : "full"} B=${B} T=${Tn} C=${C} heads=${nHead}`, qkvOf([B, Tn, C]),
      ([q, k, v]) => T.attention(q, k, v, nHead, { causal }), mhaRef(nHead, causal));
  }
  check(`attention q,k,v ${causal ? "causal" : "full"} on sliced views`, qkvOf([2, 17, 6], { slice: [2, 1, 2] }),
    ([q, k, v]) => T.attention(q, k, v, 2, { causal }), mhaRef(2, causal));
}
check("attention q,k,v with large scores", [{ shape: [1, 17, 12], std: 4 }, { shape: [1, 17, 12], std: 4 }, { shape: [1, 17, 12] }],
  ([q, k, v]) => T.attention(q, k, v, 2), mhaRef(2, false));
check("attention q,k,v with a constant key and value", [{ shape: [2, 5, 6] }, { shape: [2, 5, 6], grad: false }, { shape: [2, 5, 6], grad: false }],
  ([q, k, v]) => T.attention(q, k, v, 3), mhaRef(3, false));
check("attention of one tensor with itself (q = k = v)", [{ shape: [2, 7, 6] }], ([x]) => T.attention(x, x, x, 2),
  ([x], [s]) => mhaRef(2, false)([x, x, x], [s, s, s]));
test("attention q,k,v agrees with causalSelfAttention on the same fused qkv", () => {
  const qkv = T.randn([2, 17, 36], 1, new T.Rng(11));
  const [q, k, v] = [0, 1, 2].map((i) => T.slice(qkv, 2, 12 * i, 12 * (i + 1)));
  const a = T.causalSelfAttention(qkv, 3).toArray(), b = T.attention(q, k, v, 3, { causal: true }).toArray();
  assert.deepEqual(b, a);
});
test("attention q,k,v rejects mismatched shapes, dtypes and head counts", () => {
  const x = T.zeros([2, 3, 6]);
  assert.throws(() => T.attention(x, T.zeros([2, 4, 6]), x, 2), /attention: q\[2,3,6\], k\[2,4,6\], v\[2,3,6\]: expected three \[B, T, C\]/);
  assert.throws(() => T.attention(T.zeros([3, 6]), T.zeros([3, 6]), T.zeros([3, 6]), 2), /expected three \[B, T, C\]/);
  assert.throws(() => T.attention(x, x, x, 4), /attention: q\[2,3,6\]: C=6 must be a positive multiple of nHead=4/);
  assert.throws(() => T.attention(x, x, x, 0), /nHead=0/);
  assert.throws(() => T.attention(x, T.ids([1, 2, 3, 4, 5, 6], [1, 1, 6]), x, 2), /attention: expected a float32 tensor, got int32/);
});

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
// ---- at scale: the kernels' blocked and multi-threaded paths ---------------------------------
// Too many elements for one difference each: gradients are checked along 3 random directions.

const D: GradcheckOptions = { directions: 3 };
check("attention at scale: B=2 T=130 C=64 heads=4 (several query blocks)", [{ shape: [2, 130, 192] }],
  ([x]) => T.causalSelfAttention(x, 4), attentionRef(4), D);
check("attention at scale on a view: B=1 T=65 C=32 heads=2", [{ shape: [1, 65, 96], view: { slice: [2, 3, 0] } }],
  ([x]) => T.causalSelfAttention(x, 2), attentionRef(2), D);
check("attention q,k,v at scale: B=2 T=130 C=64 heads=4, full", [0, 1, 2].map(() => ({ shape: [2, 130, 64] })),
  ([q, k, v]) => T.attention(q, k, v, 4), mhaRef(4, false), D);
check("attention q,k,v at scale: B=1 T=97 C=32 heads=2, causal", [0, 1, 2].map(() => ({ shape: [1, 97, 32] })),
  ([q, k, v]) => T.attention(q, k, v, 2, { causal: true }), mhaRef(2, true), D);
check("layerNorm at scale [65,513]", ln(513, { shape: [65, 513] }), ([x, w, b]) => T.layerNorm(x, w, b), layerNormRef(), D);
check("softmax at scale [33,1001]", [{ shape: [33, 1001], std: 3 }], ([x]) => T.softmax(x), softmaxRef, D);
test("crossEntropy at scale [33,1001]", () => {
  const rng = new T.Rng(3);
  const targets = Array.from({ length: 33 }, (_, i) => (i % 7 === 2 ? -1 : rng.int(1001)));
  const t = T.ids(targets);
  gradcheck("crossEntropy [33,1001]", [{ shape: [33, 1001], std: 3 }], ([x]) => T.crossEntropy(x, t), crossEntropyRef(targets), D);
});
for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
  check(`matmul at scale [129,300]${ta ? "ᵀ" : ""} @ [300,97]${tb ? "ᵀ" : ""}`,
    [{ shape: [129, 300], view: ta ? TR : undefined }, { shape: [300, 97], view: tb ? TR : undefined }], mm, matmulRef, D);
}
check("matmul at scale, batched [4,65,129] @ [4,129,33]", [{ shape: [4, 65, 129] }, { shape: [4, 129, 33] }], mm, matmulRef, D);
check("matmul at scale, shared b [4,65,129] @ [129,33]", [{ shape: [4, 65, 129] }, { shape: [129, 33] }], mm, matmulRef, D);
check("linear at scale [4,65,129] -> 97 + bias", [{ shape: [4, 65, 129] }, { shape: [129, 97] }, { shape: [97] }],
  ([x, w, b]) => T.linear(x, w, b), linearRef("in_out"), D);
check("gelu at scale [20001]", [{ shape: [20001], std: 2 }], ([x]) => T.gelu(x), geluRef, D);
check("exp at scale [40001]", [{ shape: [40001], range: [-2, 2] }], ([x]) => T.exp(x), unaryRef(Math.exp), D);
check("mul at scale [65,513] * [513]", [{ shape: [65, 513] }, { shape: [513] }], ([a, b]) => T.mul(a, b), binaryRef((a, b) => a * b), D);
check("div at scale [65,513] / [65,513]", [{ shape: [65, 513] }, { shape: [65, 513], minAbs: 0.5 }], ([a, b]) => T.div(a, b),
  binaryRef((a, b) => a / b), D);
check("sum at scale over axis 1 of [65,33,17]", [{ shape: [65, 33, 17] }], ([x]) => T.sum(x, 1), reduceRef("sum", 1), D);
check("mean at scale over axis 0 of [300,301] (column sums)", [{ shape: [300, 301] }], ([x]) => T.mean(x, 0), reduceRef("mean", 0), D);
check("sum at scale over all of [70001]", [{ shape: [70001] }], ([x]) => T.sum(x), reduceRef("sum"), D);
test("embedding at scale: 300 ids into [65,129]", () => {
  const rng = new T.Rng(9);
  const idList = Array.from({ length: 300 }, () => rng.int(65));
  const ids = T.ids(idList, [3, 100]);
  gradcheck("embedding [65,129] by ids[3,100]", [{ shape: [65, 129] }], ([t]) => T.embedding(ids, t), embeddingRef(idList, [3, 100]), D);
});
test("dropout at scale [40001]", () => {
  let mask: Float32Array = new Float32Array(0);
  gradcheck("dropout p=0.2 [40001]", [{ shape: [40001], minAbs: 0.05 }], ([x]) => {
    const y = T.dropout(x, 0.2, true, new T.Rng(4));
    mask = y.toArray() as Float32Array;
    return y;
  }, ([x], [s]) => ({ data: x.map((v, i) => (mask[i] !== 0 ? v / 0.8 : 0)), shape: [...s] }), D);
});
