// Low-precision kernels (native/src/lowp.h) on every path this CPU has (avx512 with the
// bf16/VNNI instructions, avx512, avx2 and portable on float32 FMAs and int32 multiplies),
// each against a float64 reference: bf16 GEMM (every transpose, odd K, strip and block edges,
// batches, alpha/beta/bias), packed bf16 and int8 linears (both weight layouts, row and column
// edges, strided rows), the rounding mode, the int8 error bound, the probes, and the checks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backend } from "../src/native/index.js";
import { bf16, expectedName, lcg, onPath, pathName, PATHS, type Path } from "./helpers/lowp_paths.js";

const { rand, randn } = lcg(12345);

test(`paths here: ${PATHS.map(pathName).join(", ")}; bf16/VNNI instructions ${backend.lowpNativeSupported() ? "present" : "absent"}, AMX ${backend.lowpAmxSupported() ? "present" : "absent"}`, () => {
  assert.equal(backend.lowpPath(), expectedName(PATHS[0]), "the widest path is the default");
  for (const p of PATHS) assert.equal(pathName(p), expectedName(p));
  if (backend.lowpAmxSupported()) {
    assert.equal(backend.setLowpAmx(false), "avx512_bf16");
    assert.equal(backend.setLowpAmx(true), "amx");
  }
  if (backend.lowpNativeSupported()) {
    assert.equal(backend.setLowpNative(false), "avx512");
    assert.equal(backend.setLowpNative(true), backend.lowpAmxSupported() ? "amx" : "avx512_bf16");
  }
});

interface GemmCase { ta: boolean; tb: boolean; M: number; N: number; K: number; batch?: number; alpha?: number; beta?: number; bias?: boolean; pad?: number }

function runGemmCase(c: GemmCase, p: Path): void {
  const { ta, tb, M, N, K } = c, batch = c.batch ?? 1, alpha = c.alpha ?? 1, beta = c.beta ?? 0, pad = c.pad ?? 0;
  const lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const sA = (ta ? K : M) * lda, sB = (tb ? N : K) * ldb, sC = M * ldc;
  const A = randn(batch * sA), B = randn(batch * sB), C0 = randn(batch * sC), bias = c.bias ? randn(N) : null;
  if (beta === 0) C0.fill(NaN);  // C must not be read when beta is 0
  const C = C0.slice();
  onPath(p, () => backend.gemmBf16(ta, tb, M, N, K, batch, alpha, beta, A, lda, sA, B, ldb, sB, C, ldc, sC, bias));
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0, mag = 0;
        for (let k = 0; k < K; k++) {
          const a = bf16(A[b * sA + (ta ? k * lda + i : i * lda + k)]), w = bf16(B[b * sB + (tb ? j * ldb + k : k * ldb + j)]);
          s += a * w;
          mag += Math.abs(a * w);
        }
        const ci = b * sC + i * ldc + j;
        const want = alpha * s + (beta === 0 ? 0 : beta * C0[ci]) + (bias ? bias[j] : 0);
        const tol = 2e-6 * (Math.abs(alpha) * mag + Math.abs(beta === 0 ? 0 : beta * C0[ci]) + (bias ? Math.abs(bias[j]) : 0)) + 1e-30;
        const got = C[ci];
        if (!(Math.abs(got - want) <= tol)) {
          assert.fail(`gemmBf16 ${JSON.stringify(c)} on ${pathName(p)}: C[${b}][${i}][${j}] = ${got}, expected ${want} (tolerance ${tol})`);
        }
      }
  if (pad > 0) {  // the padding between rows is left alone
    for (let b = 0; b < batch; b++) for (let i = 0; i < M; i++) for (let j = N; j < ldc; j++) {
      const ci = b * sC + i * ldc + j;
      assert.ok(Object.is(C[ci], C0[ci]), `gemmBf16 wrote C's padding at [${b}][${i}][${j}]`);
    }
  }
}

