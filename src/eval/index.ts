/**
 * Evaluation: labeled tasks (JSONL/CSV files and built-ins from npm packages), seeded splits
 * and k-shot samples, and the metrics with their confidence intervals.
 *
 *     const task = builtinTask("sentiment");
 *     const shots = sampleKShot(task, 8, 0);
 *     accuracy(pred, gold); macroF1(pred, gold); expectedCalibrationError(probs, gold);
 *     meanCI(scoresOverSeeds);
 */
export * from "./tasks.js";
export { paragraphs } from "./builtin.js";
export type { BuiltinOptions } from "./builtin.js";
export * from "./metrics.js";
