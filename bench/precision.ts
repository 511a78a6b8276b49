/**
 * `npm run bench -- --only precision`: low precision beside float32, in one run.
 *
 *   probes   register-only fp32 FMA, bf16 dot-product (vdpbf16ps, or AMX tdpbf16ps tiles on the amx
 *            path) and int8 (vpdpbusd) loops on
 *            every thread; memory bandwidth (the best of a few streaming reads of a buffer far
 *            larger than the last-level cache)
 *   gemm     GFLOP/s of the training GEMMs of config M (every transpose GPT uses), fp32 and bf16
 *            (on the amx path also the vdpbf16ps kernel);
 *            packed-weight linears (prefill: 128 rows; decode: 1 row) in fp32, bf16 and int8, with
 *            the decode rows' weight bytes per second
 *   train    training tokens/s of configs S and M, fp32 and bf16 steps alternating one by one (so
 *            load spells hit both alike; the speedup is the median of the pairs' ratios, with their
 *            IQR); MFU against each precision's own peak; with --torch, PyTorch's step in float32 and
 *            under CPU bf16 autocast beside them (bench/torch_autocast.py, torch_ref.py's model)
 *   decode   tokens/s of greedy decoding (16-token prompt, 100 new tokens) with fp32, bf16 and int8
 *            weights on 1 and 2 threads, beside onnxruntime and the bandwidth limit: bandwidth /
 *            (weight bytes + mean KV-cache bytes read per token) (bench/decode.ts)
 */
import { backend } from "../src/native/index.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { decodeBench } from "./decode.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { Rng, ids } from "../src/tensor/index.js";
import { type Precision, withPrecision } from "../src/tensor/precision.js";

type Row = Record<string, string | number | boolean>;
const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

function seconds(fn: () => void, iters: number): number {
  fn();
  const t = performance.now();
  for (let i = 0; i < iters; i++) fn();
  return (performance.now() - t) / iters / 1000;
}

const CONFIGS: Record<string, { vocab: number; d: number; layers: number; heads: number; ctx: number; batch: number }> = {
  S: { vocab: 4096, d: 256, layers: 4, heads: 4, ctx: 128, batch: 16 },
  M: { vocab: 8192, d: 512, layers: 8, heads: 8, ctx: 256, batch: 8 },
  small: { vocab: 4096, d: 128, layers: 4, heads: 4, ctx: 128, batch: 16 },
};

const TRAIN_GEMMS: { m: number; n: number; k: number; ta: boolean; tb: boolean; what: string }[] = [
  { m: 2048, n: 1536, k: 512, ta: false, tb: false, what: "c_attn forward" },
  { m: 2048, n: 512, k: 2048, ta: false, tb: false, what: "mlp c_proj forward" },
  { m: 2048, n: 512, k: 2048, ta: false, tb: true, what: "dX of c_fc" },
  { m: 512, n: 2048, k: 2048, ta: true, tb: false, what: "dW of c_fc" },
  { m: 2048, n: 8192, k: 512, ta: false, tb: true, what: "LM head logits" },
  { m: 512, n: 8192, k: 2048, ta: true, tb: false, what: "dW of LM head" },
];

export interface PrecisionBenchOptions {
  threads: number;
  configs?: string[];
  rounds: number;
  steps: number;
  /** PyTorch's training step in float32 and under bf16 autocast (bench/torch_autocast.py), run after Plinth's for each config. */
  torch?: (config: string) => Row[];
}

