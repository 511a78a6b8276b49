/** `plinth export` and `plinth import`: Hugging Face folders, ONNX and GGUF. */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { loadSource } from "../data/sources.js";
import { exportHF, importHF, SUPPORTED, type HFImport } from "../interop/hf.js";
import { exportGGUF, gptFromGGUF, tokenizerFromGGUF } from "../interop/gguf_gpt2.js";
import { decodeGGUF } from "../interop/gguf_read.js";
import { exportONNX } from "../interop/onnx/export.js";
import { LlamaGGUF, OnnxGPT, onnxMaskedAccuracy, plinthPerplexity } from "../interop/runtimes.js";
import { architectureOf, can, contextLength, vocabSize } from "../models/registry.js";
import { UsageError, parseIntArg } from "./args.js";

export const exportHelp = `plinth export — write a saved model as a Hugging Face folder, ONNX or GGUF

Usage: plinth export --model <dir> --format hf|onnx|gguf --out <path> [--quantize int8] [--eval <source>]

  --model     a folder with config.json + model.safetensors (+ tokenizer.json): a Plinth run or a Hugging Face folder
  --format    hf    config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json
              onnx  the hf files + onnx/model.onnx (GPT: decoder with past key/values, as transformers.js loads it;
                    BERT: encoder + MLM head; CLIP: onnx/text_model.onnx + onnx/vision_model.onnx)
              gguf  one .gguf file for llama.cpp (GPT only; architecture gpt2)
  --out       output folder (hf, onnx) or file (gguf; a folder gets model.gguf inside)
  --quantize  int8: ONNX also writes onnx/model_quantized.onnx (int8 weights, per-channel scales);
              GGUF writes Q8_0 weights. The change is measured and printed: perplexity for GPT,
              masked-token accuracy for BERT.
  --eval      text to measure perplexity on with --quantize (a data source; default moby-dick)
  --threads   threads for onnxruntime / llama.cpp when measuring (default 1)

Examples:
  plinth export --model runs/default --format onnx --out exports/default-onnx --quantize int8
  plinth export --model runs/default --format gguf --out exports/default.gguf`;

export const importHelp = `plinth import — load a Hugging Face folder (or a gpt2 GGUF file) into Plinth

Usage: plinth import <folder | file.gguf> [--out <dir>]

  Reads config.json, model.safetensors (or sharded model-*.safetensors), tokenizer.json,
  tokenizer_config.json and generation_config.json; supports ${SUPPORTED}.
  A .gguf file of llama.cpp's gpt2 architecture (F32, F16 or Q8_0 tensors) loads too.
  Checks that the tokenizer files agree with the model. With --out, saves the model as a
  Plinth folder that plinth generate / fill-mask / embed read.

Examples:
  plinth import exports/default-hf
  plinth import ./gpt2-checkpoint --out runs/imported`;

function describe(m: HFImport): string {
  const params = m.model.parameters().reduce((s, p) => s + p.size, 0);
  const arch = architectureOf(m.model);
  return `${arch.title}: ${(params / 1e6).toFixed(2)}M parameters (${arch.shape(m.model)}), vocab ${vocabSize(m.model)}; tokenizer ${m.tokenizer ? `${m.tokenizer.vocabSize} tokens` : "none (no tokenizer.json)"}`;
}

function evalTokens(m: HFImport, source: string): number[] {
  if (m.tokenizer === null) throw new Error("export: --quantize measures perplexity and needs the model's tokenizer.json");
  const text = loadSource(source).docs.map((d) => d.text).join("\n").slice(0, 200_000);
  return m.tokenizer.encode(text, { specialTokens: false });
}

const pct = (a: number, b: number): string => `${(((b - a) / a) * 100).toFixed(3)}%`;

