/**
 * Float64 references for the tensor ops, written as plain loops over row-major index
 * spaces, independent of src/tensor. gradcheck (./gradcheck.ts) compares the float32
 * ops against them forward, and differentiates them by central differences for the
 * backward. Every reference takes the op's inputs as row-major Float64Arrays plus
 * their shapes and returns the output the same way.
 */

export interface Ref {
  data: Float64Array;
  shape: number[];
}
export type Reference = (xs: Float64Array[], shapes: number[][]) => Ref;

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export function rowMajorStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Visits every index of `shape` in row-major order. */
function forEachIndex(shape: readonly number[], f: (idx: number[], flat: number) => void): void {
  const n = numel(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    f(idx, flat);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

export function unaryRef(f: (x: number) => number): Reference {
  return ([x], [s]) => ({ data: x.map(f), shape: [...s] });
}

/** NumPy broadcasting of two operands. */
export function binaryRef(f: (a: number, b: number) => number): Reference {
  return ([a, b], [sa, sb]) => {
    const n = Math.max(sa.length, sb.length);
    const dim = (s: number[], i: number): number => s[s.length - n + i] ?? 1;
    const shape = Array.from({ length: n }, (_, i) => Math.max(dim(sa, i), dim(sb, i)));
    const stride = (s: number[]): number[] => {
      const own = rowMajorStrides(s);
      return Array.from({ length: n }, (_, i) => {
        const j = i - (n - s.length);
        return j < 0 || s[j] === 1 ? 0 : own[j];
      });
    };
    const ta = stride(sa), tb = stride(sb);
    const out = new Float64Array(numel(shape));
    forEachIndex(shape, (idx, flat) => {
      let ia = 0, ib = 0;
      for (let d = 0; d < n; d++) {
        ia += idx[d] * ta[d];
        ib += idx[d] * tb[d];
      }
      out[flat] = f(a[ia], b[ib]);
    });
    return { data: out, shape };
  };
}

export const gelu64 = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const geluRef = unaryRef(gelu64);
export const sigmoid64 = (x: number): number => 1 / (1 + Math.exp(-x));

/** Splits `shape` around `axis` into [outer, n, inner]. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis], numel(shape.slice(axis + 1))];
}

/** sum / mean / max over one axis (or all when axis is undefined). */
export function reduceRef(kind: "sum" | "mean" | "max", axis?: number, keepdim = false): Reference {
  return ([x], [s]) => {
    const combine = (vals: number[]): number => {
      if (kind === "max") return Math.max(...vals);
      const t = vals.reduce((a, b) => a + b, 0);
      return kind === "mean" ? t / vals.length : t;
    };
    if (axis === undefined) {
      return { data: Float64Array.of(combine([...x])), shape: keepdim ? s.map(() => 1) : [] };
    }
    const ax = axis < 0 ? axis + s.length : axis;
    const [outer, n, inner] = around(s, ax);
    const out = new Float64Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) {
        const vals: number[] = [];
        for (let i = 0; i < n; i++) vals.push(x[(o * n + i) * inner + j]);
        out[o * inner + j] = combine(vals);
      }
    }
    const shape = [...s];
    if (keepdim) shape[ax] = 1;
    else shape.splice(ax, 1);
    return { data: out, shape };
  };
}

export const softmaxRef: Reference = ([x], [s]) => {
  const n = s[s.length - 1];
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, x[r * n + i]);
    let z = 0;
    for (let i = 0; i < n; i++) z += Math.exp(x[r * n + i] - m);
    for (let i = 0; i < n; i++) out[r * n + i] = Math.exp(x[r * n + i] - m) / z;
  }
  return { data: out, shape: [...s] };
};

export function layerNormRef(eps = 1e-5): Reference {
  return ([x, w, b], [s]) => {
    const C = s[s.length - 1];
    const out = new Float64Array(x.length);
    for (let r = 0; r < x.length / C; r++) {
      let mean = 0;
      for (let i = 0; i < C; i++) mean += x[r * C + i];
      mean /= C;
      let v = 0;
      for (let i = 0; i < C; i++) v += (x[r * C + i] - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / C + eps);
      for (let i = 0; i < C; i++) out[r * C + i] = (x[r * C + i] - mean) * rstd * w[i] + b[i];
    }
    return { data: out, shape: [...s] };
  };
}

