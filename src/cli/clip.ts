/**
 * CLIP on the command line:
 *   plinth pretrain --objective contrastive   image–text pretraining (emoji by default, or a folder + JSONL)
 *   plinth zero-shot --image x.png --labels a,b,c
 *   plinth search --images <dir> --query "..."
 * The pipeline functions (pretrainContrastive, zeroShotImage, searchImages) are what the
 * dashboard and the API call too.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { CaptionEncoder, trainCaptionTokenizer } from "../data/captions.js";
import { EMOJI_GROUP_PROMPTS, renderEmojiDataset } from "../data/emoji.js";
import { ImageError, decodeImage, loadImage, type ImageSource } from "../data/images.js";
import { listImages, loadFolderPairs, splitById, type PairDataset } from "../data/pairs.js";
import { tokenizerFor } from "../data/tokenizer.js";
import { BPETokenizer } from "../tokenizer/index.js";
import { CLIP_PRESETS, ClipModel, clipConfig, loadClip, saveClip } from "../models/clip/index.js";
import { embedImages, imageFeatures, imageLinearProbe, retrieval, textFeatures, zeroShot, type ClipProbeResult, type RetrievalResult, type ZeroShotImageResult } from "../eval/clip.js";
import { ContrastiveTrainer, type ContrastiveResult } from "../train/contrastive.js";
import { formatSeconds } from "../train/progress.js";
import { UsageError, parseDuration, parseFloatArg, parseIntArg } from "./args.js";

export const contrastiveHelp = `plinth pretrain --objective contrastive — CLIP image–text pretraining

Usage: plinth pretrain --objective contrastive [--data emoji | --images <dir> --captions <file.jsonl>]
                       [--size tiny|small] [--time 3m | --steps N] [--out runs/clip] [options]

  --data emoji   the built-in set: every Noto Color Emoji glyph, captioned from its name and group (default)
  --images, --captions   a folder of PNG/JPEG/WebP images and a JSONL of {"file", "caption" | "captions", "label"?}
  --image-size   pixels per side (default: the preset's, 32 for tiny); --batch (64), --lr (5e-4), --warmup (50)
  --test-fraction  share of images held out by image identity (default 0.2); --seed; --vocab (1024)
The run folder gets config.json + model.safetensors (Hugging Face CLIPModel names), tokenizer.json,
checkpoints/, metrics.jsonl, loss.svg and summary.json with held-out zero-shot, retrieval and probe scores.

Examples:
  plinth pretrain --objective contrastive --time 3m --out runs/clip
  plinth pretrain --objective contrastive --images photos/ --captions photos/captions.jsonl --steps 2000`;

export interface ContrastiveRunOptions {
  data?: "emoji";
  images?: string;
  captions?: string;
  size: string;
  imageSize?: number;
  outDir: string;
  seconds?: number;
  steps?: number;
  batch: number;
  lr: number;
  warmup: number;
  seed: number;
  vocab: number;
  testFraction: number;
  cacheDir?: string;
  quiet?: boolean;
}

export interface HeldOutScores {
  images: number;
  zeroShot: { accuracy: number; low: number; high: number; chance: number; labels: string[]; templates: string[] } | null;
  retrieval: RetrievalResult;
  probe: (Pick<ClipProbeResult, "accuracy" | "bestEpoch"> & { low: number; high: number }) | null;
}

export interface ContrastiveRun {
  outDir: string;
  model: ClipModel;
  encoder: CaptionEncoder;
  train: PairDataset;
  test: PairDataset;
  result: ContrastiveResult;
  heldOut: HeldOutScores;
}

async function loadPairs(o: ContrastiveRunOptions, size: number, cacheDir: string): Promise<PairDataset> {
  if (o.images !== undefined || o.captions !== undefined) {
    if (o.images === undefined || o.captions === undefined) throw new UsageError("--images and --captions go together");
    return loadFolderPairs(o.images, o.captions, { size, cacheDir });
  }
  return renderEmojiDataset({ size, cacheDir });
}

/** Zero-shot over the labels, retrieval by each image's first caption, and a linear probe, all on the held-out images. */
export function evaluateHeldOut(model: ClipModel, enc: CaptionEncoder, train: PairDataset, test: PairDataset, templates: readonly string[] = EMOJI_GROUP_PROMPTS): HeldOutScores {
  const testFeats = imageFeatures(model, test);
  // Retrieval uses each image's first caption (for emoji: its name), which tells images apart.
  const ret = retrieval(testFeats, textFeatures(model, enc, test.items.map((it) => it.captions[0])));
  const labels = train.labels.filter((l) => test.labels.includes(l));
  if (labels.length < 2) return { images: test.items.length, zeroShot: null, retrieval: ret, probe: null };
  const labelled = test.items.map((it, i) => ({ i, c: it.label === undefined ? -1 : labels.indexOf(it.label) })).filter((x) => x.c >= 0);
  const names = labels.map((l) => l.toLowerCase());
  const zs: ZeroShotImageResult = zeroShot(model, enc, labelled.map((x) => testFeats[x.i]), names, templates, labelled.map((x) => x.c));
  const trainFeats = imageFeatures(model, train);
  const trainRows = train.items.map((it, i) => ({ i, c: it.label === undefined ? -1 : labels.indexOf(it.label) })).filter((x) => x.c >= 0);
  const probe = imageLinearProbe(trainRows.map((x) => trainFeats[x.i]), trainRows.map((x) => x.c), labelled.map((x) => testFeats[x.i]), labelled.map((x) => x.c), labels.length);
  return {
    images: test.items.length,
    zeroShot: { accuracy: zs.accuracy!, low: zs.interval!.low, high: zs.interval!.high, chance: 1 / labels.length, labels, templates: [...templates] },
    retrieval: ret,
    probe: { accuracy: probe.accuracy, low: probe.interval.low, high: probe.interval.high, bestEpoch: probe.bestEpoch },
  };
}

