/**
 * CLIP evaluation: image and text features, zero-shot image classification with prompt
 * templates (each label's prompts embedded, averaged and renormalised: prompt ensembling),
 * image→text and text→image retrieval with recall@1/5/10, and a linear probe on frozen image
 * features (src/adapt/probe.ts). Accuracy intervals come from the bootstrap in metrics.ts.
 *
 *     const img = imageFeatures(model, test);
 *     zeroShot(model, enc, img, ["cat", "dog"], ["a photo of a {label}"], gold);
 *     retrieval(img, textFeatures(model, enc, captions));
 */
import type { CaptionEncoder } from "../data/captions.js";
import { normalizeInto } from "../data/images.js";
import { imageOf, type PairDataset } from "../data/pairs.js";
import type { ClipModel } from "../models/clip/model.js";
import { noGrad } from "../tensor/autograd.js";
import { ids as idsTensor, tensor } from "../tensor/tensor.js";
import { probeProbs, trainProbe, type ProbeOptions } from "../adapt/probe.js";
import { accuracy, argmax, bootstrapCI, type Interval } from "../tasks/metrics.js";

const BATCH = 64;

/** L2-normalised image embeddings of uint8 RGB planes [3, S, S] (no augmentation). */
export function embedImages(model: ClipModel, images: readonly Uint8Array[]): Float32Array[] {
  const S = model.config.vision_config.image_size, n = 3 * S * S;
  images.forEach((im, i) => {
    if (im.length !== n) throw new RangeError(`embedImages: image ${i} has ${im.length} values, expected 3x${S}x${S} = ${n}`);
  });
  const out: Float32Array[] = [];
  noGrad(() => {
    for (let b0 = 0; b0 < images.length; b0 += BATCH) {
      const chunk = images.slice(b0, b0 + BATCH);
      const px = new Float32Array(chunk.length * n);
      chunk.forEach((im, i) => normalizeInto(im, px, i * n));
      const e = model.imageEmbeds(tensor(px, [chunk.length, 3, S, S]));
      const E = e.shape[1];
      for (let i = 0; i < chunk.length; i++) out.push(e.data.slice(i * E, (i + 1) * E));
    }
  });
  return out;
}

export function imageFeatures(model: ClipModel, ds: PairDataset): Float32Array[] {
  return embedImages(model, ds.items.map((_, i) => imageOf(ds, i)));
}

/** L2-normalised text embeddings. */
export function textFeatures(model: ClipModel, enc: CaptionEncoder, texts: readonly string[]): Float32Array[] {
  const out: Float32Array[] = [];
  noGrad(() => {
    for (let b0 = 0; b0 < texts.length; b0 += BATCH) {
      const chunk = texts.slice(b0, b0 + BATCH);
      const e = model.textEmbeds(idsTensor(enc.encodeBatch(chunk), [chunk.length, enc.length]));
      const E = e.shape[1];
      for (let i = 0; i < chunk.length; i++) out.push(e.data.slice(i * E, (i + 1) * E));
    }
  });
  return out;
}