/** table [V, C] gathered by `ids` (shape idsShape). */
export function embeddingRef(ids: readonly number[], idsShape: number[]): Reference {
  return ([table], [[, C]]) => {
    const out = new Float64Array(ids.length * C);
    ids.forEach((id, i) => out.set(table.subarray(id * C, (id + 1) * C), i * C));
    return { data: out, shape: [...idsShape, C] };
  };
}

/** Mean cross-entropy of logits [..., V] against targets; targets < 0 are ignored. */
export function crossEntropyRef(targets: readonly number[]): Reference {
  return ([x], [s]) => {
    const V = s[s.length - 1];
    let total = 0, count = 0;
    targets.forEach((t, r) => {
      if (t < 0) return;
      let m = -Infinity;
      for (let i = 0; i < V; i++) m = Math.max(m, x[r * V + i]);
      let z = 0;
      for (let i = 0; i < V; i++) z += Math.exp(x[r * V + i] - m);
      total += m + Math.log(z) - x[r * V + t];
      count++;
    });
    return { data: Float64Array.of(total / count), shape: [] };
  };
}

/** Plain masked-softmax causal attention on qkv [B, T, 3C] -> [B, T, C]. */
export function attentionRef(nHead: number): Reference {
  return ([x], [[B, T, C3]]) => {
    const C = C3 / 3, HS = C / nHead, scale = 1 / Math.sqrt(HS);
    const out = new Float64Array(B * T * C);
    const at = (b: number, t: number, part: number, h: number, d: number): number =>
      x[(b * T + t) * C3 + part * C + h * HS + d];
    const p = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < nHead; h++) {
        for (let t = 0; t < T; t++) {
          // scores s_j = q_t . k_j * scale, masked to -inf for j > t
          p.fill(-Infinity);
          for (let j = 0; j <= t; j++) {
            let s = 0;
            for (let d = 0; d < HS; d++) s += at(b, t, 0, h, d) * at(b, j, 1, h, d);
            p[j] = s * scale;
          }
          let m = -Infinity;
          for (let j = 0; j < T; j++) m = Math.max(m, p[j]);
          let z = 0;
          for (let j = 0; j < T; j++) z += p[j] = Math.exp(p[j] - m); // exp(-inf) = 0: the future gets no weight
          for (let d = 0; d < HS; d++) {
            let o = 0;
            for (let j = 0; j < T; j++) o += (p[j] / z) * at(b, j, 2, h, d);
            out[(b * T + t) * C + h * HS + d] = o;
          }
        }
      }
    }
    return { data: out, shape: [B, T, C] };
  };
}

/** Plain softmax attention on separate q, k, v [B, T, C] -> [B, T, C]; causal masks keys j > t. */
export function mhaRef(nHead: number, causal: boolean): Reference {
  return ([q, k, v], [[B, T, C]]) => {
    const HS = C / nHead, scale = 1 / Math.sqrt(HS);
    const out = new Float64Array(B * T * C);
    const at = (x: Float64Array, b: number, t: number, h: number, d: number): number => x[(b * T + t) * C + h * HS + d];
    const p = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < nHead; h++) {
        for (let t = 0; t < T; t++) {
          const keys = causal ? t + 1 : T;
          let m = -Infinity;
          for (let j = 0; j < keys; j++) {
            let s = 0;
            for (let d = 0; d < HS; d++) s += at(q, b, t, h, d) * at(k, b, j, h, d);
            p[j] = s * scale;
            m = Math.max(m, p[j]);
          }
          let z = 0;
          for (let j = 0; j < keys; j++) z += p[j] = Math.exp(p[j] - m);
          for (let d = 0; d < HS; d++) {
            let o = 0;
            for (let j = 0; j < keys; j++) o += (p[j] / z) * at(v, b, j, h, d);
            out[(b * T + t) * C + h * HS + d] = o;
          }
        }
      }
    }
    return { data: out, shape: [B, T, C] };
  };
}

