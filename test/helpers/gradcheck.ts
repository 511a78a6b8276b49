/**
 * gradcheck: one helper that tests an op forward and backward (tinygrad's
 * helper_test_op, ggml's gradcheck).
 *
 *     gradcheck("mul [3,17]*[17]", [{ shape: [3, 17] }, { shape: [17], view: { slice: [0, 2, 1] } }],
 *       ([a, b]) => T.mul(a, b), binaryRef((a, b) => a * b));
 *
 * For each input spec it makes a float32 leaf (seeded: a failure replays exactly) and
 * hands the op either the leaf or a non-contiguous view of it (transpose, permute,
 * slice), so that the gradient is checked on the leaf, through the view. Then it
 *  (a) compares the op's output with the float64 reference on the same values;
 *  (b) draws a random upstream gradient G and backpropagates it with out.backward(G);
 *  (c) compares every leaf's .grad with central differences of sum(G * reference(x)),
 *      computed in float64.
 */
import assert from "node:assert/strict";
import { Rng, Tensor, permute, slice, tensor, transpose } from "../../src/tensor/index.js";
import { type Ref, type Reference, numel, rowMajorStrides } from "./reference.js";

/** How the op's input is made from its leaf; the leaf's shape is derived from the input's. */
export type View =
  | { transpose: [number, number] }
  | { permute: number[] } // input = permute(leaf, dims)
  | { slice: [axis: number, before: number, after: number] }; // input = leaf[before : size - after] on axis

export interface InputSpec {
  /** The shape the op sees. */
  shape: number[];
  /** Uniform in [lo, hi); default: normal with standard deviation `std` (1). */
  range?: [number, number];
  std?: number;
  /** Redraw values with |x| < minAbs (keeps relu/dropout inputs off their kink, divisors off 0). */
  minAbs?: number;
  /** Views applied in order to the leaf; the op gets the result. */
  view?: View | View[];
  /** false: a constant input (no .grad expected). */
  grad?: boolean;
}

export interface GradcheckOptions {
  seed?: number;
  /** false: forward check only. */
  backward?: boolean;
  /** Forward: |ours - ref| <= fwdAtol * max(1, max|ref|) + fwdRtol * |ref|. */
  fwdAtol?: number;
  fwdRtol?: number;
  /** Backward: |analytic - numeric| <= gradAtol * max(1, max|numeric|) + gradRtol * |numeric|. */
  gradAtol?: number;
  gradRtol?: number;
  /**
   * For inputs too large for one difference per element: check the gradient along this many
   * random directions V instead, sum(grad * V) against (f(x + hV) - f(x - hV)) / 2h.
   */
  directions?: number;
}

// Tolerances. The numeric gradient is float64 central differences with h = 1e-6 * max(1, |x|):
// truncation error O(h^2 f''') ~ 1e-12 and cancellation error ~ 1e-16 * sum|G*ref| / h ~ 1e-7
// at these sizes, so it is exact for our purposes and the error budget belongs to the
// float32 analytic side: each gradient element is a sum of up to a few hundred float32
// products (eps 6e-8, error growing ~ sqrt(terms)), plus float32 exp/log/tanh and the
// kernels' polynomial exp (~1 ulp); measured, the worst is ~1e-6 of the gradient's scale.
// 1e-4 of max(1, max|numeric|) keeps a ~100x margin over that, yet a wrong formula, stride
// or broadcast sum, a dropped term or a mask mismatch errs by O(1e-2..1) of the scale.
// The rtol term covers single large elements (exp, 1/x). The forward compares float32
// with float64 the same way, with a tighter atol (no chain of products behind it).
const DEFAULTS = { fwdAtol: 2e-5, fwdRtol: 1e-4, gradAtol: 1e-4, gradRtol: 1e-3 };

const verbose = process.env.GRADCHECK_VERBOSE === "1";