export async function runExport(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { model: { type: "string" }, format: { type: "string" }, out: { type: "string" }, quantize: { type: "string" }, eval: { type: "string" }, threads: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return void console.log(exportHelp);
  if (values.model === undefined) throw new UsageError("--model is required");
  if (values.out === undefined) throw new UsageError("--out is required");
  const format = values.format;
  if (format !== "hf" && format !== "onnx" && format !== "gguf") throw new UsageError(`--format must be hf, onnx or gguf, got ${JSON.stringify(format)}`);
  if (values.quantize !== undefined && values.quantize !== "int8") throw new UsageError(`--quantize must be int8, got ${JSON.stringify(values.quantize)}`);
  if (values.quantize !== undefined && format === "hf") throw new UsageError("--quantize applies to --format onnx and gguf");
  const threads = parseIntArg("threads", values.threads, 1, 1);
  const m = importHF(values.model);
  console.log(describe(m));
  const ctx = can(m.model, "generate") ? Math.min(128, contextLength(m.model) - 1) : 0;

  if (format === "hf") {
    const files = exportHF(values.out, m.model, m.tokenizer);
    console.log(`wrote ${values.out}: ${files.join(", ")}`);
    return;
  }
  if (format === "onnx") {
    const files = exportONNX(values.out, m.model, m.tokenizer, { int8: values.quantize === "int8" });
    for (const f of files) console.log(`wrote ${f} (${(statSync(f).size / 1e6).toFixed(2)} MB)`);
    if (values.quantize === "int8") {
      if (can(m.model, "fill-mask")) {
        const maskId = m.tokenizer?.tokenToId("[MASK]");
        if (maskId === undefined) return void console.log("(no [MASK] token in the tokenizer: the int8 file's accuracy is not measured)");
        const tokens = evalTokens(m, values.eval ?? "moby-dick");
        const T = Math.min(128, contextLength(m.model));
        const f = await onnxMaskedAccuracy(files[0], tokens, { maskId, T, threads });
        const q = await onnxMaskedAccuracy(files[1], tokens, { maskId, T, threads });
        console.log(`onnxruntime masked-token top-1 accuracy on ${values.eval ?? "moby-dick"} (${f.masked} masks): float32 ${(100 * f.accuracy).toFixed(2)}%, int8 ${(100 * q.accuracy).toFixed(2)}% (${(100 * (q.accuracy - f.accuracy)).toFixed(2)} points)`);
        return;
      }
      if (!can(m.model, "generate")) {
        console.log("(perplexity is measured for GPT exports and masked accuracy for BERT; CLIP's int8 towers are written without a measurement)");
        return;
      }
      const tokens = evalTokens(m, values.eval ?? "moby-dick");
      const pf = await (await OnnxGPT.create(files[0], m.model.config, threads)).perplexity(tokens, ctx, 16);
      const pq = await (await OnnxGPT.create(files[1], m.model.config, threads)).perplexity(tokens, ctx, 16);
      console.log(`onnxruntime perplexity on ${values.eval ?? "moby-dick"} (${16 * ctx} tokens): float32 ${pf.toFixed(3)}, int8 ${pq.toFixed(3)} (${pct(pf, pq)})`);
    }
    return;
  }
  if (!can(m.model, "generate")) throw new Error(`export: --format gguf writes GPT-2 models (llama.cpp's gpt2 architecture); ${values.model} holds a ${m.kind} model`);
  if (m.tokenizer === null) throw new Error(`export: GGUF files carry their tokenizer; ${values.model} has no tokenizer.json`);
  const out = existsSync(values.out) && statSync(values.out).isDirectory() ? join(values.out, "model.gguf") : values.out;
  const q8 = values.quantize === "int8";
  exportGGUF(out, m.model, m.tokenizer, { quantize: q8 ? "q8_0" : undefined, name: basename(values.model) });
  console.log(`wrote ${out} (${(statSync(out).size / 1e6).toFixed(2)} MB${q8 ? ", Q8_0 weights" : ""})`);
  if (q8) {
    const tokens = evalTokens(m, values.eval ?? "moby-dick");
    const pPlinth = plinthPerplexity(m.model, tokens, ctx, 16);
    const pQ8Plinth = plinthPerplexity(gptFromGGUF(readFileSync(out), out), tokens, ctx, 16);
    console.log(`Plinth perplexity on ${values.eval ?? "moby-dick"} (${16 * ctx} tokens): float32 ${pPlinth.toFixed(3)}, Q8_0 weights ${pQ8Plinth.toFixed(3)} (${pct(pPlinth, pQ8Plinth)})`);
    // The same model in float32, in a temporary file, gives llama.cpp's own baseline.
    const tmp = mkdtempSync(join(tmpdir(), "plinth-gguf-"));
    try {
      exportGGUF(join(tmp, "f32.gguf"), m.model, m.tokenizer);
      const pf = await llamaPerplexity(join(tmp, "f32.gguf"), tokens, ctx, threads);
      const pq = await llamaPerplexity(out, tokens, ctx, threads);
      console.log(`llama.cpp perplexity: float32 ${pf.toFixed(3)}, Q8_0 ${pq.toFixed(3)} (${pct(pf, pq)})`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}

async function llamaPerplexity(path: string, tokens: number[], ctx: number, threads: number): Promise<number> {
  const llama = await LlamaGGUF.load(path, threads);
  try {
    return await llama.perplexity(tokens, ctx, 16);
  } finally {
    await llama.dispose();
  }
}

/** A gpt2 GGUF file (llama.cpp) as an import: weights dequantized to float32, its tokenizer rebuilt. */
function importGGUF(path: string): HFImport {
  if (!existsSync(path)) throw new Error(`import: ${path} does not exist`);
  const g = decodeGGUF(readFileSync(path), path);
  const model = gptFromGGUF(g, path);
  return { kind: architectureOf(model).modelType, model, tokenizer: tokenizerFromGGUF(g, path), generation: null, notes: [`read from GGUF (file type ${String(g.metadata["general.file_type"])})`] };
}

export async function runImport(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) return void console.log(importHelp);
  if (positionals.length !== 1) throw new UsageError(`expected one folder (or .gguf file), got ${positionals.length}`);
  const m = positionals[0].endsWith(".gguf") ? importGGUF(positionals[0]) : importHF(positionals[0]);
  console.log(describe(m));
  for (const n of m.notes) console.log(`note: ${n}`);
  if (m.generation !== null) console.log(`generation_config: ${JSON.stringify(m.generation)}`);
  if (values.out !== undefined) {
    const files = exportHF(values.out, m.model, m.tokenizer);
    console.log(`saved ${values.out}: ${files.join(", ")}`);
  }
}
