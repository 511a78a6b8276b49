/**
 * `npm run bench -- --only decode` (also the decode rows of `--only precision`): greedy decoding
 * tokens/s (a 16-token prompt, 100 new tokens, prefill included) of configs small, S and M on
 * 1 and 2 threads, side by side in one run:
 *
 *   plinth fp32 ops     the op-by-op forward (setFusedDecode(false)): what decoding was before
 *   plinth fp32/bf16/int8   fused decode blocks (one native call per block), float32 weights read
 *                       in place, or packed bf16 / int8 (--weights)
 *   onnxruntime fp32/int8   onnxruntime-node on its own ONNX export of the same model (int8:
 *                       the export's per-channel quantized MatMuls), the same thread count
 *
 * Rounds interleave the runners (load spells on a shared machine hit all of them alike); each
 * row reports the median round and the best. Beside each: the bandwidth limit, the measured
 * streaming-read bandwidth at that thread count (the best probe so far in the run) over the bytes
 * one token reads (its weights in that format, and the KV cache at the mean position). Models have random weights with the
 * residual branches scaled up, so that greedy decoding does not collapse onto one token.
 */
import { backend } from "../src/native/index.js";
import { GPT, generate, gptConfig } from "../src/models/gpt/index.js";
import { useInferenceWeights, type WeightFormat } from "../src/models/inference_weights.js";
import { setFusedDecode } from "../src/nn/layers.js";
import { onnxBytes } from "../src/interop/onnx/export.js";
import { OnnxGPT } from "../src/interop/runtimes.js";

type Row = Record<string, string | number | boolean>;
const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

export const DECODE_CONFIGS: Record<string, { vocab: number; d: number; layers: number; heads: number }> = {
  small: { vocab: 4096, d: 128, layers: 4, heads: 4 },
  S: { vocab: 4096, d: 256, layers: 4, heads: 4 },
  M: { vocab: 8192, d: 512, layers: 8, heads: 8 },
};

export interface DecodeBenchOptions {
  configs?: string[];
  threads?: number[];
  rounds: number;
  newTokens?: number;
  /** onnxruntime rows (default true). */
  onnx?: boolean;
}

export async function decodeBench(o: DecodeBenchOptions, emit: (row: Row) => void): Promise<void> {
  const configs = o.configs ?? ["small", "S", "M"], threadCounts = o.threads ?? [1, 2], newTokens = o.newTokens ?? 100;
  const prev = backend.threads();
  const bandwidthAt = new Map<number, number>();
  for (const t of threadCounts) {
    backend.setThreads(t);
    bandwidthAt.set(t, backend.memoryBandwidth(1024, 3));
  }
  try {
    for (const name of configs) {
      const c = DECODE_CONFIGS[name];
      if (c === undefined) throw new Error(`bench decode: unknown config ${name} (${Object.keys(DECODE_CONFIGS).join(", ")})`);
      const model = new GPT(gptConfig({ vocab_size: c.vocab, n_embd: c.d, n_layer: c.layers, n_head: c.heads, n_positions: 256, initializer_range: 0.1 }), { seed: 5 });
      model.eval();
      for (const b of model.transformer.h) for (const l of [b.attn.c_proj, b.mlp.c_proj]) l.weight.data.subarray(0, l.weight.size).forEach((v, i, a) => (a[i] = v * 10));
      const prompt = Array.from({ length: 16 }, (_, i) => (i * 37 + 11) % c.vocab);
      const kvBytes = 2 * c.layers * c.d * 4 * (prompt.length + newTokens / 2);
      const bytes = new Map<WeightFormat, number>();
      for (const f of ["fp32", "bf16", "int8"] as WeightFormat[]) bytes.set(f, useInferenceWeights(model, f).packedBytes);
      useInferenceWeights(model, "fp32");
      for (const t of threadCounts) {
        backend.setThreads(t);
        // The probe again before each group: a busy spell on a shared machine lowers a single
        // probe, so the limit uses the best measured so far at this thread count.
        bandwidthAt.set(t, Math.max(bandwidthAt.get(t)!, backend.memoryBandwidth(1024, 3)));
        const ortF = o.onnx === false ? null : await OnnxGPT.create(onnxBytes(model), model.config, t);
        const ortQ = o.onnx === false ? null : await OnnxGPT.create(onnxBytes(model, { int8: true }), model.config, t);
        const plinth = (weights: WeightFormat, fused: boolean) => () => {
          useInferenceWeights(model, weights);
          const prevFused = setFusedDecode(fused);
          try {
            return generate(model, prompt, { maxNewTokens: newTokens, temperature: 0 }).tokens;
          } finally {
            setFusedDecode(prevFused);
          }
        };
        const runs: { impl: string; weights: WeightFormat; path: string; fn: () => number[] | Promise<number[]> }[] = [
          { impl: "plinth", weights: "fp32", path: "ops", fn: plinth("fp32", false) },
          { impl: "plinth", weights: "fp32", path: "fused", fn: plinth("fp32", true) },
          { impl: "plinth", weights: "bf16", path: "fused", fn: plinth("bf16", true) },
          { impl: "plinth", weights: "int8", path: "fused", fn: plinth("int8", true) },
        ];
        if (ortF !== null && ortQ !== null) {
          runs.push({ impl: "onnxruntime", weights: "fp32", path: "", fn: () => ortF.greedy(prompt, newTokens) });
          runs.push({ impl: "onnxruntime", weights: "int8", path: "", fn: () => ortQ.greedy(prompt, newTokens) });
        }
        const outputs: number[][] = [];
        for (const run of runs) outputs.push(await run.fn());  // warm-up, and each runner's tokens
        const times = runs.map(() => [] as number[]);
        for (let r = 0; r < o.rounds; r++) {
          for (const [i, run] of runs.entries()) {
            const t0 = performance.now();
            await run.fn();
            times[i].push((performance.now() - t0) / 1000);
          }
        }
        useInferenceWeights(model, "fp32");
        const tps = (i: number) => newTokens / median(times[i]);
        const base = tps(1);
        const ortIndex = (w: WeightFormat) => runs.findIndex((r) => r.impl === "onnxruntime" && r.weights === w);
        runs.forEach((run, i) => {
          const limit = bandwidthAt.get(t)! / (bytes.get(run.weights)! + kvBytes);
          let same = 0;
          while (same < newTokens && outputs[i][same] === outputs[1][same]) same++;
          const row: Row = { bench: "decode", config: name, threads: t, impl: run.impl, weights: run.weights, path: run.path, tokens_per_s: round(tps(i)),
            best_tokens_per_s: round(newTokens / Math.min(...times[i])), vs_plinth_fp32_fused: round(tps(i) / base, 2) + "x",
            bandwidth_gb_per_s: round(bandwidthAt.get(t)! / 1e9), weight_mb: round(bytes.get(run.weights)! / 1e6), bandwidth_limit_tokens_per_s: round(limit),
            of_limit: round((100 * tps(i)) / limit) + "%", best_of_limit: round((100 * newTokens) / Math.min(...times[i]) / limit) + "%", same_tokens_as_plinth_fp32: `${same}/${newTokens}` };
          const ort = ortIndex(run.weights);
          if (run.impl === "plinth" && run.path === "fused" && ort >= 0) row.vs_onnxruntime = round(tps(i) / tps(ort), 2) + "x";
          emit(row);
        });
      }
    }
  } finally {
    backend.setThreads(prev);
  }
}
