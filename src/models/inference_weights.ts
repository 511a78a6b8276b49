/**
 * A model's matrices held as bf16 or int8 for inference (`--weights` of generate, eval, embed
 * and serve): every Linear gets its weight packed (tensor/ops/packed.ts) and a GPT its tied LM
 * head; LayerNorms, embeddings, biases and the KV cache stay float32. Loading a model with
 * `loadModel(dir, { weights })` goes through here; training ignores packed weights (any product
 * that needs a gradient reads the float32 ones), and "fp32" drops them again.
 *
 *     const model = loadModel("runs/default", { weights: "int8" });
 *     useInferenceWeights(model, "bf16");   // or switch later
 */
import type { Module } from "../nn/module.js";
import { namedLinears } from "../nn/layers.js";
import { PackedWeight, type WeightFormat } from "../tensor/ops/packed.js";
import { GPT } from "./gpt/model.js";

export { WEIGHT_FORMATS, parseWeightFormat, type WeightFormat } from "../tensor/ops/packed.js";

export interface InferenceWeightsReport {
  format: WeightFormat;
  /** Matrices packed (Linears and a tied head). */
  matrices: number;
  /** Bytes of those matrices as float32, and as packed (equal for fp32). */
  fp32Bytes: number;
  packedBytes: number;
}

/** Packs (or, with "fp32", unpacks) every matrix of `model` for inference. */
export function useInferenceWeights(model: Module, format: WeightFormat): InferenceWeightsReport {
  if (format !== "fp32" && format !== "bf16" && format !== "int8") throw new RangeError(`useInferenceWeights: format "${format}", expected fp32, bf16 or int8`);
  const report: InferenceWeightsReport = { format, matrices: 0, fp32Bytes: 0, packedBytes: 0 };
  const pack = (w: Parameters<typeof PackedWeight.pack>[0], layout: "in_out" | "out_in"): PackedWeight | null => {
    report.matrices++;
    report.fp32Bytes += w.size * 4;
    if (format === "fp32") {
      report.packedBytes += w.size * 4;
      return null;
    }
    const p = PackedWeight.pack(w, layout, format);
    report.packedBytes += p.byteLength;
    return p;
  };
  for (const layer of namedLinears(model).values()) layer.packed = pack(layer.weight, layer.layout);
  if (model instanceof GPT) model.headPacked = pack(model.transformer.wte.weight, "out_in");
  return report;
}
