// The GEMM kernel on its own, against a float64 reference: every transpose, batches with
// broadcast strides, padded leading dimensions, alpha/beta, and the fused extras (a bias row
// added in the epilogue, op(B)'s column sums gathered while B is packed). Shapes are chosen to
// reach every path: small M with tb (per-strip B packing), few row strips (B read in place),
// the shared-panel path with several K blocks and N panels, and partial tiles. Each result must
// lie within (K + 4) * 2^-24 * sum |a*b| of the exact value (plus the bias/beta terms' rounding),
// nothing outside C may be written, and rows must not depend on how many rows share the call.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backend } from "../src/native/index.js";
import { Rng } from "../src/tensor/index.js";

interface Case {
  ta: boolean; tb: boolean; M: number; N: number; K: number; batch: number; alpha: number; beta: number;
  padA: number; padB: number; padC: number; broadcastB: boolean; bias: boolean; colsum: boolean;
}

const rng = new Rng(1234);
const fill = (n: number): Float32Array => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = 2 * rng.uniform() - 1; return a; };

function run(c: Case): void {
  const aRows = c.ta ? c.K : c.M, aCols = c.ta ? c.M : c.K, bRows = c.tb ? c.N : c.K, bCols = c.tb ? c.K : c.N;
  const lda = aCols + c.padA, ldb = bCols + c.padB, ldc = c.N + c.padC;
  const sA = aRows * lda, sB = c.broadcastB ? 0 : bRows * ldb, sC = c.M * ldc;
  const A = fill(c.batch * sA), B = fill(c.broadcastB ? bRows * ldb : c.batch * sB), C0 = fill(c.batch * sC + 7);
  const bias = c.bias ? fill(c.N) : null, sums0 = c.colsum ? fill(c.N) : null;
  const C = C0.slice(), sums = sums0?.slice() ?? null;
  backend.gemm(c.ta, c.tb, c.M, c.N, c.K, c.batch, c.alpha, c.beta, A, lda, sA, B, ldb, sB, C, ldc, sC, bias, sums);
  const what = JSON.stringify(c);
  const a = (b: number, i: number, k: number): number => A[b * sA + (c.ta ? k * lda + i : i * lda + k)];
  const bv = (b: number, k: number, j: number): number => B[b * sB + (c.tb ? j * ldb + k : k * ldb + j)];
  for (let b = 0; b < c.batch; b++) {
    for (let i = 0; i < c.M; i++) {
      for (let j = 0; j < ldc; j++) {
        const at = b * sC + i * ldc + j;
        if (j >= c.N) { assert.equal(C[at], C0[at], `${what}: padding C[${b},${i},${j}] was written`); continue; }
        let exact = 0, mag = 0;
        for (let k = 0; k < c.K; k++) { const p = a(b, i, k) * bv(b, k, j); exact += p; mag += Math.abs(p); }
        const extra = (c.beta === 0 ? 0 : c.beta * C0[at]) + (bias ? bias[j] : 0);
        const want = c.alpha * exact + extra;
        // Each of the epilogue's roundings (alpha * acc, + beta * C, + bias) is relative to its own terms.
        const terms = Math.abs(c.alpha * exact) + Math.abs(c.beta * C0[at]) + (bias ? Math.abs(bias[j]) : 0);
        const tol = (c.K + 4) * 2 ** -24 * Math.abs(c.alpha) * mag + 4 * 2 ** -24 * terms + 1e-30;
        assert.ok(Math.abs(C[at] - want) <= tol, `${what}: C[${b},${i},${j}] = ${C[at]}, expected ${want} (tolerance ${tol})`);
      }
    }
  }
  assert.equal(C[c.batch * sC + 3], C0[c.batch * sC + 3], `${what}: wrote past C`);
  if (sums && sums0) {
    for (let j = 0; j < c.N; j++) {
      let exact = sums0[j], mag = Math.abs(sums0[j]);
      for (let b = 0; b < c.batch; b++) for (let k = 0; k < c.K; k++) { exact += bv(b, k, j); mag += Math.abs(bv(b, k, j)); }
      const tol = (c.K * c.batch + 2) * 2 ** -24 * mag;
      assert.ok(Math.abs(sums[j] - exact) <= tol, `${what}: colsum[${j}] = ${sums[j]}, expected ${exact}`);
    }
  }
}

