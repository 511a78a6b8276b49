/**
 * Task data, below adaptation and evaluation so that adapting never imports the evaluator:
 * labeled tasks (JSONL/CSV rows of {text, label} or {text_a, text_b, label}, and built-ins from
 * npm packages: sentiment, spam, sotu-party), seeded stratified splits, k-shot samples and the
 * seeded shuffle every sampler uses, and the metrics every method is scored with (accuracy,
 * macro-F1, calibration error, log loss, Student-t and bootstrap intervals).
 *
 *     const task = builtinTask("sentiment");                    // or loadTaskFiles({ name, train: "rows.jsonl" })
 *     const shots = sampleKShot(task, 8, 0);                    // 8 labeled examples per class
 *     const gold = task.test.map((e) => labelIndex(task, e.label));
 *     accuracy(pred, gold); macroF1(pred, gold); meanCI([0.71, 0.74, 0.69]);
 */
export * from "./task.js";
export { BUILTIN_TASKS, builtinTask, paragraphs } from "./builtin.js";
export { resolveTask } from "./resolve.js";
export { SUITES, SUITE_TASKS, suiteTask, suiteTasks, taskKind } from "./suite.js";
export type { BuiltinOptions } from "./builtin.js";
export * from "./metrics.js";