export async function pretrainContrastive(o: ContrastiveRunOptions): Promise<ContrastiveRun> {
  const preset = CLIP_PRESETS[o.size];
  if (preset === undefined) throw new UsageError(`unknown --size "${o.size}" for contrastive (expected ${Object.keys(CLIP_PRESETS).join(", ")})`);
  const outDir = resolve(o.outDir);
  mkdirSync(outDir, { recursive: true });
  const size = o.imageSize ?? preset.vision.image_size!;
  const t0 = performance.now();
  const all = await loadPairs(o, size, o.cacheDir ?? join(outDir, "..", ".cache"));
  const { train, test } = splitById(all, o.testFraction, 0);
  if (!o.quiet) {
    console.log(`data: ${all.items.length} images at ${size}x${size} (${all.skipped.length} dropped) -> ${train.items.length} train / ${test.items.length} held-out by image, ${all.labels.length} labels, in ${formatSeconds((performance.now() - t0) / 1000)}`);
  }
  const tokPath = join(outDir, "tokenizer.json");
  const tokenizer = existsSync(tokPath) ? tokenizerFor(outDir) : trainCaptionTokenizer(train.items.flatMap((it) => it.captions), o.vocab);
  if (!existsSync(tokPath) && "bpe" in tokenizer) (tokenizer.bpe as BPETokenizer).save(tokPath);
  const T = preset.text.max_position_embeddings!;
  const enc = new CaptionEncoder(tokenizer, T);
  const config = clipConfig({
    projection_dim: preset.projection_dim,
    text_config: { ...preset.text, vocab_size: tokenizer.vocabSize, eos_token_id: enc.eos, bos_token_id: enc.eos, pad_token_id: enc.pad },
    vision_config: { ...preset.vision, image_size: size, patch_size: Math.min(preset.vision.patch_size!, size) },
  });
  const model = new ClipModel(config, { seed: o.seed });
  const labels = train.labels.filter((l) => test.labels.includes(l));
  const labelled = test.items.map((it, i) => ({ i, c: it.label === undefined ? -1 : labels.indexOf(it.label) })).filter((x) => x.c >= 0);
  // Held-out zero-shot accuracy at every evaluation, so the curve shows what training buys.
  const onEval = labels.length < 2 ? undefined : () => {
    const feats = imageFeatures(model, test);
    const zs = zeroShot(model, enc, labelled.map((x) => feats[x.i]), labels.map((l) => l.toLowerCase()), EMOJI_GROUP_PROMPTS, labelled.map((x) => x.c));
    return { zeroShot: zs.accuracy! };
  };
  const trainer = new ContrastiveTrainer({
    model, captions: enc, train, val: test, outDir, batch: o.batch, lr: o.lr, warmup: o.warmup, seconds: o.seconds, steps: o.steps, seed: o.seed, quiet: o.quiet,
    evalEvery: 100, onEval,
  });
  const resumed = trainer.resume();
  if (!o.quiet) {
    console.log(`model: CLIP ${o.size}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters (ViT ${size}px/${config.vision_config.patch_size} d=${config.vision_config.hidden_size}x${config.vision_config.num_hidden_layers}, text d=${config.text_config.hidden_size}x${config.text_config.num_hidden_layers}, ${tokenizer.vocabSize} tokens), batch ${o.batch}`);
    if (resumed !== null) console.log(`resuming from the checkpoint at step ${resumed}`);
  }
  const result = await trainer.run();
  saveClip(outDir, model, { objective: "contrastive" });
  const heldOut = evaluateHeldOut(model, enc, train, test);
  writeFileSync(join(outDir, "summary.json"), JSON.stringify({
    objective: "contrastive", size: o.size, imageSize: size, params: model.numParameters(), seed: o.seed, steps: result.steps, images: result.images,
    seconds: Math.round(result.seconds), imagesPerSecond: result.images / result.seconds, valLoss: result.valLoss, train: train.items.length, heldOut,
  }, null, 2) + "\n");
  return { outDir, model, encoder: enc, train, test, result, heldOut };
}

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
      lr: { type: "string" }, warmup: { type: "string" }, seed: { type: "string" }, vocab: { type: "string" }, "test-fraction": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(contrastiveHelp);
    return;
  }
  if (values.data !== undefined && values.data !== "emoji") throw new UsageError(`--data for contrastive pretraining must be "emoji" (or use --images with --captions), got "${values.data}"`);
  const budget = { seconds: values.time ? parseDuration(values.time) : undefined, steps: values.steps ? parseIntArg("steps", values.steps, 0, 1) : undefined };
  if (budget.seconds === undefined && budget.steps === undefined) budget.seconds = 180;
  const testFraction = parseFloatArg("test-fraction", values["test-fraction"], 0.2);
  if (!(testFraction > 0 && testFraction < 1)) throw new UsageError(`--test-fraction must be in (0, 1), got ${testFraction}`);
  const run = await pretrainContrastive({
    images: values.images, captions: values.captions, size: values.size ?? "tiny", imageSize: values["image-size"] ? parseIntArg("image-size", values["image-size"], 32, 8) : undefined,
    outDir: values.out ?? "runs/clip", ...budget, batch: parseIntArg("batch", values.batch, 64, 2), lr: parseFloatArg("lr", values.lr, 5e-4),
    warmup: parseIntArg("warmup", values.warmup, 50), seed: parseIntArg("seed", values.seed, 1234), vocab: parseIntArg("vocab", values.vocab, 1024, 261), testFraction,
  });
  console.log(`\ntrained on ${run.result.images.toLocaleString("en-US")} images in ${formatSeconds(run.result.seconds)} (${run.result.steps} steps, ${(run.result.images / run.result.seconds).toFixed(0)} images/s)`);
  printHeldOut(run.heldOut);
  console.log(`saved ${run.outDir}: config.json, model.safetensors, tokenizer.json, checkpoints/, metrics.jsonl, loss.svg, summary.json`);
}

