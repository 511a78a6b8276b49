/**
 * Adaptation of one base to many tasks with few or no labels: zero-/few-shot prompting by
 * label likelihood (causal LM) or cloze (masked LM), with contextual calibration; linear
 * probes on frozen pooled embeddings; adapter artifacts bound to their base by content hash.
 *
 *     const { probs } = classifyCausal(gpt, tok, task.labels, task.test, {
 *       template: "Review: {text}\nSentiment:", verbalizers: { negative: " bad", positive: " good" }, calibrate: true });
 *     const { probe } = trainProbe(embedTexts(bert, tok, texts), y, task.labels.length);
 *     saveAdapter("runs/probe", { method: "probe", task: task.name, labels: task.labels, config: {}, base: baseIdentity("runs/bert") }, probeTensors(probe));
 */
export * from "./zeroshot.js";
export * from "./probe.js";
export * from "./artifact.js";
export * from "./lora.js";
