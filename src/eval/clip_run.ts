/**
 * A CLIP pretraining run scored on its held-out images: the run trains (src/train/clip_run.ts)
 * with held-out zero-shot accuracy logged at every evaluation, then zero-shot over the labels,
 * retrieval by each image's first caption and a linear probe are measured on the held-out
 * split and written to summary.json beside the model.
 *
 *     const run = await pretrainContrastive({ size: "tiny", outDir: "runs/clip", steps: 500, batch: 64, ... });
 *     run.heldOut.zeroShot?.accuracy; run.heldOut.retrieval.imageToText.r1; run.heldOut.probe?.accuracy;
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CaptionEncoder } from "../data/captions.js";
import { EMOJI_GROUP_PROMPTS } from "../data/emoji.js";
import { GENERAL_IMAGE_PROMPTS } from "../data/templates.js";
import type { PairDataset } from "../data/pairs.js";
import type { ClipModel } from "../models/clip/index.js";
import { type ContrastiveRunOptions, type TrainedClipRun, trainClipRun } from "../train/clip_run.js";
import { type ClipProbeResult, type RetrievalResult, type ZeroShotImageResult, imageFeatures, imageLinearProbe, retrieval, textFeatures, zeroShot } from "./clip.js";

export type { ContrastiveRunOptions } from "../train/clip_run.js";

export interface HeldOutScores {
  images: number;
  zeroShot: { accuracy: number; low: number; high: number; chance: number; labels: string[]; templates: string[] } | null;
  retrieval: RetrievalResult;
  probe: (Pick<ClipProbeResult, "accuracy" | "bestEpoch"> & { low: number; high: number }) | null;
}

export interface ContrastiveRun extends TrainedClipRun {
  /** Null on the ranks other than 0 of a data-parallel run (rank 0 alone scores and writes). */
  heldOut: HeldOutScores | null;
}

/** The labels both splits have, and the held-out images that carry one of them (with its index). */
function labelled(train: PairDataset, test: PairDataset): { labels: string[]; rows: { i: number; c: number }[] } {
  const labels = train.labels.filter((l) => test.labels.includes(l));
  const rows = test.items.map((it, i) => ({ i, c: it.label === undefined ? -1 : labels.indexOf(it.label) })).filter((x) => x.c >= 0);
  return { labels, rows };
}

/** Zero-shot over the labels, retrieval by each image's first caption, and a linear probe, all on the held-out images. */
export function evaluateHeldOut(model: ClipModel, enc: CaptionEncoder, train: PairDataset, test: PairDataset, templates: readonly string[] = EMOJI_GROUP_PROMPTS): HeldOutScores {
  const testFeats = imageFeatures(model, test);
  // Retrieval uses each image's first caption (for emoji: its name), which tells images apart.
  const ret = retrieval(testFeats, textFeatures(model, enc, test.items.map((it) => it.captions[0])));
  const { labels, rows } = labelled(train, test);
  if (labels.length < 2) return { images: test.items.length, zeroShot: null, retrieval: ret, probe: null };
  const names = labels.map((l) => l.toLowerCase());
  const zs: ZeroShotImageResult = zeroShot(model, enc, rows.map((x) => testFeats[x.i]), names, templates, rows.map((x) => x.c));
  const trainFeats = imageFeatures(model, train);
  const trainRows = train.items.map((it, i) => ({ i, c: it.label === undefined ? -1 : labels.indexOf(it.label) })).filter((x) => x.c >= 0);
  const probe = imageLinearProbe(trainRows.map((x) => trainFeats[x.i]), trainRows.map((x) => x.c), rows.map((x) => testFeats[x.i]), rows.map((x) => x.c), labels.length);
  return {
    images: test.items.length,
    zeroShot: { accuracy: zs.accuracy!, low: zs.interval!.low, high: zs.interval!.high, chance: 1 / labels.length, labels, templates: [...templates] },
    retrieval: ret,
    probe: { accuracy: probe.accuracy, low: probe.interval.low, high: probe.interval.high, bestEpoch: probe.bestEpoch },
  };
}

/** Trains a CLIP run, scores it on its held-out images, and writes summary.json. */
/** The zero-shot templates of a run: the user's, else the emoji set's own, else general ones that fit any picture. */
export function runTemplates(o: Pick<ContrastiveRunOptions, "templates" | "images">): string[] {
  return [...(o.templates ?? (o.images === undefined ? EMOJI_GROUP_PROMPTS : GENERAL_IMAGE_PROMPTS))];
}

export async function pretrainContrastive(o: ContrastiveRunOptions): Promise<ContrastiveRun> {
  const templates = runTemplates(o);
  // Held-out zero-shot accuracy at every evaluation, so the curve shows what training buys.
  const onEval = ({ model, encoder, train, test }: { model: ClipModel; encoder: CaptionEncoder; train: PairDataset; test: PairDataset }) => {
    const { labels, rows } = labelled(train, test);
    if (labels.length < 2) return undefined;
    return () => {
      const feats = imageFeatures(model, test);
      const zs = zeroShot(model, encoder, rows.map((x) => feats[x.i]), labels.map((l) => l.toLowerCase()), templates, rows.map((x) => x.c));
      return { zeroShot: zs.accuracy! };
    };
  };
  const run = await trainClipRun(o, { onEval });
  if (run.parallel !== undefined && run.parallel.rank !== 0) return { ...run, heldOut: null };
  const { model, encoder, train, test, result } = run;
  const heldOut = evaluateHeldOut(model, encoder, train, test, templates);
  writeFileSync(join(run.outDir, "summary.json"), JSON.stringify({
    objective: "contrastive", size: o.size, imageSize: run.imageSize, params: model.numParameters(), seed: o.seed, steps: result.steps, images: result.images,
    seconds: Math.round(result.seconds), imagesPerSecond: result.images / result.seconds, valLoss: result.valLoss, train: train.items.length,
    ...(run.parallel !== undefined ? { ranks: run.parallel.world } : {}), heldOut,
  }, null, 2) + "\n");
  return { ...run, heldOut };
}
