/**
 * Every kernel of the binding run on fixed, seeded inputs, for comparing the ISA paths
 * and thread counts with each other (test/isa.test.ts; also run in a child process with
 * PLINTH_THREADS / PLINTH_ISA set). Sizes are odd, and each kernel also gets a case large
 * enough to take its multi-threaded path.
 */
import { backend, BinaryOp, ReduceOp, UnaryOp } from "../../src/native/index.js";
import { Rng } from "../../src/tensor/rng.js";

export type Outputs = Record<string, Float32Array>;
export interface KernelCase {
  name: string;
  run: () => Outputs;
  /** Float64 expectations for some outputs (checked on every path, not only relative to each other). */
  reference?: () => Record<string, Float64Array>;
}

const normal = (rng: Rng, n: number, std = 1): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * std);
const uniform = (rng: Rng, n: number, lo: number, hi: number): Float32Array =>
  Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform());

function gemmCase(ta: boolean, tb: boolean, M: number, N: number, K: number, batch: number): KernelCase {
  // Operands stored with padded leading dimensions and batch strides, C accumulated with beta.
  const lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
  const sA = (ta ? K : M) * lda + 5, sB = (tb ? N : K) * ldb, sC = M * ldc + 1;
  const inputs = () => {
    const rng = new Rng(M * 1000 + N * 10 + K + (ta ? 1 : 0) + (tb ? 2 : 0));
    return { A: normal(rng, batch * sA), B: normal(rng, batch * sB), C: normal(rng, batch * sC) };
  };
  const alpha = 0.75, beta = 0.5;
  return {
    name: `gemm ta=${ta} tb=${tb} ${M}x${N}x${K} batch ${batch}`,
    run: () => {
      const { A, B, C } = inputs();
      backend.gemm(ta, tb, M, N, K, batch, alpha, beta, A, lda, sA, B, ldb, sB, C, ldc, sC);
      return { C };
    },
    reference: () => {
      const { A, B, C } = inputs();
      const out = Float64Array.from(C);
      for (let p = 0; p < batch; p++) {
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let s = 0;
            for (let k = 0; k < K; k++) {
              const a = ta ? A[p * sA + k * lda + i] : A[p * sA + i * lda + k];
              const b = tb ? B[p * sB + j * ldb + k] : B[p * sB + k * ldb + j];
              s += a * b;
            }
            const at = p * sC + i * ldc + j;
            out[at] = alpha * s + beta * C[at];
          }
        }
      }
      return { C: out };
    },
  };
}

const gemmCases: KernelCase[] = [];
for (const [M, N, K, batch] of [[33, 17, 65, 1], [1, 65, 3, 2], [65, 1, 17, 1], [17, 33, 1, 3], [3, 3, 3, 1], [129, 97, 300, 1], [17, 65, 33, 8]]) {
  for (const ta of [false, true]) for (const tb of [false, true]) gemmCases.push(gemmCase(ta, tb, M, N, K, batch));
}

function binaryCase(shape: number[], bShape: number[]): KernelCase {
  return {
    name: `binary [${shape}] & [${bShape}]`,
    run: () => {
      const out: Outputs = {};
      const n = shape.reduce((a, b) => a * b, 1);
      // b broadcast over the leading dims of `shape`.
      const sa = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
      const sb = shape.map((d, i) => {
        const j = i - (shape.length - bShape.length);
        return j < 0 || bShape[j] === 1 ? 0 : bShape.slice(j + 1).reduce((a, b) => a * b, 1);
      });
      const nb = bShape.reduce((a, b) => a * b, 1);
      for (const [name, op] of Object.entries(BinaryOp)) {
        const rng = new Rng(op + 1);
        const a = normal(rng, n), b = uniform(rng, nb, 0.5, 2), g = normal(rng, n);
        const y = new Float32Array(n);
        backend.binaryForward(op, shape, sa, sb, a, b, y);
        const ga = normal(rng, n), gb = normal(rng, nb);
        backend.binaryBackward(op, shape, sa, sb, a, b, g, ga, gb);
        Object.assign(out, { [`${name} y`]: y, [`${name} ga`]: ga, [`${name} gb`]: gb });
      }
      return out;
    },
  };
}