const GEMM_CASES: GemmCase[] = [];
for (const ta of [false, true]) for (const tb of [false, true]) {
  GEMM_CASES.push(
    { ta, tb, M: 1, N: 1, K: 1 },
    { ta, tb, M: 3, N: 5, K: 7, alpha: 0.5, beta: 0.25, bias: true },
    { ta, tb, M: 15, N: 33, K: 64, pad: 3 },
    { ta, tb, M: 29, N: 70, K: 801, beta: 1, bias: true },   // two K blocks, odd K, a partial strip
    { ta, tb, M: 17, N: 17, K: 33, batch: 3, alpha: -2, beta: 0.5 },
    { ta, tb, M: 70, N: 65, K: 1201, beta: 0.5, bias: true },  // 32-row strips (AMX) with a partial one past 16 rows, two K blocks
  );
}
GEMM_CASES.push({ ta: false, tb: false, M: 2, N: 2100, K: 9, bias: true });  // two N blocks
GEMM_CASES.push({ ta: false, tb: true, M: 40, N: 50, K: 0, beta: 0.5, bias: true });  // K = 0: beta * C + bias
GEMM_CASES.push({ ta: false, tb: false, M: 6, N: 7, K: 8, alpha: 0, beta: 2 });

for (const p of PATHS) {
  test(`gemmBf16 on ${pathName(p)}: every transpose, odd K, edges, blocks, batches vs float64 on bf16-rounded operands`, () => {
    for (const c of GEMM_CASES) runGemmCase(c, p);
  });
}

test("gemmBf16 rounds operands to nearest bf16, ties to even, on every path", () => {
  // 1 + 2^-8 and 1 + 3 * 2^-8 are halfway between two bf16 values: ties go to the even one.
  const a = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -(1 + 2 ** -8)]);
  const want = [1, 1 + 2 ** -6, 1 + 2 ** -7, -1];
  for (const p of PATHS) {
    const c = new Float32Array(4);
    onPath(p, () => backend.gemmBf16(false, false, 4, 1, 1, 1, 1, 0, a, 1, 0, new Float32Array([1]), 1, 0, c, 1, 0));
    assert.deepEqual([...c], want, pathName(p));
  }
});

function packBoth(N: number, K: number, W: Float32Array, inOut: boolean) {
  const sizes = backend.packedSizes(N, K);
  const words = new Uint32Array(sizes.bf16Words);
  backend.packBf16(N, K, W, inOut, words);
  const bytes = new Int8Array(sizes.int8Bytes), scales = new Float32Array(N), wsum = new Int32Array(N);
  backend.packInt8(N, K, W, inOut, bytes, scales, wsum);
  return { words, bytes, scales, wsum };
}

test("packed layouts: bf16 words and int8 quads in 16-column strips, zero padded", () => {
  const N = 17, K = 5;
  const W = randn(N * K);  // out_in: W[n][k]
  const { words, bytes, scales, wsum } = packBoth(N, K, W, false);
  assert.equal(words.length, 2 * 3 * 16);
  assert.equal(bytes.length, 2 * 2 * 64);
  const bits = (x: number) => new Uint32Array(new Float32Array([bf16(x)]).buffer)[0] >>> 16;
  for (let n = 0; n < N; n++) for (let p = 0; p < 3; p++) {
    const w = words[(Math.floor(n / 16) * 3 + p) * 16 + (n % 16)];
    assert.equal(w & 0xffff, bits(W[n * K + 2 * p]), `word (${n}, ${p}) low half`);
    assert.equal(w >>> 16, 2 * p + 1 < K ? bits(W[n * K + 2 * p + 1]) : 0, `word (${n}, ${p}) high half`);
  }
  for (let j = 1; j < 16; j++) for (let p = 0; p < 3; p++) assert.equal(words[(3 + p) * 16 + j], 0, "padding columns are zero");
  for (let n = 0; n < N; n++) {
    let amax = 0, sum = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(W[n * K + k]));
    assert.ok(Math.abs(scales[n] - amax / 127) <= 1e-7 * amax, `scale of channel ${n}`);
    for (let k = 0; k < 8; k++) {
      const q = bytes[((Math.floor(n / 16) * 2 + Math.floor(k / 4)) * 16 + (n % 16)) * 4 + (k % 4)];
      if (k >= K) { assert.equal(q, 0, "k padding is zero"); continue; }
      assert.ok(Math.abs(q - W[n * K + k] / scales[n]) <= 0.5 + 1e-4, `q(${n}, ${k}) = ${q} for ${W[n * K + k] / scales[n]}`);
      sum += q;
    }
    assert.equal(wsum[n], sum, `wsum of channel ${n}`);
  }
  // The same matrix stored [in, out] packs to the same bytes.
  const T = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) T[k * N + n] = W[n * K + k];
  const t = packBoth(N, K, T, true);
  assert.deepEqual(t.words, words);
  assert.deepEqual(t.bytes, bytes);
  assert.deepEqual(t.scales, scales);
});

