/**
 * The evaluation harness: k-shot curves of every method on one base and one task, over several
 * seeds, with 95% confidence intervals, and the gap to the from-scratch baseline paired by seed
 * (the same labeled examples for both sides of each difference).
 *
 *     const curve = await kShotCurve({ base: "runs/default", task: "sentiment", methods: ["probe", "lora", "scratch"], ks: [1, 4, 16, 32], seeds: 3 });
 *     writeCurve("runs/eval/sentiment", curve);    // curve.json, curve.svg, table.md
 *
 * The task's train/test split is fixed (seed 0) so that every run is scored on the same
 * examples; the seed picks which k examples per class are labeled and seeds the training.
 */
import type { AdaptMethod, AdaptOutcome, AdaptProgress, AdaptSpec } from "../adapt/run.js";
import { runAdaptation } from "../adapt/run.js";
import { resolveTask } from "../tasks/resolve.js";
import { startAdaptationWorker } from "../adapt/worker.js";
import { baseIdentity } from "../adapt/artifact.js";
import { type Interval, meanCI } from "../tasks/metrics.js";
import { type AutoChoice, runAuto } from "./auto.js";

export type Shots = number | "all";
/** A method of the harness: an adaptation method, or "auto" (one picked per run by cross-validation on its k labels: eval/auto.ts). */
export type CurveMethod = AdaptMethod | "auto";

export interface CurveSpec {
  base: string;
  task: string;
  methods: CurveMethod[];
  ks: Shots[];
  /** The methods "auto" chooses among (default: every method but scratch). */
  autoCandidates?: AdaptMethod[];
  seeds: number;
  maxTest?: number;
  /** Run each adaptation in its own worker process (clean memory figures; default false). */
  workers?: boolean;
  /** Passed to every run (steps, lr, lora options...). */
  overrides?: Partial<AdaptSpec>;
  onRun?: (done: number, total: number, outcome: AdaptOutcome | null, label: string) => void;
  onProgress?: (label: string, p: AdaptProgress) => void;
}

export interface CurvePoint {
  method: CurveMethod;
  k: Shots;
  n: number;
  accuracy: Interval;
  macroF1: Interval;
  ece: Interval;
  trainSeconds: number;
  trainableParameters: number;
  /** For auto: how often each method was picked over the seeds. */
  picked?: Record<string, number>;
}

export interface Gap {
  method: CurveMethod;
  k: Shots;
  /** Accuracy of the method minus the scratch baseline's, paired by seed. */
  accuracy: Interval;
}

/** One run's outcome; an auto run also says which method it picked and the cross-validation behind the pick. */
export type CurveRun = Omit<AdaptOutcome, "losses" | "method"> & { method: CurveMethod; picked?: AdaptMethod; cv?: AutoChoice[] };

export interface CurveResult {
  task: string;
  base: string;
  baseSha256: string;
  labels: string[];
  testExamples: number;
  /** Accuracy of always predicting the most frequent test label. */
  majority: number;
  points: CurvePoint[];
  gaps: Gap[];
  runs: CurveRun[];
  seconds: number;
}

/** Whether a method runs at a given k: zero-shot only at 0 (once; it has no randomness), the rest at k >= 1. */
export function applies(method: CurveMethod, k: Shots): boolean {
  if (method === "zero-shot") return k === 0;
  if (method === "auto") return k !== "all" && k >= 1;  // cross-validating every method on a whole training split would cost more than it tells
  if (method === "few-shot") return k !== "all" && k >= 1;
  return k === "all" || k >= 1;
}