function unaryCase(n: number): KernelCase {
  return {
    name: `unary n=${n}`,
    run: () => {
      const out: Outputs = {};
      for (const [name, op] of Object.entries(UnaryOp)) {
        const rng = new Rng(op + 7);
        const x = name === "log" || name === "sqrt" ? uniform(rng, n, 0.1, 3) : normal(rng, n, 2);
        const y = new Float32Array(n), gy = normal(rng, n), gx = normal(rng, n), gx2 = gx.slice();
        backend.unaryForward(op, n, x, y, 0.625);
        backend.unaryBackward(op, n, x, y, gy, gx, 0.625, false);
        backend.unaryBackward(op, n, x, y, gy, gx2, 0.625, true);
        Object.assign(out, { [`${name} y`]: y, [`${name} gx`]: gx, [`${name} gx acc`]: gx2 });
      }
      return out;
    },
  };
}

function reduceCase(outer: number, n: number, inner: number): KernelCase {
  return {
    name: `reduce [${outer},${n},${inner}]`,
    run: () => {
      const out: Outputs = {};
      const rng = new Rng(outer + n + inner);
      const x = normal(rng, outer * n * inner);
      for (const [name, op] of Object.entries(ReduceOp)) {
        const y = new Float32Array(outer * inner);
        backend.reduceForward(op, outer, n, inner, x, y);
        out[`${name} y`] = y;
        if (op !== ReduceOp.max) {
          const g = normal(rng, outer * inner), gx = normal(rng, outer * n * inner), gx2 = gx.slice();
          backend.reduceBackward(op, outer, n, inner, g, gx, false);
          backend.reduceBackward(op, outer, n, inner, g, gx2, true);
          Object.assign(out, { [`${name} gx`]: gx, [`${name} gx acc`]: gx2 });
        }
      }
      out["sumSquares"] = Float32Array.of(backend.sumSquares(x.length, x));
      return out;
    },
  };
}

function rowsCase(kind: "softmax" | "layernorm" | "crossEntropy", rows: number, n: number): KernelCase {
  return {
    name: `${kind} ${rows}x${n}`,
    run: (): Outputs => {
      const rng = new Rng(rows * 31 + n);
      const x = normal(rng, rows * n, 3), gy = normal(rng, rows * n);
      if (kind === "softmax") {
        const y = new Float32Array(rows * n), gx = new Float32Array(rows * n), gx2 = normal(rng, rows * n);
        backend.softmaxForward(rows, n, x, y);
        backend.softmaxBackward(rows, n, y, gy, gx, false);
        backend.softmaxBackward(rows, n, y, gy, gx2, true);
        return { y, gx, "gx acc": gx2 };
      }
      if (kind === "layernorm") {
        const w = uniform(rng, n, 0.5, 1.5), b = normal(rng, n);
        const y = new Float32Array(rows * n), mean = new Float32Array(rows), rstd = new Float32Array(rows);
        backend.layernormForward(rows, n, x, w, b, 1e-5, y, mean, rstd);
        const gx = normal(rng, rows * n), gw = normal(rng, n), gb = normal(rng, n);
        backend.layernormBackward(rows, n, x, w, mean, rstd, gy, gx, gw, gb, true);
        return { y, mean, rstd, gx, gw, gb };
      }
      const targets = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 3 ? -1 : rng.int(n)));
      const lse = new Float32Array(rows), losses = new Float32Array(rows), g = new Float32Array(rows * n);
      const total = backend.crossEntropyForward(rows, n, x, targets, lse, losses);
      backend.crossEntropyBackward(rows, n, x, targets, lse, 1 / rows, g);
      return { total: Float32Array.of(total), lse, losses, g };
    },
  };
}

function attentionCase(B: number, Tq: number, Tk: number, NH: number, HS: number, causal: boolean): KernelCase {
  return {
    name: `attention B=${B} Tq=${Tq} Tk=${Tk} NH=${NH} HS=${HS} causal=${causal}`,
    run: () => {
      const rng = new Rng(B + Tq * 3 + Tk * 5 + NH * 7 + HS * 11 + (causal ? 1 : 0));
      const C = NH * HS;
      // q, k, v interleaved in one fused [B, T, 3C] buffer (as c_attn writes them); o [B, Tq, C].
      const qkv = normal(rng, B * Tk * 3 * C), q = normal(rng, B * Tq * C);
      const k = qkv.subarray(C), v = qkv.subarray(2 * C);
      const o = new Float32Array(B * Tq * C), lse = new Float32Array(B * NH * Tq);
      const scale = 1 / Math.sqrt(HS);
      const dims = [B, Tq, Tk, NH, HS];
      backend.attentionForward(dims, scale, causal, q, Tq * C, C, k, Tk * 3 * C, 3 * C, v, Tk * 3 * C, 3 * C, o, Tq * C, C, lse);
      const go = normal(rng, B * Tq * C), gq = new Float32Array(B * Tq * C), gkv = new Float32Array(B * Tk * 3 * C);
      backend.attentionBackward(dims, scale, causal, q, Tq * C, C, k, Tk * 3 * C, 3 * C, v, Tk * 3 * C, 3 * C, o, Tq * C, C, lse,
        go, gq, gkv.subarray(C), gkv.subarray(2 * C), false);
      return { o, lse, gq, gkv };
    },
  };
}

