/**
 * CLIP on the command line:
 *   plinth pretrain --objective contrastive   image–text pretraining (emoji by default, or a folder + JSONL)
 *   plinth zero-shot --image x.png --labels a,b,c
 *   plinth search --images <dir> --query "..."
 * Only help text and argument parsing live here: the pipelines are the library's, shared with the
 * server and the dashboard (pretrainContrastive in src/eval/clip_run.ts, zeroShotImage and
 * searchImages in src/eval/clip_images.ts, loadClipRun in src/data/clip_run.ts).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { GENERAL_IMAGE_PROMPTS } from "../data/templates.js";
import { loadClipRun } from "../data/clip_run.js";
import { CLIP_PRESETS } from "../models/clip/index.js";
import { searchImages, zeroShotImage } from "../eval/clip_images.js";
import { type HeldOutScores, pretrainContrastive } from "../eval/clip_run.js";
import { launchedRank } from "../native/mpi.js";
import { runRanks } from "./procs.js";
import { formatSeconds } from "../train/progress.js";
import { UsageError, optionalInt, parseDuration, parseFloatArg, parseIntArg, parsePositiveArg } from "./args.js";

export const contrastiveHelp = `plinth pretrain --objective contrastive — CLIP image–text pretraining

Usage: plinth pretrain --objective contrastive [--data emoji | --images <dir> [--captions <file.jsonl>]] [--template "a photo of a {label}." ...]
                       [--size tiny|small] [--time 3m | --steps N] [--out runs/clip] [options]

  --data emoji   the built-in set: every Noto Color Emoji glyph, captioned from its name and group (default)
  --images, --captions   a folder of images (PNG, JPEG, WebP, GIF, TIFF, AVIF, SVG) and a JSONL of {"file", "caption" | "captions", "label"?}
                 (a row with only a label is captioned from the templates); without --captions, one subfolder per label
  --template     prompt template with {label}, repeatable: captions labeled images and builds the zero-shot classes
                 (default for --images: ${GENERAL_IMAGE_PROMPTS.map((t) => JSON.stringify(t)).join(", ")}; the emoji set keeps its own)
  --image-size   pixels per side (default: the preset's, 32 for tiny); --batch (64), --lr (5e-4), --warmup (50)
  --test-fraction  share of images held out by image identity (default 0.2); --seed; --vocab (1024)
  --procs N      data-parallel over N processes on this machine (runs mpirun; needs Open MPI); --batch is the
                 global batch (a multiple of N): each rank encodes its share and the embeddings are all-gathered,
                 so the loss is the one-process InfoNCE over the whole batch. Under mpirun/srun it joins by itself.
  --bucket-mb    gradient bucket size for the all-reduce (default 25); --shard-optimizer: AdamW moments split across ranks
The run folder gets config.json + model.safetensors (Hugging Face CLIPModel names), tokenizer.json,
checkpoints/, metrics.jsonl, loss.svg and summary.json with held-out zero-shot, retrieval and probe scores.

Examples:
  plinth pretrain --objective contrastive --time 3m --out runs/clip
  plinth pretrain --objective contrastive --images photos/ --captions photos/captions.jsonl --steps 2000
  plinth pretrain --objective contrastive --images leaves/ --template "a photo of a {label} leaf." --steps 2000`;

export function printHeldOut(h: HeldOutScores): void {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  if (h.zeroShot !== null) {
    console.log(`zero-shot   ${pct(h.zeroShot.accuracy)} on ${h.images} held-out images over ${h.zeroShot.labels.length} labels (95% CI ${pct(h.zeroShot.low)}–${pct(h.zeroShot.high)}; chance ${pct(h.zeroShot.chance)})`);
  }
  const r = h.retrieval;
  console.log(`retrieval   image→text R@1 ${pct(r.imageToText.r1)} R@5 ${pct(r.imageToText.r5)} R@10 ${pct(r.imageToText.r10)} · text→image R@1 ${pct(r.textToImage.r1)} R@5 ${pct(r.textToImage.r5)} R@10 ${pct(r.textToImage.r10)} (${r.images} images)`);
  if (h.probe !== null) console.log(`linear probe ${pct(h.probe.accuracy)} (95% CI ${pct(h.probe.low)}–${pct(h.probe.high)})`);
}

export async function runPretrainContrastive(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      objective: { type: "string" }, data: { type: "string" }, images: { type: "string" }, captions: { type: "string" }, size: { type: "string" },
      "image-size": { type: "string" }, time: { type: "string" }, steps: { type: "string" }, out: { type: "string" }, batch: { type: "string" },
      lr: { type: "string" }, warmup: { type: "string" }, seed: { type: "string" }, vocab: { type: "string" }, "test-fraction": { type: "string" }, template: { type: "string", multiple: true },
      procs: { type: "string" }, "bucket-mb": { type: "string" }, "shard-optimizer": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(contrastiveHelp);
    return;
  }
  if (values.data !== undefined && values.data !== "emoji") throw new UsageError(`--data for contrastive pretraining must be "emoji" (or use --images with --captions), got "${values.data}"`);
  if (values.captions !== undefined && values.images === undefined) throw new UsageError("--captions needs --images (the folder its files are in)");
  if (values.data !== undefined && values.images !== undefined) throw new UsageError("give --data emoji or --images, not both");
  for (const t of values.template ?? []) if (!t.includes("{label}")) throw new UsageError(`--template ${JSON.stringify(t)} has no {label} placeholder (e.g. "a photo of a {label}.")`);
  const size = values.size ?? "tiny";
  if (!Object.hasOwn(CLIP_PRESETS, size)) throw new UsageError(`unknown --size "${size}" for contrastive (expected ${Object.keys(CLIP_PRESETS).join(", ")})`);
  const budget = { seconds: values.time ? parseDuration(values.time) : undefined, steps: values.steps ? parseIntArg("steps", values.steps, 0, 1) : undefined };
  if (budget.seconds === undefined && budget.steps === undefined) budget.seconds = 180;
  const testFraction = parseFloatArg("test-fraction", values["test-fraction"], 0.2);
  if (!(testFraction > 0 && testFraction < 1)) throw new UsageError(`--test-fraction must be in (0, 1), got ${testFraction}`);
  const options = {
    images: values.images, captions: values.captions, templates: values.template, size, imageSize: values["image-size"] ? parseIntArg("image-size", values["image-size"], 32, 8) : undefined,
    outDir: values.out ?? "runs/clip", ...budget, batch: parseIntArg("batch", values.batch, 64, 2), lr: parseFloatArg("lr", values.lr, 5e-4),
    warmup: parseIntArg("warmup", values.warmup, 50), seed: parseIntArg("seed", values.seed, 1234), vocab: parseIntArg("vocab", values.vocab, 1024, 261), testFraction,
    bucketMb: values["bucket-mb"] === undefined ? undefined : parsePositiveArg("bucket-mb", values["bucket-mb"], 25), shardOptimizer: values["shard-optimizer"],
  };
  const procs = optionalInt("procs", values.procs, 1);
  if (procs !== undefined && procs > 1 && launchedRank() === null) {
    await runRanks(procs, "pretrain", argv, { flag: "batch", value: options.batch }, "; rerun the same command to resume from the newest checkpoint");
    return;
  }
  const run = await pretrainContrastive(options);
  if (run.heldOut === null) return; // a rank other than 0: rank 0 reports
  console.log(`\ntrained on ${run.result.images.toLocaleString("en-US")} images in ${formatSeconds(run.result.seconds)} (${run.result.steps} steps, ${(run.result.images / run.result.seconds).toFixed(0)} images/s)`);
  printHeldOut(run.heldOut);
  if (run.parallel !== undefined) {
    const p = run.parallel;
    console.log(`data-parallel: ${p.world} ranks, ${p.buckets} gradient buckets, communication ${p.commSeconds.toFixed(2)} s over ${p.steps} steps, ${(100 * p.hiddenShare).toFixed(0)}% hidden behind backward; optimizer state ${(p.optimizerBytes / 1e6).toFixed(2)} MB on rank 0`);
  }
  console.log(`saved ${run.outDir}: config.json, model.safetensors, tokenizer.json, checkpoints/, metrics.jsonl, loss.svg, summary.json`);
}

export const zeroShotHelp = `plinth zero-shot — classify an image among labels it was never trained on (CLIP)

Usage: plinth zero-shot --model <dir> --image <file> --labels a,b,c [--template "a photo of {label}" ...]

Prints each label's probability. Several --template values are ensembled (default: the templates the
model was pretrained with, from its summary.json; else general ones: ${GENERAL_IMAGE_PROMPTS.map((t) => JSON.stringify(t)).join(", ")}).

Examples:
  plinth zero-shot --model runs/clip --image grin.png --labels "smileys & emotion,flags,food & drink"
  plinth zero-shot --model runs/clip --image x.png --labels cat,dog --template "a photo of a {label}"`;

/** The zero-shot templates a run was pretrained and scored with (summary.json), else general ones. */
function savedTemplates(dir: string): string[] {
  const path = join(dir, "summary.json");
  if (existsSync(path)) {
    const saved = (JSON.parse(readFileSync(path, "utf8")) as { heldOut?: { zeroShot?: { templates?: unknown } | null } }).heldOut?.zeroShot?.templates;
    if (Array.isArray(saved) && saved.length > 0 && saved.every((t) => typeof t === "string" && t.includes("{label}"))) return saved as string[];
  }
  return [...GENERAL_IMAGE_PROMPTS];
}

