/**
 * Zero-shot image classification with a CLIP base in bounded pieces, for the encoder queue:
 * the label prompts (labels × templates) are tokenized, planned, then run through the text
 * tower a few labels at a time (each label's prompts in one forward, as eval/clip.ts's
 * labelEmbeddings does, so the numbers are the one-call numbers), then the image through the
 * vision tower. A 64-label × 16-template request is 1,024 text sequences: in one call it held the
 * event loop for the whole of them; here each piece is sized to the queue's token budget, and a
 * client that leaves drops the rest.
 *
 *     const steps = zeroShotImageSteps(run, rgb, ["cat", "dog"], ["a photo of {label}."], { pieceTokens: 512 });
 *     runSteps(steps);   // probabilities per label, in the labels' order
 */
import type { ClipRun } from "../data/clip_run.js";
import { type PieceOptions, type Steps, DEFAULT_PIECE_TOKENS, tokenizeSteps } from "../adapt/steps.js";
import { embedImages, textFeatures } from "../eval/clip.js";

const dot = (a: Float32Array, b: Float32Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** Probabilities of each label for one image (uint8 RGB planes [3, S, S]), in pieces. */
export function* zeroShotImageSteps(run: ClipRun, rgb: Uint8Array, labels: readonly string[], templates: readonly string[], pieces: PieceOptions = {}): Steps<number[]> {
  if (labels.length < 2) throw new RangeError(`zeroShotImageSteps: needs at least 2 labels, got ${labels.length}`);
  if (templates.length === 0 || templates.some((t) => !t.includes("{label}"))) throw new RangeError("zeroShotImageSteps: needs templates, each with a {label} field");
  const { model, encoder } = run;
  const prompts = labels.flatMap((label) => templates.map((t) => t.replaceAll("{label}", label)));
  // Tokenized only to count what the request reads (the text tower's forward tokenizes again, cheaply).
  const lengths = yield* tokenizeSteps(prompts, (p) => encoder.tokenizer.encode(p).length, pieces);
  const vc = model.config.vision_config;
  const imageTokens = (vc.image_size / vc.patch_size) ** 2 + 1;
  const perLabel = templates.length * encoder.length;
  yield {
    kind: "plan", sequences: prompts.length + 1, tokens: labels.length * perLabel + imageTokens,
    inputTokens: lengths.reduce((s, n) => s + n, 0),
  };
  const budget = () => {
    const t = pieces.pieceTokens ?? DEFAULT_PIECE_TOKENS;
    return typeof t === "function" ? t() : t;
  };
  const classes: Float32Array[] = [];
  while (classes.length < labels.length) {
    // At least one label per forward: its prompts are batched together, as labelEmbeddings batches them.
    const take = Math.max(1, Math.min(labels.length - classes.length, Math.floor(budget() / perLabel)));
    for (let k = 0; k < take; k++) {
      const feats = textFeatures(model, encoder, templates.map((t) => t.replaceAll("{label}", labels[classes.length])));
      const mean = new Float32Array(feats[0].length);
      for (const f of feats) for (let i = 0; i < f.length; i++) mean[i] += f[i] / feats.length;
      const norm = Math.sqrt(dot(mean, mean));
      classes.push(mean.map((v) => v / norm));
    }
    yield { kind: "forward", tokens: take * perLabel };
  }
  const [image] = embedImages(model, [rgb]);
  yield { kind: "forward", tokens: imageTokens };
  const scale = Math.exp(model.logit_scale.data[0]);
  const logits = classes.map((c) => scale * dot(image, c));
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const z = e.reduce((a, v) => a + v, 0);
  return e.map((v) => v / z);
}