function seedOf(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

const views = (spec: InputSpec): View[] => (spec.view === undefined ? [] : Array.isArray(spec.view) ? spec.view : [spec.view]);
const norm = (axis: number, ndim: number): number => (axis < 0 ? axis + ndim : axis);

/** The leaf shape that, after the spec's views, gives spec.shape. */
export function leafShapeOf(spec: InputSpec): number[] {
  let shape = [...spec.shape];
  for (const v of [...views(spec)].reverse()) {
    if ("transpose" in v) {
      const [i, j] = v.transpose.map((a) => norm(a, shape.length));
      [shape[i], shape[j]] = [shape[j], shape[i]];
    } else if ("permute" in v) {
      const before = new Array<number>(shape.length);
      v.permute.forEach((a, k) => (before[norm(a, shape.length)] = shape[k]));
      shape = before;
    } else {
      const [axis, lo, hi] = v.slice;
      shape[norm(axis, shape.length)] += lo + hi;
    }
  }
  return shape;
}

/** For each element of the view (row-major), its index in the leaf; computed independently of src/tensor. */
function viewIndex(leafShape: number[], vs: View[]): Int32Array {
  let shape = [...leafShape];
  let strides = rowMajorStrides(leafShape);
  let offset = 0;
  for (const v of vs) {
    if ("transpose" in v) {
      const [i, j] = v.transpose.map((a) => norm(a, shape.length));
      [shape[i], shape[j]] = [shape[j], shape[i]];
      [strides[i], strides[j]] = [strides[j], strides[i]];
    } else if ("permute" in v) {
      const axes = v.permute.map((a) => norm(a, shape.length));
      [shape, strides] = [axes.map((a) => shape[a]), axes.map((a) => strides[a])];
    } else {
      const [axis, lo, hi] = v.slice;
      const ax = norm(axis, shape.length);
      offset += lo * strides[ax];
      shape[ax] -= lo + hi;
    }
  }
  const n = numel(shape);
  const map = new Int32Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let f = 0; f < n; f++) {
    let o = offset;
    for (let d = 0; d < shape.length; d++) o += idx[d] * strides[d];
    map[f] = o;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return map;
}

function applyViews(leaf: Tensor, vs: View[]): Tensor {
  let t = leaf;
  for (const v of vs) {
    if ("transpose" in v) t = transpose(t, v.transpose[0], v.transpose[1]);
    else if ("permute" in v) t = permute(t, v.permute);
    else {
      const [axis, lo, hi] = v.slice;
      t = slice(t, axis, lo, t.shape[norm(axis, t.ndim)] - hi);
    }
  }
  return t;
}

function draw(spec: InputSpec, n: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v: number;
    do {
      v = spec.range ? spec.range[0] + (spec.range[1] - spec.range[0]) * rng.uniform() : rng.normal() * (spec.std ?? 1);
    } while (spec.minAbs !== undefined && Math.abs(v) < spec.minAbs);
    out[i] = v;
  }
  return out;
}

/** Fails with the worst element unless |got - want| <= atol * max(1, max|want|) + rtol * |want| everywhere. */
export function assertClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number): number {
  assert.equal(got.length, want.length, `${what}: ${got.length} elements, expected ${want.length}`);
  let scale = 1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const diff = Math.abs(got[i] - want[i]);
    const ratio = diff === 0 ? 0 : diff / (atol * scale + rtol * Math.abs(want[i]));
    if (!(ratio <= worst)) {
      worst = ratio;
      at = i;
    }
  }
  if (!(worst <= 1)) {
    assert.fail(`${what}: element ${at} is ${got[at]}, expected ${want[at]} (|diff| ${Math.abs(got[at] - want[at]).toExponential(2)}; ` +
      `atol ${atol} x scale ${scale.toPrecision(3)}, rtol ${rtol})`);
  }
  return worst;
}

export interface GradcheckResult {
  /** The op's output, read before the backward. */
  out: Float32Array;
  shape: number[];
}

