/**
 * `npm run bench -- --only interop`: Plinth's own generation speed beside the same model
 * exported and run by onnxruntime-node (ONNX, float32 and int8 weights) and llama.cpp
 * (node-llama-cpp, GGUF float32 and Q8_0), in one run, at the same thread count: greedy
 * decoding with each runtime's KV cache, a 16-token prompt, tokens/s over the new tokens
 * (Plinth on float32 weights and packed bf16 and int8, as `plinth generate --weights`)
 * (prefill included), best of 5 interleaved rounds. The continuations are compared too: float32 runtimes should agree
 * with Plinth token for token.
 *
 * Models: GPT configs "small" (d 128, 4 layers, vocab 4096; the size of `npm start`'s
 * model) and S (d 256, 4 layers, vocab 4096), with random weights scaled up so that greedy
 * decoding does not collapse onto one token; the tokenizer is BPE trained on Moby Dick.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSource } from "../src/data/sources.js";
import { exportGGUF } from "../src/interop/gguf_gpt2.js";
import { onnxBytes } from "../src/interop/onnx/export.js";
import { LlamaGGUF, OnnxGPT } from "../src/interop/runtimes.js";
import { GPT, generate, gptConfig } from "../src/models/gpt/index.js";
import { useInferenceWeights } from "../src/models/inference_weights.js";
import { trainBPE } from "../src/tokenizer/index.js";

type Row = Record<string, string | number | boolean>;

const CONFIGS: Record<string, { d: number; layers: number; heads: number; ctx: number }> = {
  small: { d: 128, layers: 4, heads: 4, ctx: 128 },
  S: { d: 256, layers: 4, heads: 4, ctx: 128 },
  M: { d: 512, layers: 8, heads: 8, ctx: 256 },
};

const round = (v: number, digits = 1): number => Math.round(v * 10 ** digits) / 10 ** digits;

export async function interopBench({ threads, configs = ["small", "S"], newTokens = 100, reps = 5 }: { threads: number; configs?: string[]; newTokens?: number; reps?: number }): Promise<Row[]> {
  const rows: Row[] = [];
  const text = loadSource("moby-dick").docs.map((d) => d.text).join("\n");
  const tok = trainBPE([text.slice(0, 400_000)], { vocabSize: 4096 });
  const prompt = tok.encode("Call me Ishmael. Some years ago, never mind how long precisely, having little", { specialTokens: false }).slice(0, 16);
  const dir = mkdtempSync(join(tmpdir(), "plinth-bench-interop-"));
  try {
    for (const name of configs) {
      const c = CONFIGS[name];
      if (c === undefined) throw new Error(`bench interop: unknown config ${name} (${Object.keys(CONFIGS).join(", ")})`);
      const make = (): GPT => new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: c.d, n_layer: c.layers, n_head: c.heads, n_positions: c.ctx, initializer_range: 0.1 }), { seed: 5 });
      const model = make();
      model.eval();
      // The same weights packed bf16 and int8 (plinth generate --weights), each its own copy.
      const packed = (["bf16", "int8"] as const).map((f) => {
        const m = make();
        m.eval();
        useInferenceWeights(m, f);
        return m;
      });
      const fp = join(dir, `${name}.gguf`), q8 = join(dir, `${name}-q8_0.gguf`);
      exportGGUF(fp, model, tok);
      exportGGUF(q8, model, tok, { quantize: "q8_0" });
      const ortF = await OnnxGPT.create(onnxBytes(model), model.config, threads);
      const ortQ = await OnnxGPT.create(onnxBytes(model, { int8: true }), model.config, threads);
      const llamaF = await LlamaGGUF.load(fp, threads), llamaQ = await LlamaGGUF.load(q8, threads);
      try {
        const runs: [string, string, () => Promise<number[]> | number[]][] = [
          ["plinth", "float32", () => generate(model, prompt, { maxNewTokens: newTokens }).tokens],
          ["plinth", "bf16", () => generate(packed[0], prompt, { maxNewTokens: newTokens }).tokens],
          ["plinth", "int8", () => generate(packed[1], prompt, { maxNewTokens: newTokens }).tokens],
          ["onnxruntime", "float32", () => ortF.greedy(prompt, newTokens)],
          ["onnxruntime", "int8", () => ortQ.greedy(prompt, newTokens)],
          ["llama.cpp", "float32", () => llamaF.greedy(prompt, newTokens)],
          ["llama.cpp", "q8_0", () => llamaQ.greedy(prompt, newTokens)],
        ];
        // Rounds interleave the runtimes and each keeps its best time, so that load from other
        // processes on a shared machine does not favour whichever runtime ran in a quiet moment.
        const best = runs.map(() => Infinity);
        const outputs: number[][] = [];
        for (const [i, [, , fn]] of runs.entries()) outputs[i] = await fn();
        for (let r = 0; r < reps; r++) {
          for (const [i, [, , fn]] of runs.entries()) {
            const t = performance.now();
            await fn();
            best[i] = Math.min(best[i], (performance.now() - t) / 1000);
          }
        }
        const base = newTokens / best[0];
        runs.forEach(([impl, weights], i) => {
          const tps = newTokens / best[i];
          let same = 0;
          while (same < newTokens && outputs[i][same] === outputs[0][same]) same++;
          rows.push({ impl, bench: "interop", config: name, weights, threads, new_tokens: newTokens, tokens_per_s: round(tps), vs_plinth: round(tps / base, 2) + "x", same_tokens_as_plinth: `${same}/${newTokens}` });
        });
        const at = (impl: string, weights: string): number => newTokens / best[runs.findIndex(([a, b]) => a === impl && b === weights)];
        rows.push({ impl: "ratio", bench: "interop", config: name, threads, plinth_int8_over_llama_q8_0: round(at("plinth", "int8") / at("llama.cpp", "q8_0"), 2) + "x",
          plinth_int8_over_onnxruntime_int8: round(at("plinth", "int8") / at("onnxruntime", "int8"), 2) + "x", plinth_fp32_over_onnxruntime_fp32: round(at("plinth", "float32") / at("onnxruntime", "float32"), 2) + "x",
          plinth_fp32_over_llama_fp32: round(at("plinth", "float32") / at("llama.cpp", "float32"), 2) + "x" });
      } finally {
        await llamaF.dispose();
        await llamaQ.dispose();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
