/** `plinth eval --suite <name>`: k-shot curves on every task of a suite, one table and one plot; and `--methods auto`. */
import { join } from "node:path";
import { ADAPT_METHODS, type AdaptMethod, type AdaptSpec } from "../adapt/run.js";
import { autoCandidates } from "../eval/auto.js";
import type { CurveMethod, Shots } from "../eval/harness.js";
import { runSuite } from "../eval/suite.js";
import { suiteTable, writeSuite } from "../eval/suite_report.js";
import { writeCurve } from "../eval/report.js";
import { SUITES, suiteTasks } from "../tasks/suite.js";
import { Progress } from "../train/progress.js";
import { UsageError, parseIntArg } from "./args.js";

export const suiteHelp = `  --suite     run every task of a suite (${Object.entries(SUITES).map(([n, t]) => `${n}: ${t.join(", ")}`).join("; ")})
              with the same defaults; writes one table.md (task x k x method, gap to scratch with its 95% CI),
              one gap.svg and results.json to --out (default runs/eval/suite-<name>); default --methods
              auto,probe,scratch and --k 8,16
  --auto-candidates  the methods auto chooses among (default: ${autoCandidates().join(", ")})`;

const METHOD_NAMES = (): string[] => [...ADAPT_METHODS, "auto"];

/** --methods (adaptation methods and "auto") and --auto-candidates, checked. */
export function parseCurveMethods(methods: string, candidates: string | undefined): { methods: CurveMethod[]; autoCandidates?: AdaptMethod[] } {
  const list = methods.split(",").map((m) => m.trim()).filter((m) => m !== "");
  for (const m of list) if (!METHOD_NAMES().includes(m)) throw new UsageError(`unknown method "${m}"; methods are ${METHOD_NAMES().join(", ")}`);
  if (list.length === 0) throw new UsageError("--methods lists no method");
  let auto: AdaptMethod[] | undefined;
  if (candidates !== undefined) {
    auto = candidates.split(",").map((m) => m.trim()).filter((m) => m !== "") as AdaptMethod[];
    for (const m of auto) if (!(ADAPT_METHODS as readonly string[]).includes(m) || m === "scratch") throw new UsageError(`--auto-candidates: "${m}" is not an adaptation method (${ADAPT_METHODS.filter((x) => x !== "scratch").join(", ")})`);
    if (auto.length === 0) throw new UsageError("--auto-candidates lists no method");
  }
  return { methods: list as CurveMethod[], autoCandidates: auto };
}

function parseKs(text: string): Shots[] {
  return text.split(",").map((t) => {
    const v = t.trim() === "all" ? "all" : Number(t.trim());
    if (v !== "all" && (!Number.isInteger(v) || v < 0)) throw new UsageError(`--k values must be non-negative integers or "all", got "${t}"`);
    return v;
  });
}

const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;

export async function runSuiteEval(values: Record<string, string | boolean | undefined>, overrides: Partial<AdaptSpec>, maxTest: number): Promise<void> {
  const str = (k: string): string | undefined => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const name = str("suite")!;
  if (str("task") !== undefined) throw new UsageError("give --suite or --task, not both");
  let tasks: string[];
  try {
    tasks = suiteTasks(name);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { methods, autoCandidates: candidates } = parseCurveMethods(str("methods") ?? "auto,probe,scratch", str("auto-candidates"));
  if (!methods.includes("scratch")) throw new UsageError("--suite needs scratch among --methods: every gap is measured against it");
  const ks = parseKs(str("k") ?? "8,16");
  const seeds = parseIntArg("seeds", str("seeds"), 3, 1);
  const out = str("out") ?? join("runs", "eval", `suite-${name}`);
  let bar: Progress | null = null;
  const result = await runSuite({
    base: str("base")!, suite: name, methods, ks, seeds, maxTest, workers: values.workers === true, overrides, autoCandidates: candidates,
    onRun: (task, d, t, label, r) => {
      bar ??= new Progress(`suite ${task}`);
      bar.update(d / t, { run: `${d}/${t}`, last: `${label}${r === null ? "" : `: ${pct(r.metrics.accuracy)}`}` }, d === t);
    },
    onTask: (curve, i, total) => {
      bar?.done();
      bar = null;
      writeCurve(join(out, curve.task), curve);
      console.log(`[${i + 1}/${total}] ${curve.task}: ${curve.runs.length} runs in ${curve.seconds.toFixed(0)}s`);
    },
  });
  const paths = writeSuite(out, result);
  console.log(suiteTable(result));
  console.log(`wrote ${paths.table}, ${paths.svg} and ${paths.json} (${tasks.length} tasks, ${result.seconds.toFixed(0)}s); each task's curve in ${out}/<task>/`);
}