/** A saved CLIP run: the model and its caption encoder. */
export function loadClipRun(dir: string): { model: ClipModel; encoder: CaptionEncoder } {
  const model = loadClip(dir);
  if (!existsSync(join(dir, "tokenizer.json"))) throw new Error(`CLIP: ${join(dir, "tokenizer.json")} does not exist; a CLIP run folder holds config.json, model.safetensors and tokenizer.json`);
  return { model, encoder: new CaptionEncoder(tokenizerFor(dir), model.config.text_config.max_position_embeddings) };
}

/** Zero-shot classification of one image (a file, or uploaded bytes with a name for errors) among labels. */
export async function zeroShotImage(run: { model: ClipModel; encoder: CaptionEncoder }, image: string | ImageSource, labels: readonly string[], templates: readonly string[]): Promise<{ label: string; prob: number }[]> {
  const S = run.model.config.vision_config.image_size;
  const rgb = typeof image === "string" ? await loadImage(image, S) : await decodeImage(image, S);
  const zs = zeroShot(run.model, run.encoder, embedImages(run.model, [rgb]), labels, templates);
  return labels.map((label, i) => ({ label, prob: zs.probs[0][i] })).sort((a, b) => b.prob - a.prob);
}

/** Ranks the images of a folder by similarity to a text query; unreadable files are reported, not fatal. */
export async function searchImages(run: { model: ClipModel; encoder: CaptionEncoder }, dir: string, query: string, top = 5): Promise<{ hits: { file: string; score: number }[]; skipped: { file: string; reason: string }[] }> {
  if (query.trim() === "") throw new UsageError("--query must not be empty");
  const files = listImages(dir);
  if (files.length === 0) throw new Error(`search: no PNG, JPEG or WebP files in ${dir}`);
  const S = run.model.config.vision_config.image_size;
  const ok: { file: string; rgb: Uint8Array }[] = [], skipped: { file: string; reason: string }[] = [];
  for (const file of files) {
    try {
      ok.push({ file, rgb: await loadImage(file, S) });
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      skipped.push({ file, reason: e.message });
    }
  }
  if (ok.length === 0) return { hits: [], skipped };
  const feats = embedImages(run.model, ok.map((x) => x.rgb));
  const [q] = textFeatures(run.model, run.encoder, [query]);
  const scored = ok.map((x, i) => ({ file: x.file, score: feats[i].reduce((s, v, d) => s + v * q[d], 0) }));
  return { hits: scored.sort((a, b) => b.score - a.score).slice(0, top), skipped };
}