/** a [..., M, K] @ b [..., K, N] (b may be 2-D, shared by every batch). */
export const matmulRef: Reference = ([a, b], [sa, sb]) => {
  const M = sa[sa.length - 2], K = sa[sa.length - 1], N = sb[sb.length - 1];
  const batchShape = sa.slice(0, -2);
  const batch = numel(batchShape);
  const shared = sb.length === 2;
  const out = new Float64Array(batch * M * N);
  for (let p = 0; p < batch; p++) {
    const ao = p * M * K, bo = shared ? 0 : p * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[ao + i * K + k] * b[bo + k * N + j];
        out[(p * M + i) * N + j] = s;
      }
    }
  }
  return { data: out, shape: [...batchShape, M, N] };
};

/** x [..., in] with weight [in, out] ("in_out") or [out, in] ("out_in") and optional bias [out]. */
export function linearRef(layout: "in_out" | "out_in"): Reference {
  return ([x, w, bias], [sx, sw]) => {
    const inF = sx[sx.length - 1];
    const outF = layout === "in_out" ? sw[1] : sw[0];
    const rows = x.length / inF;
    const out = new Float64Array(rows * outF);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < outF; o++) {
        let s = bias === undefined ? 0 : bias[o];
        for (let i = 0; i < inF; i++) s += x[r * inF + i] * (layout === "in_out" ? w[i * outF + o] : w[o * inF + i]);
        out[r * outF + o] = s;
      }
    }
    return { data: out, shape: [...sx.slice(0, -1), outF] };
  };
}

export function reshapeRef(target: number[]): Reference {
  return ([x], [s]) => {
    const known = numel(target.filter((d) => d !== -1));
    return { data: x.slice(), shape: target.map((d) => (d === -1 ? numel(s) / known : d)) };
  };
}

export function permuteRef(dims: number[]): Reference {
  return ([x], [s]) => {
    const axes = dims.map((d) => (d < 0 ? d + s.length : d));
    const shape = axes.map((a) => s[a]);
    const st = rowMajorStrides(s);
    const out = new Float64Array(x.length);
    forEachIndex(shape, (idx, flat) => {
      let o = 0;
      for (let d = 0; d < idx.length; d++) o += idx[d] * st[axes[d]];
      out[flat] = x[o];
    });
    return { data: out, shape };
  };
}

export function transposeRef(i: number, j: number): Reference {
  return (xs, shapes) => {
    const n = shapes[0].length;
    const dims = Array.from({ length: n }, (_, k) => k);
    const a = i < 0 ? i + n : i, b = j < 0 ? j + n : j;
    [dims[a], dims[b]] = [dims[b], dims[a]];
    return permuteRef(dims)(xs, shapes);
  };
}

export function sliceRef(axis: number, start: number, end: number): Reference {
  return ([x], [s]) => {
    const ax = axis < 0 ? axis + s.length : axis;
    const [outer, n, inner] = around(s, ax);
    const m = end - start;
    const out = new Float64Array(outer * m * inner);
    for (let o = 0; o < outer; o++) out.set(x.subarray((o * n + start) * inner, (o * n + end) * inner), o * m * inner);
    const shape = [...s];
    shape[ax] = m;
    return { data: out, shape };
  };
}

export function catRef(axis: number): Reference {
  return (xs, shapes) => {
    const ax = axis < 0 ? axis + shapes[0].length : axis;
    const shape = [...shapes[0]];
    shape[ax] = shapes.reduce((t, s) => t + s[ax], 0);
    const [outer, , inner] = around(shape, ax);
    const out = new Float64Array(numel(shape));
    let at = 0;
    xs.forEach((x, k) => {
      const chunk = shapes[k][ax] * inner;
      for (let o = 0; o < outer; o++) out.set(x.subarray(o * chunk, (o + 1) * chunk), o * shape[ax] * inner + at);
      at += chunk;
    });
    return { data: out, shape };
  };
}
