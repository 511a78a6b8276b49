/**
 * GPT-2: the causal-LM base model, its generation loop (KV cache; greedy, temperature,
 * top-k, top-p, stop tokens) and its safetensors + config.json checkpoint format.
 *
 *     const model = new GPT(gptConfig({ vocab_size: 4096, ...GPT_PRESETS.S }));
 *     const { loss } = model.forward(ids, targets);
 */
export { GPT, GPT2Transformer } from "./model.js";
export type { GPTOutput } from "./model.js";
export { gptConfig, validateConfig, GPT_PRESETS } from "./config.js";
export type { GPTConfig } from "./config.js";
export { generate, sampleToken, forwardCached, KVCache } from "./generate.js";
export type { GenerateOptions, GenerateResult, SamplingOptions } from "./generate.js";
export { saveGPT, loadGPT, readGPTConfig } from "./io.js";