// From 16 rows the amx path runs the linears on tiles: 32-row blocks with a partial one, strip
// pairs with a lone last strip, K tails of 1, 6 and 11 pairs or quads, and exact tile edges.
const LINEAR_SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 16, 2], [3, 17, 3], [8, 15, 5], [9, 40, 64], [17, 33, 129], [2, 130, 1024], [40, 50, 300], [16, 16, 32], [32, 32, 64],
];

for (const p of PATHS) {
  test(`linearBf16 on ${pathName(p)}: packed weights (both layouts) vs float64 on bf16-rounded x and W`, () => {
    for (const [M, N, K] of LINEAR_SHAPES) for (const inOut of [false, true]) {
      const ldx = K + 2, ldy = N + 3;
      const x = randn(M * ldx), W = randn(N * K), bias = rand() < 0.5 ? randn(N) : null;
      const { words } = packBoth(N, K, W, inOut);
      const y = new Float32Array(M * ldy).fill(7);
      onPath(p, () => backend.linearBf16(M, N, K, x, ldx, words, bias, y, ldy));
      for (let i = 0; i < M; i++) {
        for (let n = 0; n < N; n++) {
          let s = 0, mag = 0;
          for (let k = 0; k < K; k++) {
            const t = bf16(x[i * ldx + k]) * bf16(inOut ? W[k * N + n] : W[n * K + k]);
            s += t;
            mag += Math.abs(t);
          }
          const want = s + (bias ? bias[n] : 0), tol = 2e-6 * (mag + (bias ? Math.abs(bias[n]) : 0)) + 1e-30;
          assert.ok(Math.abs(y[i * ldy + n] - want) <= tol, `[${M}, ${N}, ${K}] ${inOut ? "in_out" : "out_in"}: y[${i}][${n}] = ${y[i * ldy + n]}, expected ${want}`);
        }
        for (let n = N; n < ldy; n++) assert.equal(y[i * ldy + n], 7, "row padding untouched");
      }
    }
  });

  test(`linearInt8 on ${pathName(p)}: exact on exactly quantizable inputs (integer sums, +128 offset, scales)`, () => {
    // x = 2^-7 * qx and W = s_n * qw with a ±127 in every row and channel: quantization is exact,
    // so y = 2^-7 * s_n * sum qx qw (+ bias), with the integer sum exact on every path.
    for (const [M, N, K] of LINEAR_SHAPES) {
      const qx = Array.from({ length: M * K }, (_, i) => (i % K === 0 ? (i % 2 ? 127 : -127) : Math.round(rand() * 254) - 127));
      const qw = Array.from({ length: N * K }, (_, i) => (i % K === K - 1 ? -127 : Math.round(rand() * 254) - 127));
      const sw = Array.from({ length: N }, (_, n) => 2 ** -(3 + (n % 5)));
      const x = new Float32Array(qx.map((q) => q * 2 ** -7));
      const W = new Float32Array(qw.map((q, i) => q * sw[Math.floor(i / K)]));
      const bias = randn(N);
      const { bytes, scales, wsum } = packBoth(N, K, W, false);
      const y = new Float32Array(M * N);
      onPath(p, () => backend.linearInt8(M, N, K, x, K, bytes, scales, wsum, bias, y, N));
      for (let i = 0; i < M; i++) for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += qx[i * K + k] * qw[n * K + k];
        const want = 2 ** -7 * (sw[n] * 127 / 127) * s + bias[n];
        assert.ok(Math.abs(y[i * N + n] - want) <= 1e-6 * (Math.abs(want) + 1), `[${M}, ${N}, ${K}] y[${i}][${n}] = ${y[i * N + n]}, expected ${want}`);
      }
    }
  });

  test(`linearInt8 on ${pathName(p)}: random inputs within the quantization error bound of float64`, () => {
    for (const [M, N, K] of LINEAR_SHAPES) for (const inOut of [false, true]) {
      const x = randn(M * K, 3), W = randn(N * K, 0.1), bias = randn(N);
      x[0] = 0;  // a zero row start; and an all-zero row when M > 1
      if (M > 2) x.fill(0, K, 2 * K);
      const { bytes, scales, wsum } = packBoth(N, K, W, inOut);
      const y = new Float32Array(M * N);
      onPath(p, () => backend.linearInt8(M, N, K, x, K, bytes, scales, wsum, bias, y, N));
      for (let i = 0; i < M; i++) {
        let amax = 0;
        for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[i * K + k]));
        const sx = amax > 0 ? amax / 127 : 1;
        for (let n = 0; n < N; n++) {
          let s = 0, bound = 0;
          for (let k = 0; k < K; k++) {
            const w = inOut ? W[k * N + n] : W[n * K + k], v = x[i * K + k];
            s += v * w;
            // |x w - sx qx s qw| <= |x| s/2 + |w| sx/2 + sx s/4 (each rounding at most half a step)
            bound += Math.abs(v) * scales[n] / 2 + Math.abs(w) * sx / 2 + sx * scales[n] / 4;
          }
          const want = s + bias[n];
          assert.ok(Math.abs(y[i * N + n] - want) <= bound * 1.001 + 1e-6, `[${M}, ${N}, ${K}] y[${i}][${n}] = ${y[i * N + n]}, expected ${want} ± ${bound}`);
        }
      }
    }
  });
}

