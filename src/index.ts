/**
 * Plinth as a library: `import { ... } from "plinth"`. The same high-level functions the
 * `plinth` command calls, for each stage of a foundation model's life: pretraining (a whole
 * run with `pretrain`, or the `Trainer` with an objective over prepared token shards),
 * tokenizers, models and generation, adaptation to labeled tasks (adapters bound to their
 * base), evaluation (k-shot curves, perplexity, audits), serving, and interchange formats.
 * Lower layers (tensors, kernels, layers) stay internal; their folders' index.ts describe them.
 *
 *     import { pretrain, loadGPT, tokenizerFor, generate } from "plinth";
 *     await pretrain({ data: ["moby-dick"], size: "tiny", steps: 200, vocab: 512, outDir: "runs/moby" });
 *     const model = loadGPT("runs/moby"), tok = tokenizerFor("runs/moby");
 *     const { tokens } = generate(model, Array.from(tok.encode("Call me ")), { maxNewTokens: 40, temperature: 0 });
 *     console.log("Call me " + tok.decode(tokens));
 */

// Pretraining: a whole run (tokenizer, shards, model, trainer, checkpoints), or its parts.
export { pretrain, trainTokenizer, PRETRAIN_DEFAULTS } from "./cli/pretrain.js";
export type { PretrainOptions, PretrainRun } from "./cli/pretrain.js";
export { Trainer } from "./train/trainer.js";
export type { Objective, TrainerOptions, TrainResult, StepRecord, TrainableModel } from "./train/trainer.js";
export { clm, mlm, languageModeling } from "./train/language.js";
export type { TokenTask, LanguageModelingOptions } from "./train/language.js";

// Data: sources (built-ins, files, folders, globs, JSONL), prepared token shards.
export { prepareCorpus } from "./data/prepare.js";
export type { PrepareOptions, PreparedCorpus, CorpusManifest } from "./data/prepare.js";
export { loadSources, BUILTIN_SOURCES } from "./data/sources.js";
export type { Doc, SourceFile } from "./data/sources.js";
export { MemoryTokens, ShardedTokens } from "./data/tokens.js";
export type { TokenSource } from "./data/tokens.js";

// Tokenizers: byte-level BPE in Hugging Face's tokenizer.json format.
export { BPETokenizer, trainBPE } from "./tokenizer/index.js";
export type { TrainBPEOptions } from "./tokenizer/index.js";
export { BPETextTokenizer, ByteTextTokenizer, tokenizerFor, withAddedTokens } from "./data/tokenizer.js";
export type { TextTokenizer } from "./data/tokenizer.js";

// Models and generation: any saved model folder by its config's model_type, or one family.
export { loadModel, saveModel, MODEL_TYPES } from "./models/registry.js";
export type { AnyModel } from "./models/registry.js";
export { useInferenceWeights, WEIGHT_FORMATS } from "./models/inference_weights.js";
export type { WeightFormat, InferenceWeightsReport } from "./models/inference_weights.js";
export { withPrecision, PRECISIONS } from "./tensor/precision.js";
export type { Precision } from "./tensor/precision.js";
export { GPT, gptConfig, GPT_PRESETS, saveGPT, loadGPT, generate } from "./models/gpt/index.js";
export type { GPTConfig, GenerateOptions, GenerateResult } from "./models/gpt/index.js";
export { BertForMaskedLM, bertConfig, BERT_PRESETS, saveBert, loadBert } from "./models/bert/index.js";
export type { BertConfig } from "./models/bert/index.js";
export { ClipModel, clipConfig, CLIP_PRESETS, saveClip, loadClip } from "./models/clip/index.js";
export type { ClipConfig } from "./models/clip/index.js";

// Adaptation: one call per method, an adapter artifact bound to its base.
export { runAdaptation, ADAPT_METHODS } from "./adapt/run.js";
export type { AdaptSpec, AdaptMethod, AdaptOutcome, AdaptOptions, AdaptProgress, AdapterManifest } from "./adapt/run.js";
export { loadAdapted } from "./adapt/apply.js";
export type { AdaptedModel } from "./adapt/apply.js";
export { readAdapterManifest, AdapterError } from "./adapt/artifact.js";
export { loadBase } from "./adapt/base.js";
export type { LoadedBase } from "./adapt/base.js";
export { startAdaptationWorker } from "./adapt/worker.js";

// Tasks and metrics: labeled data (built-ins, JSONL/CSV files), k-shot samples, scores.
export { builtinTask, BUILTIN_TASKS, loadTaskFiles, resolveTask, sampleKShot } from "./tasks/index.js";
export type { Task, Example } from "./tasks/index.js";
export { accuracy, macroF1, expectedCalibrationError, meanCI } from "./tasks/index.js";

// Evaluation: k-shot curves against a from-scratch baseline, perplexity, audits.
export { kShotCurve } from "./eval/harness.js";
export type { CurveSpec, CurveResult, Shots } from "./eval/harness.js";
export { writeCurve, curveTable } from "./eval/report.js";
export { perplexity } from "./eval/perplexity.js";
export type { Perplexity } from "./eval/perplexity.js";
export { runAudit } from "./eval/audit.js";
export type { AuditReport } from "./eval/audit.js";
export { readProbeSuite } from "./eval/probes.js";
export type { ProbeSuite } from "./eval/probes.js";

// Serving: the OpenAI-compatible server over a registry.
export { createServer } from "./serve/index.js";
export type { PlinthServer, ServerOptions } from "./serve/index.js";
export { Registry } from "./registry/index.js";

// Interchange: Hugging Face folders, ONNX, GGUF.
export { exportHF, importHF } from "./interop/hf.js";
export type { HFImport } from "./interop/hf.js";
export { exportONNX } from "./interop/onnx/export.js";
export { exportGGUF } from "./interop/gguf_gpt2.js";