export async function kShotCurve(spec: CurveSpec): Promise<CurveResult> {
  const start = Date.now();
  if (!Number.isInteger(spec.seeds) || spec.seeds < 1) throw new RangeError(`kShotCurve: seeds must be a positive integer, got ${spec.seeds}`);
  if (spec.methods.length === 0 || spec.ks.length === 0) throw new RangeError("kShotCurve: give at least one method and one k");
  const task = resolveTask(spec.task, { seed: spec.overrides?.splitSeed ?? 0, test: spec.overrides?.testFile, labels: spec.overrides?.labels });
  const identity = baseIdentity(spec.base);
  const plan: { method: CurveMethod; k: Shots; seed: number }[] = [];
  for (const k of spec.ks) {
    for (const method of spec.methods) {
      if (!applies(method, k)) continue;
      const seeds = method === "zero-shot" ? 1 : spec.seeds;
      for (let seed = 0; seed < seeds; seed++) plan.push({ method, k, seed });
    }
  }
  if (plan.length === 0) throw new RangeError(`kShotCurve: no (method, k) pair applies: zero-shot needs k = 0, the other methods k >= 1`);
  const runs: CurveRun[] = [];
  for (const [i, { method, k, seed }] of plan.entries()) {
    const label = `${method} k=${k} seed=${seed}`;
    const onProgress = (p: AdaptProgress): void => spec.onProgress?.(label, p);
    if (method === "auto") {
      // In this process: the folds are tasks built from the labeled examples, which a worker could not be handed by name.
      const { losses: _l, ...auto } = await runAuto({ ...spec.overrides, base: spec.base, labelsPerClass: k as number, seed, maxTest: spec.maxTest, out: undefined, candidates: spec.autoCandidates }, task, { onProgress });
      runs.push(auto);
      spec.onRun?.(i + 1, plan.length, null, `${label} (picked ${auto.picked})`);
      continue;
    }
    const runSpec: AdaptSpec = { ...spec.overrides, base: spec.base, task: spec.task, method, labelsPerClass: k, seed, maxTest: spec.maxTest, out: undefined };
    const outcome = spec.workers
      ? await startAdaptationWorker(runSpec, { onProgress }).result
      : await runAdaptation(runSpec, { task, onProgress });
    const { losses: _losses, ...kept } = outcome;
    runs.push(kept);
    spec.onRun?.(i + 1, plan.length, outcome, label);
  }

  const points: CurvePoint[] = [];
  const gaps: Gap[] = [];
  for (const k of spec.ks) {
    for (const method of spec.methods) {
      const mine = runs.filter((r) => r.method === method && r.labelsPerClass === k);
      if (mine.length === 0) continue;
      points.push({
        method, k, n: mine.length,
        accuracy: meanCI(mine.map((r) => r.metrics.accuracy)),
        macroF1: meanCI(mine.map((r) => r.metrics.macroF1)),
        ece: meanCI(mine.map((r) => r.metrics.ece)),
        trainSeconds: mine.reduce((s, r) => s + r.trainSeconds, 0) / mine.length,
        trainableParameters: mine[0].trainableParameters,
        ...(method === "auto" ? { picked: countPicks(mine) } : {}),
      });
      if (method === "scratch") continue;
      const scratch = runs.filter((r) => r.method === "scratch" && r.labelsPerClass === k);
      const paired = mine.flatMap((r) => {
        const s = scratch.find((x) => x.seed === r.seed);
        return s === undefined ? [] : [r.metrics.accuracy - s.metrics.accuracy];
      });
      if (paired.length > 0) gaps.push({ method, k, accuracy: meanCI(paired) });
    }
  }
  const counts = task.labels.map((l) => task.test.slice(0, spec.maxTest ?? task.test.length).filter((e) => e.label === l).length);
  const testExamples = counts.reduce((a, b) => a + b, 0);
  return {
    task: task.name, base: spec.base, baseSha256: identity.sha256, labels: task.labels, testExamples,
    majority: Math.max(...counts) / testExamples, points, gaps,
    runs,
    seconds: (Date.now() - start) / 1000,
  };
}

function countPicks(runs: CurveRun[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of runs) if (r.picked !== undefined) out[r.picked] = (out[r.picked] ?? 0) + 1;
  return out;
}
