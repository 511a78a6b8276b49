/**
 * The suite: one k-shot curve per task of a suite (tasks/suite.ts), every task with the same
 * defaults (no per-task tuning), then ONE table (task x k x method: accuracy, and the gap to
 * scratch with its 95% interval, paired by seed) and ONE plot of the gap to scratch per task
 * and k (suite_report.ts).
 *
 *     const r = await runSuite({ base: "runs/default", suite: "core", methods: ["auto", "probe", "scratch"], ks: [8, 16], seeds: 3 });
 *     writeSuite("docs/adapt/suite", r);    // table.md, gap.svg, results.json
 */
import type { AdaptMethod, AdaptProgress, AdaptSpec } from "../adapt/run.js";
import { baseIdentity } from "../adapt/artifact.js";
import { suiteTasks } from "../tasks/suite.js";
import { type CurveMethod, type CurveResult, type CurveRun, type Shots, kShotCurve } from "./harness.js";

export interface SuiteSpec {
  base: string;
  /** A suite name (core, quick) or an explicit list of task names. */
  suite: string | string[];
  methods: CurveMethod[];
  ks: Shots[];
  seeds: number;
  maxTest?: number;
  workers?: boolean;
  overrides?: Partial<AdaptSpec>;
  autoCandidates?: AdaptMethod[];
  /** Called after each task's curve (e.g. to write it at once). */
  onTask?: (curve: CurveResult, index: number, total: number) => void;
  onRun?: (task: string, done: number, total: number, label: string, run: CurveRun | null) => void;
  onProgress?: (task: string, label: string, p: AdaptProgress) => void;
}

export interface SuiteResult {
  suite: string;
  base: string;
  baseSha256: string;
  methods: CurveMethod[];
  ks: Shots[];
  seeds: number;
  maxTest: number | null;
  tasks: CurveResult[];
  seconds: number;
}

export async function runSuite(spec: SuiteSpec): Promise<SuiteResult> {
  const start = Date.now();
  const names = typeof spec.suite === "string" ? suiteTasks(spec.suite) : [...spec.suite];
  if (names.length === 0) throw new RangeError("runSuite: the suite has no tasks");
  if (!spec.methods.includes("scratch")) throw new RangeError(`runSuite: the methods must include scratch (the baseline every gap is measured against); got ${spec.methods.join(", ")}`);
  const identity = baseIdentity(spec.base);
  const tasks: CurveResult[] = [];
  for (const [i, task] of names.entries()) {
    const curve = await kShotCurve({
      base: spec.base, task, methods: spec.methods, ks: spec.ks, seeds: spec.seeds, maxTest: spec.maxTest, workers: spec.workers,
      overrides: spec.overrides, autoCandidates: spec.autoCandidates,
      onRun: (d, t, r, label) => spec.onRun?.(task, d, t, label, r),
      onProgress: (label, p) => spec.onProgress?.(task, label, p),
    });
    tasks.push(curve);
    spec.onTask?.(curve, i, names.length);
  }
  return {
    suite: typeof spec.suite === "string" ? spec.suite : names.join(","), base: spec.base, baseSha256: identity.sha256,
    methods: spec.methods, ks: spec.ks, seeds: spec.seeds, maxTest: spec.maxTest ?? null, tasks, seconds: (Date.now() - start) / 1000,
  };
}
