/**
 * A CLIP pretraining run, from data to saved folder: image–text pairs (the emoji set, or a folder
 * of images with a JSONL of captions), a split by image identity, a caption tokenizer trained on
 * the training captions, a model from a preset, the contrastive trainer (resumed from the run's
 * last checkpoint if there is one), and the saved run. Scoring the held-out images is the
 * evaluator's (src/eval/clip_run.ts), which passes its zero-shot score in as `onEval`.
 *
 *     const run = await trainClipRun({ size: "tiny", outDir: "runs/clip", steps: 500, ...defaults });
 *     run.model; run.encoder; run.test;     // what the held-out evaluation reads
 */
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { CaptionEncoder, trainCaptionTokenizer } from "../data/captions.js";
import { renderEmojiDataset } from "../data/emoji.js";
import { loadFolderPairs, splitById, type PairDataset } from "../data/pairs.js";
import { tokenizerFor } from "../data/tokenizer.js";
import { CLIP_PRESETS, ClipModel, clipConfig, saveClip } from "../models/clip/index.js";
import { launchedRank, loadMpi } from "../native/mpi.js";
import type { BPETokenizer } from "../tokenizer/index.js";
import { ContrastiveTrainer, type ContrastiveResult } from "./contrastive.js";
import { dataParallel, World, type DataParallel, type DataParallelStats } from "./parallel/index.js";
import { formatSeconds } from "./progress.js";

export interface ContrastiveRunOptions {
  data?: "emoji";
  images?: string;
  captions?: string;
  /** Prompt templates with {label}: caption labeled images that have no caption, and (in the evaluator) build zero-shot classes. */
  templates?: string[];
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
  /** Data-parallel runs (this process is one rank of several under mpirun/srun): gradient bucket size, MB. */
  bucketMb?: number;
  /** Data-parallel runs: ZeRO stage 1 (AdamW's moments split across ranks). */
  shardOptimizer?: boolean;
}

export interface TrainedClipRun {
  outDir: string;
  imageSize: number;
  model: ClipModel;
  encoder: CaptionEncoder;
  train: PairDataset;
  test: PairDataset;
  result: ContrastiveResult;
  /** Data-parallel runs: this rank's communication statistics (only rank 0 saves and scores the run). */
  parallel?: DataParallelStats;
}

/** What a run's periodic evaluation sees; it returns the scores to log (or nothing to skip them). */
export type ClipEvalHook = (run: { model: ClipModel; encoder: CaptionEncoder; train: PairDataset; test: PairDataset }) => (() => Record<string, number>) | undefined;

async function loadPairs(o: ContrastiveRunOptions, size: number, cacheDir: string): Promise<PairDataset> {
  if (o.images !== undefined || o.captions !== undefined) {
    if (o.images === undefined) throw new RangeError("CLIP pretraining: captions need the folder of images they describe (images)");
    // Without a captions file the folder holds one subfolder per label, captioned from the templates.
    return loadFolderPairs(o.images, o.captions, { size, cacheDir, templates: o.templates });
  }
  return renderEmojiDataset({ size, cacheDir });
}

export async function trainClipRun(o: ContrastiveRunOptions, { onEval }: { onEval?: ClipEvalHook } = {}): Promise<TrainedClipRun> {
  const preset = CLIP_PRESETS[o.size];
  if (preset === undefined) throw new RangeError(`CLIP pretraining: unknown size "${o.size}" (expected ${Object.keys(CLIP_PRESETS).join(", ")})`);
  // One rank of several: rank 0 renders the images and trains the caption tokenizer while the
  // others wait, then they read both; rank 0 alone prints, checkpoints and saves.
  let dp: DataParallel | null = null;
  const launched = launchedRank();
  if (launched !== null && launched.size > 1) {
    loadMpi();
    dp = dataParallel(World.join(), { bucketMb: o.bucketMb, shardOptimizer: o.shardOptimizer });
    dp.rows(o.batch, "batch of pairs");
    if (!dp.world.leader) {
      o = { ...o, quiet: true };
      await dp.world.done(dp.world.mpi.barrier(), "waiting for rank 0 to prepare the images and the tokenizer", 24 * 3600);
    }
  }
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
  if (dp !== null && dp.world.leader) await dp.world.done(dp.world.mpi.barrier(), "the data-ready barrier", 24 * 3600);
  const encoder = new CaptionEncoder(tokenizer, preset.text.max_position_embeddings!);
  const config = clipConfig({
    projection_dim: preset.projection_dim,
    text_config: { ...preset.text, vocab_size: tokenizer.vocabSize, eos_token_id: encoder.eos, bos_token_id: encoder.eos, pad_token_id: encoder.pad },
    vision_config: { ...preset.vision, image_size: size, patch_size: Math.min(preset.vision.patch_size!, size) },
  });
  const model = new ClipModel(config, { seed: o.seed });
  const trainer = new ContrastiveTrainer({
    model, captions: encoder, train, val: test, outDir, batch: o.batch, lr: o.lr, warmup: o.warmup, seconds: o.seconds, steps: o.steps, seed: o.seed, quiet: o.quiet,
    evalEvery: 100, onEval: onEval?.({ model, encoder, train, test }), parallel: dp ?? undefined,
  });
  const resumed = trainer.resume();
  if (!o.quiet) {
    const over = dp === null ? "" : ` over ${dp.world.size} ranks (${o.batch / dp.world.size} pairs each, embeddings all-gathered${o.shardOptimizer ? ", optimizer sharded" : ""})`;
    console.log(`model: CLIP ${o.size}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters (ViT ${size}px/${config.vision_config.patch_size} d=${config.vision_config.hidden_size}x${config.vision_config.num_hidden_layers}, text d=${config.text_config.hidden_size}x${config.text_config.num_hidden_layers}, ${tokenizer.vocabSize} tokens), batch ${o.batch}${over}`);
    if (resumed !== null) console.log(`resuming from the checkpoint at step ${resumed}`);
  }
  const result = await trainer.run();
  if (dp !== null && !dp.world.leader) return { outDir, imageSize: size, model, encoder, train, test, result, parallel: dp.stats() };
  saveClip(outDir, model, { objective: "contrastive" });
  return { outDir, imageSize: size, model, encoder, train, test, result, ...(dp !== null ? { parallel: dp.stats() } : {}) };
}