test("the paths agree with each other (bf16 to float32 rounding, int8 exactly up to the epilogue), below and above 16 rows", () => {
  for (const [M, N, K] of [[5, 48, 96], [37, 48, 200]]) agree(M, N, K);
});

function agree(M: number, N: number, K: number): void {
  const x = randn(M * K), W = randn(N * K);
  const { words, bytes, scales, wsum } = packBoth(N, K, W, false);
  const run = (p: Path) => onPath(p, () => {
    const yb = new Float32Array(M * N), yi = new Float32Array(M * N);
    backend.linearBf16(M, N, K, x, K, words, null, yb, N);
    backend.linearInt8(M, N, K, x, K, bytes, scales, wsum, null, yi, N);
    return { yb, yi };
  });
  const first = run(PATHS[0]);
  for (const p of PATHS.slice(1)) {
    const r = run(p);
    for (let i = 0; i < M * N; i++) {
      assert.ok(Math.abs(r.yb[i] - first.yb[i]) <= 1e-5 * (1 + Math.abs(first.yb[i])), `bf16 ${pathName(p)} vs ${pathName(PATHS[0])} at ${i}`);
      assert.ok(Math.abs(r.yi[i] - first.yi[i]) <= 1e-6 * (1 + Math.abs(first.yi[i])), `int8 ${pathName(p)} vs ${pathName(PATHS[0])} at ${i}`);
    }
  }
}