export async function precisionBench(o: PrecisionBenchOptions, emit: (row: Row) => void, section: (title: string) => void): Promise<void> {
  const configs = o.configs ?? ["S", "M"];
  section(`precision probes (${backend.lowpPath()} low-precision path)`);
  backend.peakFlops(2e6);
  const best = (f: () => number) => Math.max(...Array.from({ length: 5 }, f));
  const fp32Peak = best(() => backend.peakFlops(3e7)) / 1e9;
  const bf16Peak = best(() => backend.peakBf16(3e7)) / 1e9;
  const int8Peak = best(() => backend.peakInt8(3e7)) / 1e9;
  const bandwidth = backend.memoryBandwidth(1024, 4) / 1e9;
  emit({ bench: "precision", what: "peak", path: backend.lowpPath(), threads: o.threads, fp32_gflops: round(fp32Peak), bf16_gflops: round(bf16Peak), int8_gops: round(int8Peak) });
  emit({ bench: "precision", what: "bandwidth", threads: o.threads, gb_per_s: round(bandwidth) });

  section("precision gemm: training GEMMs of config M, fp32 vs bf16 (GFLOP/s, same run)");
  for (const g of TRAIN_GEMMS) {
    const a = new Float32Array(g.m * g.k).fill(0.5), b = new Float32Array(g.k * g.n).fill(0.25), c = new Float32Array(g.m * g.n);
    const flops = 2 * g.m * g.n * g.k, iters = Math.max(3, Math.floor(6e9 / flops));
    const run = (f: typeof backend.gemm) => () => f(g.ta, g.tb, g.m, g.n, g.k, 1, 1, 0, a, g.ta ? g.m : g.k, 0, b, g.tb ? g.k : g.n, 0, c, g.n, 0);
    // Where AMX runs the bf16 GEMM, the vdpbf16ps kernel beside it (PLINTH_LOWP=vnni's path).
    const amx = backend.lowpPath() === "amx";
    const f32: number[] = [], b16: number[] = [], vnni: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      f32.push(flops / seconds(run(backend.gemm), iters) / 1e9);
      b16.push(flops / seconds(run(backend.gemmBf16), iters) / 1e9);
      if (amx) {
        backend.setLowpAmx(false);
        try {
          vnni.push(flops / seconds(run(backend.gemmBf16), Math.max(3, iters >> 2)) / 1e9);
        } finally {
          backend.setLowpAmx(true);
        }
      }
    }
    emit({ bench: "precision", what: g.what, m: g.m, n: g.n, k: g.k, ta: g.ta, tb: g.tb, fp32_gflops: round(median(f32)), bf16_gflops: round(median(b16)),
      speedup: round(median(b16) / median(f32), 2) + "x", bf16_of_peak: round((100 * median(b16)) / bf16Peak) + "%",
      ...(amx ? { vnni_bf16_gflops: round(median(vnni)), amx_over_vnni: round(median(b16) / median(vnni), 2) + "x" } : {}) });
  }
  section("precision linears: packed weights [N=1536, K=512] and [N=8192, K=512] (prefill 128 rows, decode 1 row)");
  for (const [N, K] of [[1536, 512], [8192, 512]]) {
    const W = new Float32Array(N * K).map((_, i) => Math.sin(i) * 0.05);
    const sizes = backend.packedSizes(N, K);
    const words = new Uint32Array(sizes.bf16Words);
    backend.packBf16(N, K, W, false, words);
    const bytes = new Int8Array(sizes.int8Bytes), scales = new Float32Array(N), wsum = new Int32Array(N);
    backend.packInt8(N, K, W, false, bytes, scales, wsum);
    for (const M of [128, 1]) {
      const x = new Float32Array(M * K).map((_, i) => Math.cos(i)), y = new Float32Array(M * N);
      const flops = 2 * M * N * K, iters = Math.max(5, Math.floor(2e9 / flops));
      const t32 = seconds(() => backend.gemm(false, true, M, N, K, 1, 1, 0, x, K, 0, W, K, 0, y, N, 0), iters);
      const t16 = seconds(() => backend.linearBf16(M, N, K, x, K, words, null, y, N), iters);
      const t8 = seconds(() => backend.linearInt8(M, N, K, x, K, bytes, scales, wsum, null, y, N), iters);
      const row: Row = { bench: "precision", what: M === 1 ? "decode linear" : "prefill linear", m: M, n: N, k: K };
      if (M === 1) Object.assign(row, { fp32_gb_per_s: round((N * K * 4) / t32 / 1e9), bf16_gb_per_s: round((N * K * 2) / t16 / 1e9), int8_gb_per_s: round((N * K) / t8 / 1e9), bandwidth_gb_per_s: round(bandwidth) });
      Object.assign(row, { fp32_us: round(t32 * 1e6), bf16_us: round(t16 * 1e6), int8_us: round(t8 * 1e6), int8_speedup: round(t32 / t8, 2) + "x" });
      emit(row);
    }
  }

  section("precision train: tokens/s of one AdamW step, fp32 and bf16 steps alternating");
  for (const name of configs.filter((c) => c !== "small")) {
    const c = CONFIGS[name];
    const model = new GPT(gptConfig({ vocab_size: c.vocab, n_embd: c.d, n_layer: c.layers, n_head: c.heads, n_positions: c.ctx }));
    const opt = new AdamW(model.paramGroups(0.1), { lr: 3e-4 });
    const rng = new Rng(0);
    const batch = () => ids(Array.from({ length: c.batch }, () => Array.from({ length: c.ctx }, () => rng.int(c.vocab))));
    const x = batch(), y = batch();
    const step = (p: Precision) => () => {
      withPrecision(p, () => {
        const out = model.forward(x, y);
        out.loss!.backward();
        out.loss!.release();
      });
      clipGradNorm(model.parameters(), 1);
      opt.step();
      opt.zeroGrad();
    };
    const tokens = c.batch * c.ctx;
    const flops = 6 * model.numParameters() * tokens + 12 * c.layers * c.d * c.ctx * tokens;
    // One fp32 step and one bf16 step in turn (order swapped each pair), `rounds * steps` pairs: a
    // load spell hits both sides of a pair alike, and the median of the pairs' ratios is reported.
    const tps: Record<Precision, number[]> = { fp32: [], bf16: [] }, ratios: number[] = [];
    step("fp32")();
    step("bf16")();
    for (let r = 0; r < o.rounds * o.steps; r++) {
      for (const p of r % 2 === 0 ? (["fp32", "bf16"] as const) : (["bf16", "fp32"] as const)) tps[p].push(tokens / seconds(step(p), 1));
      ratios.push(tps.bf16[r] / tps.fp32[r]);
    }
    const f = median(tps.fp32), h = median(tps.bf16), q = [...ratios].sort((a, b) => a - b);
    emit({ bench: "precision", what: "train", config: name, fp32_tokens_per_s: Math.round(f), bf16_tokens_per_s: Math.round(h),
      speedup: round(median(ratios), 2) + "x", pair_ratio_iqr: `${round(q[Math.floor(q.length / 4)], 2)}-${round(q[Math.floor((3 * q.length) / 4)], 2)}`,
      fp32_mfu: round((100 * flops * f) / tokens / 1e9 / fp32Peak) + "%", bf16_mfu_of_bf16_peak: round((100 * flops * h) / tokens / 1e9 / bf16Peak) + "%", pairs: ratios.length });
    x.release();
    y.release();
    for (const t of o.torch?.(name) ?? []) {
      const tt = Number(t.tokens_per_s);
      emit({ ...t, bench: "precision", what: "train", plinth_fp32_over_it: round(f / tt, 2) + "x", plinth_bf16_over_it: round(h / tt, 2) + "x" });
    }
  }

  section("precision decode: greedy tokens/s (16-token prompt, 100 new) of fused decode blocks with fp32 / bf16 / int8 weights, the op-by-op fp32 forward and onnxruntime, beside the bandwidth limit (bench/decode.ts)");
  await decodeBench({ configs: ["small", ...configs.filter((c) => c !== "small")], rounds: o.rounds }, emit);
}