const base: Case = { ta: false, tb: false, M: 1, N: 1, K: 1, batch: 1, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0, broadcastB: false, bias: false, colsum: false };

const isas = ["avx512", "avx2", "portable"].filter((isa) => backend.isaSupported(isa));

for (const isa of isas) test(`gemm matches float64 on every path, transpose, alpha/beta, padding and batch layout (${isa})`, () => {
  const prev = backend.isa();
  backend.setIsa(isa);
  try {
    sweep();
  } finally {
    backend.setIsa(prev);
  }
});

function sweep(): void {
  const shapes: [number, number, number][] = [
    [1, 1, 1], [3, 17, 33], [14, 32, 5], [17, 65, 3], [33, 40, 70], [31, 64, 600], [90, 33, 17], [130, 70, 1100], [29, 3100, 9],
  ];
  for (const [M, N, K] of shapes) {
    for (const ta of [false, true]) for (const tb of [false, true]) {
      run({ ...base, ta, tb, M, N, K });
      run({ ...base, ta, tb, M, N, K, alpha: 0.5, beta: 1, padA: 3, padB: 1, padC: 2, bias: true, colsum: true });
      run({ ...base, ta, tb, M, N, K, alpha: -1.5, beta: 0.25, colsum: true });
    }
  }
  // Several N panels and several K blocks with a transposed A (its panels kept across N panels).
  run({ ...base, ta: true, M: 31, N: 3100, K: 520, beta: 1, bias: true, colsum: true });
  run({ ...base, M: 9, N: 20, K: 13, batch: 5, broadcastB: true, beta: 0.5, bias: true, colsum: true });
  run({ ...base, tb: true, M: 40, N: 50, K: 30, batch: 3, bias: true, colsum: true });
  run({ ...base, ta: true, M: 6, N: 7, K: 8, batch: 9, bias: true }); // many small matrices: one thread each
  run({ ...base, M: 5, N: 6, K: 0, beta: 0.5, bias: true, colsum: true }); // K = 0: C = beta * C + bias
}

test("gemm rows do not depend on how many rows share the call (bias included)", () => {
  const K = 300, N = 70;
  for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const M = 60;
    const A = fill(M * K), B = fill(K * N), bias = fill(N);
    const full = new Float32Array(M * N);
    backend.gemm(ta, tb, M, N, K, 1, 1, 0, A, ta ? M : K, 0, B, tb ? K : N, 0, full, N, 0, bias);
    for (const [r0, rows] of [[0, 1], [7, 3], [13, 20], [31, 29], [0, 45]]) {
      // op(A) rows [r0, r0+rows) as their own matrix
      const sub = new Float32Array(rows * K);
      for (let i = 0; i < rows; i++) for (let k = 0; k < K; k++) sub[ta ? k * rows + i : i * K + k] = ta ? A[k * M + r0 + i] : A[(r0 + i) * K + k];
      const out = new Float32Array(rows * N);
      backend.gemm(ta, tb, rows, N, K, 1, 1, 0, sub, ta ? rows : K, 0, B, tb ? K : N, 0, out, N, 0, bias);
      for (let i = 0; i < rows * N; i++) {
        assert.equal(out[i], full[r0 * N + i], `ta=${ta} tb=${tb}: row ${r0 + Math.floor(i / N)} differs alone (${rows} rows) and in a batch of ${M}`);
      }
    }
  }
});

test("gemm bias and colsum arguments are checked", () => {
  const a = new Float32Array(6);
  assert.throws(() => backend.gemm(false, false, 2, 3, 1, 1, 1, 0, a, 1, 0, a, 3, 0, a, 3, 0, new Float32Array(2)),
    /gemm: bias has 2 elements; expected N = 3/);
  assert.throws(() => backend.gemm(false, false, 2, 3, 1, 1, 1, 0, a, 1, 0, a, 3, 0, a, 3, 0, null, new Float32Array(1)),
    /gemm: colsum has 1 elements; expected N = 3/);
  assert.throws(() => backend.gemm(false, false, 2, 3, 1, 1, 1, 0, a, 1, 0, a, 3, 0, a, 3, 0, [1, 2, 3] as unknown as Float32Array),
    /bias .* must be a Float32Array/);
});