test("probes: bf16 and int8 dot-product peaks and memory bandwidth are positive rates", () => {
  for (const p of PATHS) onPath(p, () => {
    const bf = backend.peakBf16(20000), i8 = backend.peakInt8(20000);
    assert.ok(Number.isFinite(bf) && bf > 1e8, `${pathName(p)} bf16 peak ${bf}`);
    assert.ok(Number.isFinite(i8) && i8 > 1e8, `${pathName(p)} int8 peak ${i8}`);
  });
  const bw = backend.memoryBandwidth(16, 2);
  assert.ok(Number.isFinite(bw) && bw > 1e8, `bandwidth ${bw}`);
});

test("bad arguments are refused with the binding's name and what was expected", () => {
  const f = new Float32Array(4);
  assert.throws(() => backend.gemmBf16(false, false, 2, 2, 2, 1, 1, 0, f, 2, 0, f, 2, 0, new Float32Array(3), 2, 0), /gemmBf16: C needs 4 elements but has 3/);
  assert.throws(() => backend.gemmBf16(false, false, 2, 2, 2, 1, 1, 0, f, 1, 0, f, 2, 0, f, 2, 0), /gemmBf16: lda 1 < row length 2/);
  assert.throws(() => backend.gemmBf16(false, false, 2, 2, 2, 1, 1, 0, f, 2, 0, f, 2, 0, f, 2, 0, new Float32Array(1)), /gemmBf16: bias has 1 elements; expected N = 2/);
  assert.throws(() => backend.packBf16(2, 2, f, false, new Uint32Array(10)), /packBf16: dst needs 16 elements but has 10/);
  assert.throws(() => backend.packBf16(2, 2, f, false, new Int32Array(16) as unknown as Uint32Array), /TypeError: packBf16: dst \(argument 4\) must be a Uint32Array/);
  assert.throws(() => backend.packInt8(3, 2, f, false, new Int8Array(64), new Float32Array(3), new Int32Array(3)), /packInt8: W needs 6 elements but has 4/);
  const { words, bytes, scales, wsum } = packBoth(2, 2, f, false);
  assert.throws(() => backend.linearBf16(3, 2, 2, f, 2, words, null, new Float32Array(6), 2), /linearBf16: x needs 6 elements but has 4/);
  assert.throws(() => backend.linearBf16(2, 2, 2, f, 2, words, null, new Float32Array(6), 1), /linearBf16: ldy 1 < N 2/);
  assert.throws(() => backend.linearBf16(2, 2, 4, new Float32Array(8), 4, words, null, f, 2), /linearBf16: w needs 32 elements but has 16/);
  assert.throws(() => backend.linearInt8(2, 2, 2, f, 2, bytes, new Float32Array(1), wsum, null, f, 2), /linearInt8: scales needs 2 elements but has 1/);
  assert.throws(() => backend.linearInt8(2, 2, 2, f, 2, bytes, scales, wsum, new Float32Array(1), f, 2), /linearInt8: bias has 1 elements; expected N = 2/);
  assert.throws(() => backend.memoryBandwidth(0, 1), /memoryBandwidth: megabytes must be >= 1/);
});

