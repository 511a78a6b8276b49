/**
 * Adaptation of one base to many tasks with few or no labels. Every method is one call,
 * `runAdaptation`, and produces an adapter artifact holding only what changed, bound to its base
 * by content hash; `loadAdapted` applies one (and refuses another base's). Methods: zero-/few-shot
 * prompting by label likelihood (causal LM) or cloze (masked LM) with contextual calibration; a
 * linear probe on frozen pooled embeddings; head fine-tuning (frozen body); full fine-tuning;
 * LoRA; and the from-scratch baseline. Long runs go to a worker process (`startAdaptationWorker`).
 *
 *     const r = await runAdaptation({ base: "runs/default", method: "lora", task: "sentiment", labelsPerClass: 32, out: "runs/sentiment-lora" });
 *     loadAdapted("runs/sentiment-lora", "runs/default").predict(["What a fine film."]);
 */
export * from "./zeroshot.js";
export * from "./probe.js";
export * from "./artifact.js";
export * from "./lora.js";
export * from "./classifier.js";
export * from "./finetune.js";
export * from "./base.js";
export * from "./run.js";
export * from "./apply.js";
export { runSteps, DEFAULT_PIECE_TOKENS, DEFAULT_PIECE_CHARS } from "./steps.js";
export type { PieceOptions, PiecePlan, PieceDone, Steps } from "./steps.js";
export * from "./worker.js";
