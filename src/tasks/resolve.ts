/**
 * A task by name: a built-in task, or a JSONL/CSV file of {text, label} (or {text_a, text_b,
 * label}) rows.
 *
 *     resolveTask("sentiment");                 // built-in
 *     resolveTask("data/reviews.jsonl", { test: "data/reviews-test.jsonl" });
 */
import { existsSync } from "node:fs";
import { basename, extname } from "node:path";
import { BUILTIN_TASKS, builtinTask } from "./builtin.js";
import { SUITE_TASKS, suiteTask } from "./suite.js";
import { type Task, TaskError, loadTaskFiles } from "./task.js";

/** A built-in task name, or a JSONL/CSV path (a stratified 20% is held out for testing unless `test` is given). */
export function resolveTask(spec: string, { seed = 0, test, labels }: { seed?: number; test?: string; labels?: string[] } = {}): Task {
  if (Object.hasOwn(BUILTIN_TASKS, spec)) return builtinTask(spec, { seed });
  if (Object.hasOwn(SUITE_TASKS, spec)) return suiteTask(spec, { seed });
  if (!existsSync(spec)) {
    throw new TaskError(`unknown task ${JSON.stringify(spec)}: neither a built-in task (${[...Object.keys(BUILTIN_TASKS), ...Object.keys(SUITE_TASKS)].join(", ")}) nor an existing JSONL/CSV file`);
  }
  return loadTaskFiles({ name: basename(spec, extname(spec)), train: spec, test, labels, seed });
}