// Fused attention with bf16 products: the output within bf16 rounding of a float64 reference,
// the log-sum-exp and every gradient within bf16 rounding of the float32 kernel (itself checked
// against finite differences in ops.test.ts), causal and not, one and several query blocks.
function attentionCase(p: Path, B: number, Tq: number, Tk: number, NH: number, HS: number, causal: boolean, acc: boolean): void {
  const C = NH * HS, C3 = 3 * C;
  const q = randn(B * Tq * C3, 2), kv = randn(B * Tk * C3, 2), go = randn(B * Tq * C);
  const run = (bf16: boolean) => onPath(p, () => {
    const o = new Float32Array(B * Tq * C), lse = new Float32Array(B * NH * Tq);
    const dims = [B, Tq, Tk, NH, HS], scale = 1 / Math.sqrt(HS);
    backend.attentionForward(dims, scale, causal, q, Tq * C3, C3, kv.subarray(C), Tk * C3, C3, kv.subarray(2 * C), Tk * C3, C3, o, Tq * C, C, lse, bf16);
    const gq = new Float32Array(B * Tq * C3).fill(acc ? 0.5 : NaN), gkv = new Float32Array(B * Tk * C3).fill(acc ? 0.5 : NaN);
    backend.attentionBackward(dims, scale, causal, q, Tq * C3, C3, kv.subarray(C), Tk * C3, C3, kv.subarray(2 * C), Tk * C3, C3, o, Tq * C, C, lse,
      go, gq, gkv.subarray(C), gkv.subarray(2 * C), acc, bf16);
    const pick = (x: Float32Array, T: number, part: number) => Float32Array.from({ length: B * T * C }, (_, i) => x[Math.floor(i / C) * C3 + part * C + (i % C)]);
    return { o, lse, gq: pick(gq, Tq, 0), gk: pick(gkv, Tk, 1), gv: pick(gkv, Tk, 2) };
  });
  const f = run(false), h = run(true);
  // float64 forward
  const ref = new Float64Array(B * Tq * C);
  for (let b = 0; b < B; b++) for (let hd = 0; hd < NH; hd++) for (let t = 0; t < Tq; t++) {
    const lim = causal ? t + (Tk - Tq) + 1 : Tk, s = new Float64Array(lim);
    for (let j = 0; j < lim; j++) {
      for (let d = 0; d < HS; d++) s[j] += q[(b * Tq + t) * C3 + hd * HS + d] * kv[(b * Tk + j) * C3 + C + hd * HS + d];
      s[j] /= Math.sqrt(HS);
    }
    const m = Math.max(...s);
    let z = 0;
    for (let j = 0; j < lim; j++) z += s[j] = Math.exp(s[j] - m);
    for (let d = 0; d < HS; d++) {
      let o = 0;
      for (let j = 0; j < lim; j++) o += (s[j] / z) * kv[(b * Tk + j) * C3 + 2 * C + hd * HS + d];
      ref[(b * Tq + t) * C + hd * HS + d] = o;
    }
  }
  const what = `attention bf16 on ${pathName(p)} [B ${B}, Tq ${Tq}, Tk ${Tk}, NH ${NH}, HS ${HS}]${causal ? " causal" : ""}${acc ? " acc" : ""}`;
  const close = (name: string, got: ArrayLike<number>, want: ArrayLike<number>, rel: number, mustDiffer: boolean) => {
    // Errors scale with the operands (|q|, |k|, |v|, |dO| ~ 1 here), not with the result: a
    // gradient that cancels to ~0 in float32 (one key: dq = 0) keeps bf16's rounding of dP - D.
    let scale = 1, worst = 0;
    for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    assert.ok(worst <= rel * scale, `${what} ${name}: differs by ${worst} at scale ${scale}`);
    if (mustDiffer) assert.ok(worst > 0, `${what} ${name}: identical to float32 (the bf16 path did not run)`);
  };
  close("o vs float64", h.o, ref, 0.03, false);
  close("o vs float32", h.o, f.o, 0.03, true);
  close("lse", h.lse, f.lse, 0.01, false);
  close("dq", h.gq, f.gq, 0.05, true);
  close("dk", h.gk, f.gk, 0.05, true);
  close("dv", h.gv, f.gv, 0.05, true);
}

for (const p of PATHS) {
  test(`attention with bf16 products on ${pathName(p)}: forward vs float64, backward vs the float32 kernel`, () => {
    attentionCase(p, 1, 1, 1, 1, 8, true, false);
    attentionCase(p, 2, 5, 5, 2, 16, true, false);
    attentionCase(p, 1, 70, 70, 2, 32, true, true);     // two query blocks, 64 + 6
    attentionCase(p, 1, 30, 30, 3, 17, false, false);   // full attention, odd head size
    attentionCase(p, 2, 3, 9, 2, 8, true, false);       // Tk > Tq: rows continue a prefix
  });
}
