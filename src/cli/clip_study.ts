/**
 * `npm run clip:study`: CLIP pretraining on the built-in emoji set for several seeds, each
 * with the same step budget (a time budget is fitted from the first steps' speed, which on a
 * shared machine varies between seeds), then held-out zero-shot accuracy over the 9 emoji groups,
 * retrieval recall@k and a linear probe, with the mean and its 95% interval over seeds.
 * An untrained model (step 0) is scored the same way as a control. Writes
 * runs/clip-study/{summary.json,summary.md,heldout.svg} and one run folder per seed.
 *
 *     node dist/src/cli/clip_study.js --seeds 1,2,3 --steps 1200     (or --time 3m per seed)
 */
import { rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { meanCI, type Interval } from "../tasks/metrics.js";
import { lineChartSvg } from "../train/plot.js";
import { parseDuration, parseIntArg } from "./args.js";
import { pretrainContrastive, type HeldOutScores } from "../eval/clip_run.js";
import { printHeldOut } from "./clip.js";

interface SeedRow {
  seed: number;
  steps: number;
  seconds: number;
  imagesPerSecond: number;
  heldOut: HeldOutScores;
}

/** Each seed trains for `steps` (comparable across seeds whatever the machine's load) or, without steps, for `seconds`. */
function scored<R extends { heldOut: HeldOutScores | null }>(run: R): R & { heldOut: HeldOutScores } {
  if (run.heldOut === null) throw new Error("clip study: the run was not scored (it ran as a rank other than 0 of a data-parallel job)");
  return run as R & { heldOut: HeldOutScores };
}

export async function clipStudy({ seeds, seconds, steps, size, outDir, batch }: { seeds: number[]; seconds?: number; steps?: number; size: string; outDir: string; batch: number }): Promise<void> {
  if (steps === undefined && seconds === undefined) throw new Error("clipStudy: give steps or seconds per seed");
  const budget = steps !== undefined ? `${steps} steps (${steps * batch} images)` : `${seconds}s`;
  const root = resolve(outDir);
  const common = { size, batch, lr: 5e-4, warmup: 50, vocab: 1024, testFraction: 0.2, cacheDir: join(root, ".cache") };
  rmSync(join(root, "control"), { recursive: true, force: true });
  // One process: every run is rank 0 of its own and is scored (heldOut is null only on the other ranks of a data-parallel run).
  const control = scored(await pretrainContrastive({ ...common, outDir: join(root, "control"), steps: 0, seed: seeds[0], quiet: true }));
  console.log("control: the untrained model (step 0)");
  printHeldOut(control.heldOut);
  const rows: SeedRow[] = [];
  const curves: { name: string; color: string; points: [number, number][] }[] = [];
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
  for (const seed of seeds) {
    const dir = join(root, `seed-${seed}`);
    rmSync(dir, { recursive: true, force: true });
    console.log(`\nseed ${seed}: ${budget} of training`);
    const run = scored(await pretrainContrastive({ ...common, outDir: dir, ...(steps !== undefined ? { steps } : { seconds }), seed }));
    printHeldOut(run.heldOut);
    rows.push({ seed, steps: run.result.steps, seconds: run.result.seconds, imagesPerSecond: run.result.images / run.result.seconds, heldOut: run.heldOut });
    curves.push({ name: `seed ${seed}`, color: colors[curves.length % colors.length], points: [[0, 100 * control.heldOut.zeroShot!.accuracy], ...run.result.history.filter((r) => r.scores?.zeroShot !== undefined).map((r) => [r.images, 100 * r.scores!.zeroShot] as [number, number])] });
  }
  const ci = (f: (h: HeldOutScores) => number): Interval => meanCI(rows.map((r) => f(r.heldOut)));
  const summary = {
    seeds, stepsPerSeed: steps ?? null, secondsPerSeed: seconds ?? null, size, batch, heldOutImages: rows[0].heldOut.images, trainImages: control.train.items.length,
    control: control.heldOut,
    zeroShot: ci((h) => h.zeroShot!.accuracy), probe: ci((h) => h.probe!.accuracy),
    imageToText: { r1: ci((h) => h.retrieval.imageToText.r1), r5: ci((h) => h.retrieval.imageToText.r5), r10: ci((h) => h.retrieval.imageToText.r10) },
    textToImage: { r1: ci((h) => h.retrieval.textToImage.r1), r5: ci((h) => h.retrieval.textToImage.r5), r10: ci((h) => h.retrieval.textToImage.r10) },
    runs: rows,
  };
  writeFileSync(join(root, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  const fmt = (i: Interval) => `${pct(i.mean)} (95% CI ${pct(i.low)}–${pct(i.high)})`;
  const perSeed = (f: (h: HeldOutScores) => number) => rows.map((r) => pct(f(r.heldOut))).join(" / ");
  const md = [
    `| held-out metric (${summary.heldOutImages} unseen emoji) | untrained | mean over seeds ${seeds.join(", ")} | per seed |`,
    "|---|---|---|---|",
    `| zero-shot accuracy, 9 groups (chance 11.1%) | ${pct(control.heldOut.zeroShot!.accuracy)} | ${fmt(summary.zeroShot)} | ${perSeed((h) => h.zeroShot!.accuracy)} |`,
    `| linear probe accuracy, 9 groups | ${pct(control.heldOut.probe!.accuracy)} | ${fmt(summary.probe)} | ${perSeed((h) => h.probe!.accuracy)} |`,
    ...(["r1", "r5", "r10"] as const).map((k) => `| image→text recall@${k.slice(1)} | ${pct(control.heldOut.retrieval.imageToText[k])} | ${fmt(summary.imageToText[k])} | ${perSeed((h) => h.retrieval.imageToText[k])} |`),
    ...(["r1", "r5", "r10"] as const).map((k) => `| text→image recall@${k.slice(1)} | ${pct(control.heldOut.retrieval.textToImage[k])} | ${fmt(summary.textToImage[k])} | ${perSeed((h) => h.retrieval.textToImage[k])} |`),
    "",
    `Training: ${budget} per seed; ${rows.map((r) => `seed ${r.seed}: ${r.steps} steps in ${r.seconds.toFixed(0)}s (${r.imagesPerSecond.toFixed(0)} images/s)`).join("; ")}.`,
  ].join("\n");
  writeFileSync(join(root, "summary.md"), md + "\n");
  const chance = { name: "chance (1/9)", color: "#7f7f7f", points: [[0, 100 / 9], [Math.max(...curves.flatMap((c) => c.points.map((p) => p[0]))), 100 / 9]] as [number, number][] };
  writeFileSync(join(root, "heldout.svg"), lineChartSvg([...curves, chance], { title: `CLIP on emoji: zero-shot accuracy on ${summary.heldOutImages} unseen emoji (9 groups)`, xLabel: "images seen", yLabel: "held-out zero-shot accuracy (%)" }));
  console.log(`\n${md}\n\nwrote ${join(root, "summary.json")}, summary.md, heldout.svg`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { seeds: { type: "string" }, time: { type: "string" }, steps: { type: "string" }, size: { type: "string" }, out: { type: "string" }, batch: { type: "string" } } });
  const seeds = (values.seeds ?? "1,2,3").split(",").map((s) => parseIntArg("seeds", s.trim(), 0));
  const steps = values.steps !== undefined ? parseIntArg("steps", values.steps, 0, 1) : undefined;
  const seconds = values.time !== undefined ? parseDuration(values.time) : steps === undefined ? 180 : undefined;
  await clipStudy({ seeds, seconds, steps, size: values.size ?? "tiny", outDir: values.out ?? "runs/clip-study", batch: parseIntArg("batch", values.batch, 64, 2) });
}