export function gradcheck(
  name: string,
  specs: InputSpec[],
  op: (xs: Tensor[]) => Tensor,
  reference: Reference,
  options: GradcheckOptions = {},
): GradcheckResult {
  const o = { ...DEFAULTS, ...options };
  const rng = new Rng(options.seed ?? seedOf(name));
  const leaves: Tensor[] = [], inputs: Tensor[] = [], x64: Float64Array[] = [], maps: Int32Array[] = [];
  for (const spec of specs) {
    const leafShape = leafShapeOf(spec);
    const values = draw(spec, numel(leafShape), rng);
    const leaf = tensor(values, leafShape);
    leaf.requiresGrad = spec.grad !== false;
    leaves.push(leaf);
    inputs.push(applyViews(leaf, views(spec)));
    x64.push(Float64Array.from(values));
    maps.push(viewIndex(leafShape, views(spec)));
  }
  const shapes = specs.map((s) => [...s.shape]);
  // The reference's inputs, gathered once through the views; a perturbation of leaf element e
  // is written to every input position that reads e.
  const gathered = maps.map((m, i) => Float64Array.from(m, (j) => x64[i][j]));
  const readers = maps.map((m, i) => {
    const r: number[][] = Array.from({ length: x64[i].length }, () => []);
    m.forEach((leafIndex, pos) => r[leafIndex].push(pos));
    return r;
  });
  const setLeaf = (i: number, e: number, v: number): number => {
    x64[i][e] = v;
    for (const pos of readers[i][e]) gathered[i][pos] = v;
    return v;
  };
  const evaluate = (): Ref => reference(gathered, shapes);
  inputs.forEach((t, i) => assert.deepEqual(t.shape, specs[i].shape, `${name}: input ${i} view has shape [${t.shape}]`));
  const out = op(inputs);
  const want = evaluate(); // after the op: a reference may read state the op left (dropout's mask)
  assert.deepEqual(out.shape, want.shape, `${name}: output shape [${out.shape}], expected [${want.shape}]`);
  const got = out.toArray() as Float32Array;
  const fwd = assertClose(`${name}: forward`, got, want.data, o.fwdAtol, o.fwdRtol);
  const result = { out: got, shape: [...out.shape] };
  if (options.backward === false) {
    for (const t of [out, ...inputs, ...leaves]) t.release();
    return result;
  }

  assert.ok(out.requiresGrad, `${name}: output does not require grad (nothing was recorded)`);
  const G = draw({ shape: out.shape }, out.size, rng);
  const g = tensor(G, [...out.shape]);
  out.backward(g);

  const objective = (): number => {
    const r = evaluate().data;
    let s = 0;
    for (let i = 0; i < r.length; i++) s += G[i] * r[i];
    return s;
  };
  let worstGrad = 0;
  const grads = leaves.map((leaf, li) => {
    if (specs[li].grad === false) {
      assert.equal(leaf.grad, null, `${name}: constant input ${li} received a gradient`);
      return null;
    }
    assert.ok(leaf.grad !== null, `${name}: input ${li} has no .grad after backward`);
    assert.deepEqual(leaf.grad.shape, leaf.shape, `${name}: input ${li} .grad has shape [${leaf.grad.shape}]`);
    return leaf.grad.toArray();
  });
  if (options.directions !== undefined) {
    // A directional derivative checks every element at once. Its scale is the L2 norm of
    // (grad_i V_i): the float32 errors (random in sign) sum to a ~1e-6 fraction of it, while a
    // block of k elements off by r shifts it by ~ r sqrt(k / n), e.g. 1% of 1000 in 20,000: 2e-3.
    const h = 1e-6;
    for (let d = 0; d < options.directions; d++) {
      const V = grads.map((gr) => (gr === null ? null : draw({ shape: [] }, gr.length, rng)));
      const x0 = x64.map((x) => x.slice());
      let analytic = 0, scale = 0;
      grads.forEach((gr, li) => gr?.forEach((v, e) => {
        analytic += v * V[li]![e];
        scale += (v * V[li]![e]) ** 2;
      }));
      scale = Math.sqrt(scale);
      const shift = (t: number): number => {
        V.forEach((v, li) => v?.forEach((ve, e) => setLeaf(li, e, x0[li][e] + t * ve)));
        return objective();
      };
      const numeric = (shift(h) - shift(-h)) / (2 * h);
      shift(0);
      const err = Math.abs(analytic - numeric) / (o.gradAtol * Math.max(scale, 1e-30));
      worstGrad = Math.max(worstGrad, err);
      assert.ok(err <= 1, `${name}: directional derivative ${d}: analytic ${analytic}, numeric ${numeric} ` +
        `(|diff| ${Math.abs(analytic - numeric).toExponential(2)} > ${o.gradAtol} x |grad * V| ${scale.toPrecision(3)})`);
    }
  }
  leaves.forEach((leaf, li) => {
    const analytic = grads[li];
    if (analytic === null || options.directions !== undefined) return;
    const x = x64[li];
    const numeric = new Float64Array(x.length);
    for (let e = 0; e < x.length; e++) {
      const v = x[e];
      const h = 1e-6 * Math.max(1, Math.abs(v));
      const hi = setLeaf(li, e, v + h);
      const fp = objective();
      const lo = setLeaf(li, e, v - h);
      const fm = objective();
      setLeaf(li, e, v);
      numeric[e] = (fp - fm) / (hi - lo);
    }
    worstGrad = Math.max(worstGrad, assertClose(`${name}: gradient of input ${li} [${leaf.shape}]`, analytic, numeric, o.gradAtol, o.gradRtol));
  });
  if (verbose) console.log(`gradcheck ${name}: worst error / tolerance: forward ${fwd.toFixed(3)}, gradient ${worstGrad.toFixed(3)}`);
  for (const t of [out, g, ...inputs, ...leaves]) t.release();
  return result;
}
