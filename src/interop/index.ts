/**
 * Interop: Plinth's models where people already run models, and their checkpoints in
 * Plinth. Hugging Face folders both ways (GPT2LMHeadModel, BertForMaskedLM, CLIPModel:
 * config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
 * generation_config.json); ONNX graphs written by our own protobuf encoder (GPT with
 * past key/values as transformers.js loads it, BERT encoder + MLM head, CLIP towers),
 * optionally with int8 weights; GGUF v3 for llama.cpp's gpt2 architecture, optionally
 * Q8_0. `runtimes.ts` drives onnxruntime-node and llama.cpp (node-llama-cpp) for checks,
 * perplexity and benchmarks.
 *
 *     const { model, tokenizer } = importHF("checkpoints/gpt2-tiny");
 *     exportONNX("out/onnx", model, tokenizer, { int8: true });     // out/onnx/onnx/model.onnx
 *     exportGGUF("out/model.gguf", model as GPT, tokenizer!, { quantize: "q8_0" });
 *     const llama = await LlamaGGUF.load("out/model.gguf");
 *     await llama.greedy(tokenizer!.encode("Call me"), 20);         // the same tokens as generate()
 */
export { exportHF, importHF, vocabSize, SUPPORTED } from "./hf.js";
export type { HFImport, HFModel } from "./hf.js";
export { readWeights, type WeightDict } from "../models/checkpoint.js";
export { exportONNX, onnxBytes, clipOnnxBytes } from "./onnx/export.js";
export type { OnnxExportOptions } from "./onnx/export.js";
export { encodeModel } from "./onnx/model.js";
export type { OnnxModel, OnnxGraph, OnnxNode, OnnxTensor } from "./onnx/model.js";
export { gptGraph } from "./onnx/gpt.js";
export { bertGraph } from "./onnx/bert.js";
export { clipTextGraph, clipVisionGraph } from "./onnx/clip.js";
export { GraphBuilder, quantizeInt8 } from "./onnx/graph.js";
export { encodeGGUF, saveGGUF, encodeTensor, quantizeQ8_0, dequantizeQ8_0, GGMLType, GGUFValueType } from "./gguf.js";
export { decodeGGUF, tensorValues } from "./gguf_read.js";
export type { GGUFContents, GGUFTensorInfo } from "./gguf_read.js";
export { exportGGUF, gpt2GGUF, gptFromGGUF, tokenizerFromGGUF } from "./gguf_gpt2.js";
export type { GGUFExportOptions } from "./gguf_gpt2.js";
export { OnnxGPT, LlamaGGUF, plinthPerplexity, loadOrt } from "./runtimes.js";
