/**
 * ONNX export folders, laid out as transformers.js and Optimum expect: the Hugging Face
 * files (config.json, tokenizer.json, tokenizer_config.json, generation_config.json,
 * model.safetensors) plus `onnx/model.onnx`, and with int8 weights also
 * `onnx/model_quantized.onnx` (transformers.js loads it with dtype "q8"). CLIP's towers
 * go to `onnx/text_model.onnx` and `onnx/vision_model.onnx` (and their `_quantized` twins).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../../io/atomic.js";
import type { ClipModel } from "../../models/clip/index.js";
import { type AnyModel, type TextModel, can } from "../../models/registry.js";
import type { BPETokenizer } from "../../tokenizer/index.js";
import { exportHF } from "../hf.js";
import { bertGraph } from "./bert.js";
import { clipTextGraph, clipVisionGraph } from "./clip.js";
import { gptGraph } from "./gpt.js";
import { encodeModel } from "./model.js";

export interface OnnxExportOptions {
  /** Also write onnx/model_quantized.onnx with int8 weights (per output channel, DequantizeLinear). */
  int8?: boolean;
}

/** The serialized ModelProto of a GPT or BERT model. */
export function onnxBytes(model: TextModel, options: { int8?: boolean } = {}): Uint8Array {
  const graph = can(model, "generate") ? gptGraph(model, options) : bertGraph(model, options);
  return encodeModel({ graph, metadata: { source: "plinth", weights: options.int8 ? "int8" : "float32" } });
}

/** Writes the folder; returns the paths of the ONNX files. */
/** CLIP's towers, as onnx/text_model.onnx and onnx/vision_model.onnx. */
export function clipOnnxBytes(model: ClipModel, options: { int8?: boolean } = {}): { text: Uint8Array; vision: Uint8Array } {
  const metadata = { source: "plinth", weights: options.int8 ? "int8" : "float32" };
  return { text: encodeModel({ graph: clipTextGraph(model, options), metadata }), vision: encodeModel({ graph: clipVisionGraph(model, options), metadata }) };
}

export function exportONNX(dir: string, model: AnyModel, tokenizer: BPETokenizer | null, options: OnnxExportOptions = {}): string[] {
  exportHF(dir, model, tokenizer);
  mkdirSync(join(dir, "onnx"), { recursive: true });
  if (can(model, "score-images")) {
    const files: string[] = [];
    for (const int8 of options.int8 ? [false, true] : [false]) {
      const { text, vision } = clipOnnxBytes(model, { int8 });
      const suffix = int8 ? "_quantized" : "";
      files.push(join(dir, "onnx", `text_model${suffix}.onnx`), join(dir, "onnx", `vision_model${suffix}.onnx`));
      writeFileAtomic(files[files.length - 2], text);
      writeFileAtomic(files[files.length - 1], vision);
    }
    return files;
  }
  const files = [join(dir, "onnx", "model.onnx")];
  writeFileAtomic(files[0], onnxBytes(model));
  if (options.int8) {
    files.push(join(dir, "onnx", "model_quantized.onnx"));
    writeFileAtomic(files[1], onnxBytes(model, { int8: true }));
  }
  return files;
}
