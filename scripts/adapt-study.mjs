#!/usr/bin/env node
// The adaptation study behind README's numbers (long: hours on 2 cores at the documented base; not part of npm test).
//   npm run study:adapt -- [--base runs/base-en] [--suite core] [--ks 8,16] [--seeds 3] [--max-test 300]
//                          [--methods auto,zero-shot,few-shot,probe,lora,full,scratch] [--auto-candidates ...] [--out docs/adapt]
// The suite (src/tasks/suite.ts): every task with the same defaults, k-shot runs at --ks, and
// --methods auto choosing a method per task, k and seed by cross-validation on the k labels
// alone; writes <out>/suite/{table.md,gap.svg,results.json} and each task's curve in <out>/suite/<task>/.
// With --curves as well: the earlier per-task curves (docs/adapt/<task>/{table.md,curve.svg,curve.json})
// and LoRA beside full fine-tuning at k = 32 (docs/adapt/lora-vs-full.md).
import { parseArgs } from "node:util";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kShotCurve } from "../dist/src/eval/harness.js";
import { curveTable, writeCurve } from "../dist/src/eval/report.js";
import { runSuite } from "../dist/src/eval/suite.js";
import { suiteTable, writeSuite } from "../dist/src/eval/suite_report.js";
import { startAdaptationWorker } from "../dist/src/adapt/worker.js";
import { Progress } from "../dist/src/train/progress.js";

const { values } = parseArgs({
  options: {
    base: { type: "string", default: "runs/base-en" }, tasks: { type: "string", default: "sentiment,spam,sotu-party" },
    seeds: { type: "string", default: "3" }, "max-test": { type: "string", default: "300" }, out: { type: "string", default: "docs/adapt" },
    ks: { type: "string", default: "8,16" }, "curve-ks": { type: "string", default: "0,1,2,4,8,16,32,64,all" },
    suite: { type: "string", default: "core" }, methods: { type: "string", default: "auto,zero-shot,few-shot,probe,lora,full,scratch" },
    "auto-candidates": { type: "string" }, curves: { type: "boolean", default: false },
  },
});
if (!existsSync(join(values.base, "config.json"))) {
  console.error(`study:adapt: no base at ${values.base}; pretrain one first (docs/adaptation.md has the recipe), e.g.\n  node dist/src/cli/main.js pretrain --size small --time 60m --out ${values.base}`);
  process.exit(1);
}
const seeds = Number(values.seeds), maxTest = Number(values["max-test"]);
const parseKs = (text) => text.split(",").map((k) => (k === "all" ? "all" : Number(k)));
const ks = parseKs(values["curve-ks"]);
const pct = (v) => (100 * v).toFixed(1);
const mib = (b) => (b / 2 ** 20).toFixed(0);
const summary = [];

// The suite: one table and one plot of the gap to scratch per task and k.
{
  const out = join(values.out, "suite");
  const started = Date.now();
  let bar = null;
  const result = await runSuite({
    base: values.base, suite: values.suite, methods: values.methods.split(","), ks: parseKs(values.ks), seeds, maxTest,
    autoCandidates: values["auto-candidates"]?.split(","),
    onRun: (task, d, t, label, r) => {
      bar ??= new Progress(`suite ${task}`);
      bar.update(d / t, { run: `${d}/${t}`, last: `${label} ${r ? pct(r.metrics.accuracy) + "%" : ""}` }, true);
    },
    onTask: (curve, i, n) => {
      bar?.done();
      bar = null;
      writeCurve(join(out, curve.task), curve);
      console.log(`[${i + 1}/${n}] ${curve.task} in ${curve.seconds.toFixed(0)}s (${((Date.now() - started) / 60000).toFixed(1)} min so far)`);
    },
  });
  const paths = writeSuite(out, result);
  console.log(suiteTable(result));
  console.log(`wrote ${paths.table}, ${paths.svg}, ${paths.json}`);
}
if (!values.curves) process.exit(0);

for (const task of values.tasks.split(",")) {
  const bar = new Progress(`study ${task}`);
  const onRun = (d, t, r, label) => bar.update(d / t, { run: `${d}/${t}`, last: `${label} ${r ? pct(r.metrics.accuracy) : "-"}%` }, true);
  // Few-shot demonstrations share the model's context with the query: beyond a few per class they no longer fit.
  const main = await kShotCurve({ base: values.base, task, methods: ["zero-shot", "probe", "lora", "scratch"], ks, seeds, maxTest, workers: true, onRun });
  const extra = await kShotCurve({ base: values.base, task, methods: ["few-shot", "head", "full", "scratch"], ks: ks.filter((k) => k === 4 || k === 32), seeds, maxTest, workers: true, onRun });
  bar.done();
  const merged = { ...main, points: [...main.points, ...extra.points.filter((p) => p.method !== "scratch")], gaps: [...main.gaps, ...extra.gaps], runs: [...main.runs, ...extra.runs.filter((r) => r.method !== "scratch")], seconds: main.seconds + extra.seconds };
  const paths = writeCurve(join(values.out, task), merged);
  console.log(curveTable(merged));
  console.log(`wrote ${paths.table}, ${paths.svg}, ${paths.json}`);
  summary.push(merged);
}

// LoRA beside full fine-tuning at k = 32, from the curves' runs (each ran in its own worker
// process, so peak RSS is that run's own), plus one written adapter per method for the file sizes.
const rows = ["| task | method | accuracy % (95% CI over seeds) | trainable parameters | train s | peak RSS MiB | adapter / base file |", "|---|---|---|---|---|---|---|"];
const baseBytes = statSync(join(values.base, "model.safetensors")).size;
// Every task with a curve in the output folder, including those of earlier invocations.
const curves = ["sentiment", "spam", "sotu-party"].map((t) => join(values.out, t, "curve.json")).filter((p) => existsSync(p)).map((p) => JSON.parse(readFileSync(p, "utf8")));
for (const c of curves) {
  for (const method of ["lora", "full"]) {
    const runs = c.runs.filter((r) => r.method === method && r.labelsPerClass === 32);
    if (runs.length === 0) continue;
    const point = c.points.find((p) => p.method === method && p.k === 32);
    const written = await startAdaptationWorker({ base: values.base, method, task: c.task, labelsPerClass: 32, maxTest, out: join("runs", "adapters", `${c.task}-${method}-32`) }).result;
    const mean = (f) => runs.reduce((s, r) => s + f(r), 0) / runs.length;
    const r = runs[0];
    rows.push(`| ${c.task} | ${method} | ${pct(point.accuracy.mean)} [${pct(point.accuracy.low)}, ${pct(point.accuracy.high)}] | ${r.trainableParameters.toLocaleString("en-US")} (${pct(r.trainableParameters / r.totalParameters)}%) | ${mean((x) => x.trainSeconds).toFixed(1)} | ${mib(mean((x) => x.peakRssBytes))} | ${pct(written.adapterBytes / baseBytes)}% |`);
  }
}
mkdirSync(values.out, { recursive: true });
writeFileSync(join(values.out, "lora-vs-full.md"), rows.join("\n") + "\n");
console.log(rows.join("\n"));
