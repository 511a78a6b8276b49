/**
 * Evaluation: labeled tasks (JSONL/CSV files and built-ins from npm packages), seeded splits
 * and k-shot samples, metrics with confidence intervals (accuracy, macro-F1, ECE, perplexity),
 * the k-shot harness with its from-scratch baseline, and the inherited-defect audit.
 *
 *     const task = builtinTask("sentiment");
 *     accuracy(pred, gold); macroF1(pred, gold); expectedCalibrationError(probs, gold); meanCI(scoresOverSeeds);
 *     const curve = await kShotCurve({ base: "runs/default", task: "sentiment", methods: ["probe", "lora", "scratch"], ks: [4, 32], seeds: 3 });
 *     writeCurve("runs/eval/sentiment", curve);
 *     runAudit({ base: "runs/default", adapters: ["runs/adapters/sentiment-lora"], suite: readProbeSuite("probes/sentiment.json") });
 *     zeroShot(clip, captions, imageFeatures(clip, test), labels, templates, gold);   // CLIP: also retrieval(), imageLinearProbe()
 */
export * from "./tasks.js";
export { paragraphs } from "./builtin.js";
export type { BuiltinOptions } from "./builtin.js";
export * from "./metrics.js";
export * from "./perplexity.js";
export * from "./harness.js";
export * from "./report.js";
export * from "./probes.js";
export * from "./audit.js";
export * from "./audit_report.js";
export * from "./clip.js";