const dot = (a: Float32Array, b: Float32Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** One classifier vector per label: the renormalised mean of its prompts' embeddings. */
export function labelEmbeddings(model: ClipModel, enc: CaptionEncoder, labels: readonly string[], templates: readonly string[]): Float32Array[] {
  if (labels.length < 2) throw new RangeError(`zero-shot: needs at least 2 labels, got ${labels.length}`);
  if (templates.length === 0) throw new RangeError("zero-shot: needs at least one prompt template");
  for (const t of templates) if (!t.includes("{label}")) throw new RangeError(`zero-shot: template ${JSON.stringify(t)} has no {label} placeholder`);
  return labels.map((label) => {
    const feats = textFeatures(model, enc, templates.map((t) => t.replaceAll("{label}", label)));
    const mean = new Float32Array(feats[0].length);
    for (const f of feats) for (let i = 0; i < f.length; i++) mean[i] += f[i] / feats.length;
    const norm = Math.sqrt(dot(mean, mean));
    return mean.map((v) => v / norm);
  });
}

export interface ZeroShotImageResult {
  labels: string[];
  /** Softmax over labels of exp(logit_scale) * cosine, per image. */
  probs: number[][];
  predictions: number[];
  accuracy?: number;
  interval?: Interval;
}

/** Classifies image features among labels; with gold label indices also reports accuracy and its bootstrap interval. */
export function zeroShot(model: ClipModel, enc: CaptionEncoder, imageFeats: readonly Float32Array[], labels: readonly string[], templates: readonly string[], gold?: readonly number[]): ZeroShotImageResult {
  const classes = labelEmbeddings(model, enc, labels, templates);
  const scale = Math.exp(model.logit_scale.data[0]);
  const probs = imageFeats.map((f) => {
    const logits = classes.map((c) => scale * dot(f, c));
    const m = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - m));
    const z = e.reduce((a, v) => a + v, 0);
    return e.map((v) => v / z);
  });
  const predictions = probs.map((p) => argmax(p));
  const result: ZeroShotImageResult = { labels: [...labels], probs, predictions };
  if (gold !== undefined) {
    result.accuracy = accuracy(predictions, gold);
    result.interval = bootstrapCI(gold.length, (idx) => idx.filter((i) => predictions[i] === gold[i]).length / idx.length);
  }
  return result;
}

export interface RetrievalResult {
  imageToText: Record<"r1" | "r5" | "r10", number>;
  textToImage: Record<"r1" | "r5" | "r10", number>;
  images: number;
  texts: number;
}

/**
 * Recall@k both ways. textOwner[j] is the image that caption j belongs to (default: caption j
 * belongs to image j). Image→text: a hit if any of the image's captions is in its top k.
 */
export function retrieval(imageFeats: readonly Float32Array[], textFeats: readonly Float32Array[], textOwner: readonly number[] = textFeats.map((_, j) => j)): RetrievalResult {
  if (textOwner.length !== textFeats.length) throw new RangeError(`retrieval: ${textOwner.length} caption owners for ${textFeats.length} captions`);
  if (imageFeats.length === 0 || textFeats.length === 0) throw new RangeError("retrieval: needs at least one image and one caption");
  const ks = [1, 5, 10] as const;
  const sim = imageFeats.map((f) => textFeats.map((t) => dot(f, t)));
  const rankOf = (scores: number[], target: (j: number) => boolean): number => {
    // Rank of the best-scoring correct item (0 = first); ties count against it.
    let best = -Infinity;
    scores.forEach((s, j) => { if (target(j) && s > best) best = s; });
    return scores.filter((s, j) => !target(j) && s >= best).length;
  };
  const i2t = imageFeats.map((_, i) => rankOf(sim[i], (j) => textOwner[j] === i));
  const t2i = textFeats.map((_, j) => rankOf(imageFeats.map((_, i) => sim[i][j]), (i) => i === textOwner[j]));
  const recall = (ranks: number[]) => Object.fromEntries(ks.map((k) => [`r${k}`, ranks.filter((r) => r < k).length / ranks.length])) as Record<"r1" | "r5" | "r10", number>;
  return { imageToText: recall(i2t), textToImage: recall(t2i), images: imageFeats.length, texts: textFeats.length };
}

export interface ClipProbeResult {
  accuracy: number;
  interval: Interval;
  bestEpoch: number;
}

/** A linear probe on frozen image features: trained on train, scored on test. */
export function imageLinearProbe(trainFeats: readonly Float32Array[], trainLabels: readonly number[], testFeats: readonly Float32Array[], testLabels: readonly number[], numClasses: number, options: ProbeOptions = {}): ClipProbeResult {
  const { probe, bestEpoch } = trainProbe(trainFeats, trainLabels, numClasses, options);
  const predictions = probeProbs(probe, testFeats).map((p) => argmax(p));
  return {
    accuracy: accuracy(predictions, testLabels),
    interval: bootstrapCI(testLabels.length, (idx) => idx.filter((i) => predictions[i] === testLabels[i]).length / idx.length),
    bestEpoch,
  };
}
