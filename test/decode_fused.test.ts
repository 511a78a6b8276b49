// The fused decode step (native/src/kernels/lowp.inc: linear_f32, decode_layer) on every path
// this CPU has, against a float64 reference: float32 weights read in place (both layouts, the
// few-row product and the GEMM above 8 rows), and a whole GPT-2 block over several segments'
// KV caches with float32, bf16 and int8 weights; then GPT decoding with fused blocks against
// the op-by-op forward (greedy tokens identical, logits close), batched rows
// with a LoRA adapter beside plain rows, and the argument checks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backend, type DecodeLinearArgs } from "../src/native/index.js";
import { GPT, generate, gptConfig, KVCache } from "../src/models/gpt/index.js";
import { useInferenceWeights } from "../src/models/inference_weights.js";
import { setFusedDecode, type Linear } from "../src/nn/layers.js";
import type { LowRankFactor, RowAdapter } from "../src/nn/context.js";
import { Rng, randn as randnTensor } from "../src/tensor/index.js";
import { bf16, lcg, onPath, pathName, PATHS, type Path } from "./helpers/lowp_paths.js";

const { rand, randn } = lcg(4242);
// Round half to even, as the kernels' float32 magic-number rounding.
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

test(`decode paths here: ${PATHS.map(pathName).join(", ")}`, () => {
  assert.ok(PATHS.length >= 1);
  assert.ok(PATHS.some((p) => p.isa === "portable"), "the portable path is always there");
});

// ---- linearF32: float32 weights read in place ----------------------------------------------

const F32_SHAPES: [number, number, number][] = [[1, 1, 1], [1, 17, 3], [1, 384, 128], [3, 70, 129], [4, 5, 33], [8, 130, 64], [9, 40, 67], [20, 33, 17]];