function elementsCase(n: number): KernelCase {
  return {
    name: `gelu, adamw, dropout, axpy, fill, copy n=${n}`,
    run: () => {
      const rng = new Rng(n);
      const x = normal(rng, n, 2), gy = normal(rng, n);
      const y = new Float32Array(n), gx = new Float32Array(n), gx2 = normal(rng, n);
      backend.geluForward(n, x, y);
      backend.geluBackward(n, x, gy, gx, false);
      backend.geluBackward(n, x, gy, gx2, true);
      const p = normal(rng, n), m = normal(rng, n, 0.1), v = uniform(rng, n, 0, 0.1);
      backend.adamwStep(n, p, gy, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.1, 1 - 0.9 ** 3, 1 - 0.999 ** 3);
      const d = new Float32Array(n), dg = new Float32Array(n), dg2 = normal(rng, n);
      backend.dropoutForward(n, x, d, 0.3, 123456789);
      backend.dropoutBackward(n, gy, dg, 0.3, 123456789, false);
      backend.dropoutBackward(n, gy, dg2, 0.3, 123456789, true);
      const ax = normal(rng, n);
      backend.axpy(n, -1.5, x, ax);
      const f = new Float32Array(n + 1);
      backend.fill(n, f, 2.5);
      const cols = 7, rows = Math.floor(n / cols), t = new Float32Array(rows * cols);
      backend.copyStrided([cols, rows], [1, cols], x, t); // a transpose
      return { "gelu y": y, "gelu gx": gx, "gelu gx acc": gx2, "adamw p": p, "adamw m": m, "adamw v": v, "dropout y": d,
        "dropout gx": dg, "dropout gx acc": dg2, axpy: ax, fill: f, copyStrided: t };
    },
  };
}

function embeddingCase(n: number, C: number, V: number): KernelCase {
  return {
    name: `embedding n=${n} C=${C} V=${V}`,
    run: () => {
      const rng = new Rng(n + C + V);
      const ids = Int32Array.from({ length: n }, () => rng.int(V));
      const table = normal(rng, V * C), out = new Float32Array(n * C), g = normal(rng, n * C), gt = normal(rng, V * C);
      backend.embeddingForward(n, C, V, ids, table, out);
      backend.embeddingBackward(n, C, V, ids, g, gt);
      return { out, gt };
    },
  };
}

export const kernelCases: KernelCase[] = [
  ...gemmCases,
  binaryCase([3, 17, 33], [17, 1]),
  binaryCase([65, 3, 33], [33]),
  binaryCase([65, 513], [65, 1]),
  unaryCase(1001),
  unaryCase(40001),
  reduceCase(3, 17, 5),
  reduceCase(1, 70001, 1),
  reduceCase(1, 300, 301),
  reduceCase(65, 33, 17),
  rowsCase("softmax", 7, 65),
  rowsCase("softmax", 33, 1001),
  rowsCase("layernorm", 5, 33),
  rowsCase("layernorm", 65, 513),
  rowsCase("crossEntropy", 17, 65),
  rowsCase("crossEntropy", 33, 1001),
  attentionCase(2, 17, 17, 3, 4, true),
  attentionCase(1, 5, 9, 2, 8, true),
  attentionCase(2, 1, 1, 1, 3, true),
  attentionCase(2, 65, 65, 2, 16, false),
  attentionCase(1, 130, 130, 4, 32, true),
  elementsCase(1001),
  elementsCase(40001),
  embeddingCase(17, 33, 7),
  embeddingCase(300, 129, 65),
];

/** Base64 of each output, for sending the results of a child process back. */
export function encode(all: Record<string, Outputs>): string {
  const o: Record<string, Record<string, string>> = {};
  for (const [c, outs] of Object.entries(all)) {
    o[c] = Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64")]));
  }
  return JSON.stringify(o);
}

export function decode(text: string): Record<string, Outputs> {
  const o = JSON.parse(text) as Record<string, Record<string, string>>;
  const all: Record<string, Outputs> = {};
  for (const [c, outs] of Object.entries(o)) {
    all[c] = Object.fromEntries(Object.entries(outs).map(([k, v]) => {
      const b = Buffer.from(v, "base64");
      return [k, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))];
    }));
  }
  return all;
}

export function runAll(): Record<string, Outputs> {
  return Object.fromEntries(kernelCases.map((c) => [c.name, c.run()]));
}