export async function runZeroShotImage(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: "string" }, image: { type: "string" }, labels: { type: "string" }, template: { type: "string", multiple: true }, help: { type: "boolean", short: "h" } } });
  if (values.help) return void console.log(zeroShotHelp);
  if (values.image === undefined || values.labels === undefined) throw new UsageError("--image and --labels are required");
  const labels = values.labels.split(",").map((l) => l.trim()).filter((l) => l !== "");
  if (labels.length < 2) throw new UsageError(`--labels needs at least two comma-separated labels, got ${JSON.stringify(values.labels)}`);
  const templates = values.template ?? savedTemplates(values.model ?? "runs/clip");
  for (const t of templates) if (!t.includes("{label}")) throw new UsageError(`--template ${JSON.stringify(t)} has no {label} placeholder`);
  const run = loadClipRun(values.model ?? "runs/clip");
  for (const { label, prob } of await zeroShotImage(run, values.image, labels, templates)) console.log(`${(100 * prob).toFixed(1).padStart(5)}%  ${label}`);
}

export const searchHelp = `plinth search — find the images in a folder that best match a text query (CLIP)

Usage: plinth search --model <dir> --images <dir> --query "<text>" [--top 5]

Examples:
  plinth search --model runs/clip --images pictures/ --query "a red apple"`;

export async function runSearch(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: "string" }, images: { type: "string" }, query: { type: "string" }, top: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) return void console.log(searchHelp);
  if (values.images === undefined || values.query === undefined) throw new UsageError("--images and --query are required");
  if (values.query.trim() === "") throw new UsageError("--query must not be empty");
  const run = loadClipRun(values.model ?? "runs/clip");
  const { hits, skipped } = await searchImages(run, values.images, values.query, parseIntArg("top", values.top, 5, 1));
  for (const s of skipped) console.error(`skipped ${s.reason}`);
  for (const h of hits) console.log(`${h.score.toFixed(3)}  ${h.file}`);
  if (hits.length === 0) throw new Error(`search: none of the images in ${values.images} could be read`);
}