for (const p of PATHS) {
  test(`linearF32 on ${pathName(p)}: both layouts, strided rows, bias, few rows and the GEMM above 8 vs float64`, () => {
    for (const [M, N, K] of F32_SHAPES) for (const inOut of [true, false]) {
      const ldx = K + 3, ldy = N + 2;
      const x = randn(M * ldx), W = randn(N * K), bias = rand() < 0.5 ? randn(N) : null;
      const y = new Float32Array(M * ldy).fill(7);
      onPath(p, () => backend.linearF32(M, N, K, x, ldx, W, inOut, bias, y, ldy));
      for (let i = 0; i < M; i++) {
        for (let n = 0; n < N; n++) {
          let s = 0, mag = 0;
          for (let k = 0; k < K; k++) {
            const t = x[i * ldx + k] * (inOut ? W[k * N + n] : W[n * K + k]);
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
}

// ---- decodeLayer: one GPT-2 block against a float64 reference -------------------------------

type Format = "fp32" | "bf16" | "int8";
interface RefLinear { W: Float32Array; inOut: boolean; bias: Float32Array; in: number; out: number }
interface Packed { words: Uint32Array; bytes: Int8Array; scales: Float32Array; wsum: Int32Array }

function pack(l: RefLinear): Packed {
  const sizes = backend.packedSizes(l.out, l.in);
  const words = new Uint32Array(sizes.bf16Words), bytes = new Int8Array(sizes.int8Bytes), scales = new Float32Array(l.out), wsum = new Int32Array(l.out);
  backend.packBf16(l.out, l.in, l.W, l.inOut, words);
  backend.packInt8(l.out, l.in, l.W, l.inOut, bytes, scales, wsum);
  return { words, bytes, scales, wsum };
}

function linearArgs(l: RefLinear, p: Packed, format: Format): DecodeLinearArgs {
  if (format === "bf16") return { format: 1, words: p.words, bias: l.bias };
  if (format === "int8") return { format: 2, bytes: p.bytes, scales: p.scales, wsum: p.wsum, bias: l.bias };
  return { format: 0, w: l.W, inOut: l.inOut, bias: l.bias };
}

// float64 y = x @ W + bias for one row, with the kernel's rounding of x (bf16) or quantization
// of x and W (int8, per row and per output channel) modelled exactly.
function refLinear(x: number[], l: RefLinear, format: Format, scales: Float32Array): number[] {
  const w = (k: number, n: number) => (l.inOut ? l.W[k * l.out + n] : l.W[n * l.in + k]);
  const y = new Array<number>(l.out).fill(0);
  if (format === "int8") {
    const xf = x.map((v) => Math.fround(v));
    const amax = xf.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const sx = amax > 0 ? Math.fround(amax / 127) : 1, inv = Math.fround(1 / sx);
    const qx = xf.map((v) => Math.max(-127, Math.min(127, roundEven(Math.fround(v * inv)))));
    for (let n = 0; n < l.out; n++) {
      let s = 0;
      for (let k = 0; k < l.in; k++) s += qx[k] * Math.max(-127, Math.min(127, roundEven(w(k, n) / scales[n])));
      y[n] = sx * scales[n] * s + l.bias[n];
    }
    return y;
  }
  const xr = format === "bf16" ? x.map((v) => bf16(Math.fround(v))) : x;
  for (let n = 0; n < l.out; n++) {
    let s = 0;
    for (let k = 0; k < l.in; k++) s += xr[k] * (format === "bf16" ? bf16(w(k, n)) : w(k, n));
    y[n] = s + l.bias[n];
  }
  return y;
}

function refLayerNorm(x: number[], w: Float32Array, b: Float32Array, eps: number): number[] {
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const v = x.reduce((s, t) => s + (t - mean) ** 2, 0) / x.length;
  return x.map((t, i) => ((t - mean) / Math.sqrt(v + eps)) * w[i] + b[i]);
}
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

interface BlockCase { C: number; NH: number; F: number; counts: number[]; pasts: number[]; cap: number; inOut: boolean }

function runBlockCase(c: BlockCase, format: Format, p: Path): void {
  const { C, NH, F, counts, pasts, cap } = c, HS = C / NH, eps = 1e-5;
  const M = counts.reduce((s, v) => s + v, 0);
  const lin = (inF: number, outF: number, scale: number): RefLinear => ({ W: randn(inF * outF, scale), inOut: c.inOut, bias: randn(outF, 0.1), in: inF, out: outF });
  const L = [lin(C, 3 * C, 0.3), lin(C, C, 0.3), lin(C, F, 0.3), lin(F, C, 0.2)];
  const P = L.map(pack);
  const ln1w = randn(C, 0.5).map((v) => v + 1), ln1b = randn(C, 0.1), ln2w = randn(C, 0.5).map((v) => v + 1), ln2b = randn(C, 0.1);
  const x0 = randn(M * C, 2);
  const keys = counts.map(() => randn(cap * C)), values = counts.map(() => randn(cap * C));
  const keys0 = keys.map((k) => k.slice()), values0 = values.map((v) => v.slice());
  const x = x0.slice();
  onPath(p, () => backend.decodeLayer(M, C, NH, F, eps, x, ln1w, ln1b, ln2w, ln2b, L.map((l, i) => linearArgs(l, P[i], format)), counts, pasts, keys, values));

  // float64 reference, segment by segment, row by row (keys of earlier rows of a segment first).
  const refK = keys0.map((k) => Array.from(k)), refV = values0.map((v) => Array.from(v));
  const want: number[][] = [];
  const row = (r: number) => Array.from(x0.subarray(r * C, (r + 1) * C));
  const qkvs: number[][] = [];
  for (let r = 0; r < M; r++) qkvs.push(refLinear(refLayerNorm(row(r), ln1w, ln1b, eps), L[0], format, P[0].scales));
  let start = 0;
  counts.forEach((count, s) => {
    for (let j = 0; j < count; j++) {
      const qkv = qkvs[start + j], pos = pasts[s] + j;
      for (let d = 0; d < C; d++) refK[s][pos * C + d] = qkv[C + d], refV[s][pos * C + d] = qkv[2 * C + d];
    }
    for (let j = 0; j < count; j++) {
      const qkv = qkvs[start + j], pos = pasts[s] + j, att = new Array<number>(C).fill(0);
      for (let h = 0; h < NH; h++) {
        const sc: number[] = [];
        for (let t = 0; t <= pos; t++) {
          let dot = 0;
          for (let d = 0; d < HS; d++) dot += qkv[h * HS + d] * refK[s][t * C + h * HS + d];
          sc.push(dot / Math.sqrt(HS));
        }
        const m = Math.max(...sc), e = sc.map((v) => Math.exp(v - m)), z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t <= pos; t++) for (let d = 0; d < HS; d++) att[h * HS + d] += (e[t] / z) * refV[s][t * C + h * HS + d];
      }
      const x1 = row(start + j).map((v, i) => v + refLinear(att, L[1], format, P[1].scales)[i]);
      const u = refLinear(refLayerNorm(x1, ln2w, ln2b, eps), L[2], format, P[2].scales).map(gelu);
      const mlp = refLinear(u, L[3], format, P[3].scales);
      want.push(x1.map((v, i) => v + mlp[i]));
    }
    start += count;
  });
  // Tolerance against the size of the block's contribution: float32 sums (and, for int8, the
  // odd activation landing on the other side of a rounding boundary) stay far inside it; a
  // wrong layout, bias, position or cache row does not.
  const tolRel = format === "fp32" ? 2e-5 : format === "bf16" ? 2e-3 : 5e-3;
  let scale = 0;
  for (let r = 0; r < M; r++) for (let i = 0; i < C; i++) scale = Math.max(scale, Math.abs(want[r][i] - x0[r * C + i]));
  const what = `${format} C${C} NH${NH} F${F} counts [${counts}] pasts [${pasts}] ${c.inOut ? "in_out" : "out_in"} on ${pathName(p)}`;
  for (let r = 0; r < M; r++) for (let i = 0; i < C; i++) {
    assert.ok(Math.abs(x[r * C + i] - want[r][i]) <= tolRel * scale, `${what}: x[${r}][${i}] = ${x[r * C + i]}, expected ${want[r][i]}`);
  }
  // Each segment's new keys and values land at its positions; the rest of its cache is untouched.
  counts.forEach((count, s) => {
    for (let t = 0; t < cap; t++) for (let d = 0; d < C; d++) {
      const i = t * C + d;
      if (t >= pasts[s] && t < pasts[s] + count) {
        assert.ok(Math.abs(keys[s][i] - refK[s][i]) <= tolRel * 10 * (1 + Math.abs(refK[s][i])), `${what}: key ${s}/${t}/${d}`);
        assert.ok(Math.abs(values[s][i] - refV[s][i]) <= tolRel * 10 * (1 + Math.abs(refV[s][i])), `${what}: value ${s}/${t}/${d}`);
      } else {
        assert.equal(keys[s][i], keys0[s][i], `${what}: key ${s}/${t}/${d} untouched`);
        assert.equal(values[s][i], values0[s][i], `${what}: value ${s}/${t}/${d} untouched`);
      }
    }
  });
}

const BLOCK_CASES: BlockCase[] = [
  { C: 40, NH: 5, F: 72, counts: [1], pasts: [0], cap: 4, inOut: true },
  { C: 40, NH: 5, F: 72, counts: [1, 3, 1], pasts: [6, 0, 2], cap: 12, inOut: true },
  { C: 32, NH: 2, F: 100, counts: [2, 1], pasts: [3, 9], cap: 10, inOut: false },
  { C: 48, NH: 4, F: 96, counts: [7, 5], pasts: [1, 0], cap: 9, inOut: true },  // 12 rows: the float32 GEMM
  { C: 128, NH: 2, F: 48, counts: [1, 2], pasts: [9, 3], cap: 12, inOut: true },  // heads of 64: whole vectors
  { C: 32, NH: 4, F: 40, counts: [10, 1], pasts: [2, 5], cap: 13, inOut: false },  // a prompt's rows: the kernel table's attention
];

for (const p of PATHS) {
  for (const format of ["fp32", "bf16", "int8"] as Format[]) {
    test(`decodeLayer on ${pathName(p)}, ${format} weights: a GPT-2 block over several KV caches vs float64`, () => {
      for (const c of BLOCK_CASES) runBlockCase(c, format, p);
    });
  }
}

test("decodeLayer and linearF32 refuse bad arguments with the binding's name", () => {
  const C = 8, F = 16, f = (n: number) => new Float32Array(n);
  const fp = (i: number, o: number): DecodeLinearArgs => ({ format: 0, w: f(i * o), inOut: true, bias: null });
  const ws = [fp(C, 3 * C), fp(C, C), fp(C, F), fp(F, C)];
  const ln = f(C);
  const ok = () => backend.decodeLayer(1, C, 2, F, 1e-5, f(C), ln, ln, ln, ln, ws, [1], [0], [f(4 * C)], [f(4 * C)]);
  ok();
  assert.throws(() => backend.decodeLayer(1, C, 3, F, 1e-5, f(C), ln, ln, ln, ln, ws, [1], [0], [f(4 * C)], [f(4 * C)]), /decodeLayer: C 8 is not divisible by NH 3/);
  assert.throws(() => backend.decodeLayer(2, C, 2, F, 1e-5, f(2 * C), ln, ln, ln, ln, ws, [1], [0], [f(4 * C)], [f(4 * C)]), /decodeLayer: segments cover 1 rows, x has M = 2/);
  assert.throws(() => backend.decodeLayer(1, C, 2, F, 1e-5, f(C), ln, ln, ln, ln, ws, [1], [4], [f(4 * C)], [f(4 * C)]), /decodeLayer: segment 0: 5 positions exceed its cache/);
  assert.throws(() => backend.decodeLayer(1, C, 2, F, 1e-5, f(C), ln, ln, ln, ln, [ws[0], ws[1], fp(C, F - 1), ws[3]], [1], [0], [f(4 * C)], [f(4 * C)]), /decodeLayer: fc\.w needs 128 elements but has 120/);
  assert.throws(() => backend.decodeLayer(1, C, 2, F, 1e-5, f(C), ln, ln, ln, ln, [ws[0], { format: 1, words: new Uint32Array(3), bias: null }, ws[2], ws[3]], [1], [0], [f(4 * C)], [f(4 * C)]), /decodeLayer: proj\.words needs/);
  assert.throws(() => backend.decodeLayer(1, C, 2, F, 1e-5, f(C), ln, ln, ln, ln, ws.slice(0, 3), [1], [0], [f(4 * C)], [f(4 * C)]), /decodeLayer: weights \(argument 10\) must be an array of 4 linears/);
  assert.throws(() => backend.decodeLayer(1, C, 2, F, 1e-5, f(C), ln, ln, ln, ln, ws, [0], [0], [f(4 * C)], [f(4 * C)]), /decodeLayer: segment 0: count must be an integer >= 1/);
  assert.throws(() => backend.linearF32(2, 3, 4, f(8), 4, f(11), true, null, f(6), 3), /linearF32: w needs 12 elements but has 11/);
  assert.throws(() => backend.linearF32(2, 3, 4, f(8), 4, f(12), false, f(2), f(6), 3), /linearF32: bias has 2 elements; expected N = 3/);
});

// ---- GPT decoding: fused blocks against the op-by-op forward -------------------------------

function smallGPT(): GPT {
  const model = new GPT(gptConfig({ vocab_size: 97, n_embd: 48, n_layer: 2, n_head: 4, n_positions: 64, initializer_range: 0.1 }), { seed: 3 });
  model.eval();
  // Residual branches scaled up, so that greedy decoding does not just repeat the last token.
  for (const b of model.transformer.h) for (const l of [b.attn.c_proj, b.mlp.c_proj]) l.weight.data.subarray(0, l.weight.size).forEach((v, i, a) => (a[i] = v * 10));
  return model;
}

function withFusion<R>(on: boolean, fn: () => R): R {
  const prev = setFusedDecode(on);
  try {
    return fn();
  } finally {
    setFusedDecode(prev);
  }
}

test("generate: fused decode blocks give the op-by-op forward's greedy tokens (fp32, bf16, int8 weights)", () => {
  const model = smallGPT();
  const prompt = [5, 17, 3, 80, 41, 9, 2, 66, 13, 7, 28, 50];
  for (const format of ["fp32", "bf16", "int8"] as const) {
    useInferenceWeights(model, format);
    const ops = withFusion(false, () => generate(model, prompt, { maxNewTokens: 40, temperature: 0 }).tokens);
    const fused = withFusion(true, () => generate(model, prompt, { maxNewTokens: 40, temperature: 0 }).tokens);
    assert.equal(fused.length, 40);
    assert.deepEqual(fused, ops, `${format}: greedy continuations differ`);
    assert.ok(new Set(fused).size > 3, `${format}: the continuation is not one repeated token`);
  }
  useInferenceWeights(model, "fp32");
});

test("GPT.decode: batched rows (prompts and single tokens at different positions) match the op-by-op forward", () => {
  const model = smallGPT();
  const prompts = [[1, 2, 3, 4, 5], [60], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]];
  for (const format of ["fp32", "bf16", "int8"] as const) {
    useInferenceWeights(model, format);
    const run = (fused: boolean) => withFusion(fused, () => {
      const caches = prompts.map(() => new KVCache(2, 64, 48));
      const steps: Float32Array[][] = [];
      let tokens = prompts;
      for (let s = 0; s < 4; s++) {
        const logits = model.decode(tokens.map((t, i) => ({ tokens: t, cache: caches[i], adapter: null })));
        steps.push(logits);
        tokens = logits.map((l) => [l.indexOf(Math.max(...l))]);
      }
      assert.deepEqual(caches.map((c) => c.length), prompts.map((p) => p.length + 3));
      caches.forEach((c) => c.release());
      return steps;
    });
    const ops = run(false), fused = run(true);
    // The fused step sums in another order (and, for bf16/int8, an activation may round or
    // quantize to its neighbour): close logits, the same greedy token.
    const tol = format === "fp32" ? 1e-5 : format === "bf16" ? 5e-3 : 1e-2;
    for (let s = 0; s < ops.length; s++) for (let r = 0; r < prompts.length; r++) {
      let maxDiff = 0, maxAbs = 0;
      for (let v = 0; v < ops[s][r].length; v++) {
        maxDiff = Math.max(maxDiff, Math.abs(fused[s][r][v] - ops[s][r][v]));
        maxAbs = Math.max(maxAbs, Math.abs(ops[s][r][v]));
      }
      assert.ok(maxDiff <= tol * maxAbs, `${format} step ${s} row ${r}: logits differ by ${maxDiff} (max ${maxAbs})`);
      assert.equal(fused[s][r].indexOf(Math.max(...fused[s][r])), ops[s][r].indexOf(Math.max(...ops[s][r])), `${format} step ${s} row ${r}: greedy token`);
    }
  }
  useInferenceWeights(model, "fp32");
});

test("GPT.decode: a row with a LoRA adapter beside plain rows runs op by op and matches decoding it alone", () => {
  const model = smallGPT();
  const rng = new Rng(9);
  const factors = new Map<Linear, LowRankFactor>();
  model.transformer.h.forEach((b) => {
    for (const l of [b.attn.c_attn, b.mlp.c_fc]) factors.set(l, { A: randnTensor([l.inFeatures, 4], 0.2, rng), B: randnTensor([4, l.outFeatures], 0.2, rng) });
  });
  const adapter: RowAdapter = { id: "a1", scaling: 1, factor: (l) => factors.get(l) };
  const prompt = [4, 8, 15, 16, 23, 42];
  const alone = (a: RowAdapter | null) => {
    const cache = new KVCache(2, 64, 48);
    const first = model.decode([{ tokens: prompt, cache, adapter: a }])[0];
    const second = model.decode([{ tokens: [1], cache, adapter: a }])[0];
    cache.release();
    return [first, second];
  };
  const soloAdapted = alone(adapter), soloPlain = alone(null);
  const caches = [new KVCache(2, 64, 48), new KVCache(2, 64, 48)];
  const both1 = model.decode([{ tokens: prompt, cache: caches[0], adapter }, { tokens: prompt, cache: caches[1], adapter: null }]);
  const both2 = model.decode([{ tokens: [1], cache: caches[0], adapter }, { tokens: [1], cache: caches[1], adapter: null }]);
  caches.forEach((c) => c.release());
  assert.deepEqual(both1[0], soloAdapted[0]);
  assert.deepEqual(both2[0], soloAdapted[1]);
  assert.deepEqual(both1[1], soloPlain[0]);
  assert.deepEqual(both2[1], soloPlain[1]);
  let diff = 0;
  for (let v = 0; v < 97; v++) diff = Math.max(diff, Math.abs(soloAdapted[1][v] - soloPlain[1][v]));
  assert.ok(diff > 1e-3, "the adapter changes the logits");
});