export const zeroShotHelp = `plinth zero-shot — classify an image among labels it was never trained on (CLIP)

Usage: plinth zero-shot --model <dir> --image <file> --labels a,b,c [--template "a photo of {label}" ...]

Prints each label's probability. Several --template values are ensembled (default: emoji prompts).

Examples:
  plinth zero-shot --model runs/clip --image grin.png --labels "smileys & emotion,flags,food & drink"
  plinth zero-shot --model runs/clip --image x.png --labels cat,dog --template "a photo of a {label}"`;

export async function runZeroShotImage(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: "string" }, image: { type: "string" }, labels: { type: "string" }, template: { type: "string", multiple: true }, help: { type: "boolean", short: "h" } } });
  if (values.help) return void console.log(zeroShotHelp);
  if (values.image === undefined || values.labels === undefined) throw new UsageError("--image and --labels are required");
  const labels = values.labels.split(",").map((l) => l.trim()).filter((l) => l !== "");
  if (labels.length < 2) throw new UsageError(`--labels needs at least two comma-separated labels, got ${JSON.stringify(values.labels)}`);
  const templates = values.template ?? [...EMOJI_GROUP_PROMPTS];
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
  const run = loadClipRun(values.model ?? "runs/clip");
  const { hits, skipped } = await searchImages(run, values.images, values.query, parseIntArg("top", values.top, 5, 1));
  for (const s of skipped) console.error(`skipped ${s.reason}`);
  for (const h of hits) console.log(`${h.score.toFixed(3)}  ${h.file}`);
  if (hits.length === 0) throw new Error(`search: none of the images in ${values.images} could be read`);
}
