#!/usr/bin/env node
// The adaptation study behind README's numbers (long: tens of minutes on 2 cores; not part of npm test).
//   npm run study:adapt -- [--base runs/base-en] [--tasks sentiment,spam,sotu-party] [--seeds 3] [--max-test 400] [--out docs/adapt]
// For each task: k-shot curves of every method with 95% CIs and the paired gap to the from-scratch
// baseline (docs/adapt/<task>/{table.md,curve.svg,curve.json}); then LoRA beside full fine-tuning
// at k = 32: accuracy, trainable share, training time, peak memory (each run in its own worker
// process) and adapter size against the base's (docs/adapt/lora-vs-full.md).
import { parseArgs } from "node:util";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kShotCurve } from "../dist/src/eval/harness.js";
import { curveTable, writeCurve } from "../dist/src/eval/report.js";
import { startAdaptationWorker } from "../dist/src/adapt/worker.js";
import { Progress } from "../dist/src/train/progress.js";

const { values } = parseArgs({
  options: {
    base: { type: "string", default: "runs/base-en" }, tasks: { type: "string", default: "sentiment,spam,sotu-party" },
    seeds: { type: "string", default: "3" }, "max-test": { type: "string", default: "300" }, out: { type: "string", default: "docs/adapt" },
    ks: { type: "string", default: "0,1,2,4,8,16,32,64,all" },
  },
});
const seeds = Number(values.seeds), maxTest = Number(values["max-test"]);
const ks = values.ks.split(",").map((k) => (k === "all" ? "all" : Number(k)));
const pct = (v) => (100 * v).toFixed(1);
const mib = (b) => (b / 2 ** 20).toFixed(0);
const summary = [];

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
