/**
 * `--methods auto`: choose an adaptation method per task and k from the k labels alone. The
 * k·classes labeled examples are cut into stratified folds (4, or k when k < 4; at k = 1 there
 * is nothing to hold out and the first candidate is taken); every candidate method is trained on
 * the other folds and scored on the held-out one, the best mean accuracy wins (a tie within
 * half a held-out example goes to the cheaper method), and the winner is trained on all k labels
 * and scored on the test split. The folds are tasks of their own (makeTask over the labeled
 * examples), so no test example is ever seen before the final score.
 *
 *     const r = await runAuto({ base: "runs/default", labelsPerClass: 8, seed: 0 }, task);
 *     r.picked;   // e.g. "probe"
 *     r.cv;       // [{ method: "probe", accuracy: 0.71 }, ...]
 */
import { ADAPT_METHODS, type AdaptMethod, type AdaptOptions, type AdaptOutcome, type AdaptSpec, runAdaptation, trainingExamples } from "../adapt/run.js";
import { type Example, type Task, TaskError, makeTask, shuffled } from "../tasks/task.js";

/**
 * Methods ordered by what they cost to train and to serve; a tie goes to the earlier one. A
 * method not named here (a newly registered one) counts as dearer than all of these.
 */
const COST_ORDER = ["zero-shot", "prototype", "knn", "probe", "few-shot", "head", "setfit", "lora", "full"];
const cost = (m: string): number => (COST_ORDER.includes(m) ? COST_ORDER.indexOf(m) : COST_ORDER.length);

/** The methods auto considers by default: every registered method that adapts the base (scratch is the baseline it is compared with). */
export function autoCandidates(): AdaptMethod[] {
  return [...ADAPT_METHODS].filter((m) => m !== "scratch").sort((a, b) => cost(a) - cost(b)) as AdaptMethod[];
}

export interface AutoChoice {
  method: AdaptMethod;
  /** Mean held-out accuracy over the folds. */
  accuracy: number;
  folds: number;
}

export interface AutoOutcome extends Omit<AdaptOutcome, "method"> {
  method: "auto";
  picked: AdaptMethod;
  cv: AutoChoice[];
  /** Seconds spent on cross-validation (the final run's are in `trainSeconds`). */
  cvSeconds: number;
}

/** Stratified folds: each label's examples (shuffled by seed) dealt round-robin over `n` folds. */
export function stratifiedFolds(examples: Example[], n: number, seed: number): Example[][] {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`stratifiedFolds: n must be an integer >= 2, got ${n}`);
  const folds: Example[][] = Array.from({ length: n }, () => []);
  let at = 0;
  for (const label of [...new Set(examples.map((e) => e.label))].sort()) {
    for (const e of shuffled(examples.filter((x) => x.label === label), seed)) folds[at++ % n].push(e);
  }
  return folds;
}

/** Fold count for k labels per class: 4, or k itself below 4 (leave-one-per-class-out), none at k = 1. */
export const foldCount = (k: number): number => (k >= 4 ? 4 : k >= 2 ? k : 0);

export interface AutoSpec extends Omit<AdaptSpec, "method" | "task" | "labelsPerClass"> {
  labelsPerClass: number;
  /** Methods to choose among (default autoCandidates()). */
  candidates?: AdaptMethod[];
}

/** Cross-validates the candidates on the labeled examples of `task` (k per class, seeded) and returns their mean held-out accuracies. */
export async function crossValidate(spec: AutoSpec, task: Task, opts: Pick<AdaptOptions, "signal"> = {}): Promise<AutoChoice[]> {
  const k = spec.labelsPerClass;
  const candidates = spec.candidates ?? autoCandidates();
  if (candidates.length === 0) throw new TaskError("auto: no candidate methods to choose among");
  for (const m of candidates) {
    if (!(ADAPT_METHODS as readonly string[]).includes(m) || m === "scratch") throw new TaskError(`auto: ${JSON.stringify(m)} is not a candidate; candidates are methods of ${ADAPT_METHODS.filter((x) => x !== "scratch").join(", ")}`);
  }
  const n = foldCount(k);
  if (n === 0) return [{ method: candidates[0], accuracy: Number.NaN, folds: 0 }];
  const labeled = trainingExamples(task, k, spec.seed ?? 0);
  const folds = stratifiedFolds(labeled, n, (spec.seed ?? 0) + 104729);
  const out: AutoChoice[] = [];
  for (const method of candidates) {
    let correct = 0, total = 0;
    for (let f = 0; f < n; f++) {
      const held = folds[f], rest = folds.filter((_, j) => j !== f).flat();
      // A fold task holds only labeled examples: its "test" split is the held-out fold.
      const foldTask = makeTask(`${task.name}/fold${f}`, rest, held, task.labels);
      if (task.prompt !== undefined) foldTask.prompt = task.prompt;
      const { candidates: _c, labelsPerClass: _k, ...common } = spec;
      const r = await runAdaptation({ ...common, method, task: foldTask.name, labelsPerClass: "all", out: undefined, maxTest: undefined, checkpointDir: undefined }, { task: foldTask, signal: opts.signal });
      correct += r.metrics.accuracy * r.testExamples;
      total += r.testExamples;
    }
    out.push({ method, accuracy: correct / total, folds: n });
  }
  return out;
}

/** The winner of a cross-validation: best accuracy; within half an example of it, the cheapest. */
export function pickMethod(cv: AutoChoice[], heldOut: number): AdaptMethod {
  if (cv.length === 0) throw new TaskError("auto: nothing was cross-validated");
  if (cv.length === 1 || cv.every((c) => Number.isNaN(c.accuracy))) return cv[0].method;
  const best = Math.max(...cv.map((c) => c.accuracy));
  const tol = 0.5 / Math.max(1, heldOut);
  return cv.filter((c) => c.accuracy >= best - tol).sort((a, b) => cost(a.method) - cost(b.method))[0].method;
}

/** auto end to end: cross-validate on the k labels, train the winner on all of them, score the test split. */
export async function runAuto(spec: AutoSpec, task: Task, opts: AdaptOptions = {}): Promise<AutoOutcome> {
  const start = Date.now();
  const k = spec.labelsPerClass;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`auto: labelsPerClass must be an integer >= 1, got ${k}`);
  const cv = await crossValidate(spec, task, opts);
  const cvSeconds = (Date.now() - start) / 1000;
  const picked = pickMethod(cv, k * task.labels.length);
  const { candidates: _c, ...rest } = spec;
  const final = await runAdaptation({ ...rest, method: picked, task: task.name, labelsPerClass: k }, { ...opts, task });
  return { ...final, method: "auto", picked, cv, cvSeconds, seconds: (Date.now() - start) / 1000 };
}
