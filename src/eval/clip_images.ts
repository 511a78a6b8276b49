/**
 * CLIP over image files and uploads: zero-shot classification of one image among labels (what
 * `plinth zero-shot` and /v1/classifications with an image call), and ranking a folder's images
 * by similarity to a text query (`plinth search`). Unreadable images are reported, not fatal.
 *
 *     const run = loadClipRun("runs/clip");
 *     await zeroShotImage(run, "grin.png", ["smileys & emotion", "flags"], ["a {label} emoji"]);
 *     await searchImages(run, "pictures/", "a red apple", 5);    // { hits: [{ file, score }], skipped }
 */
import type { ClipRun } from "../data/clip_run.js";
import { ImageError, decodeImage, loadImage, type ImageSource } from "../data/images.js";
import { listImages } from "../data/pairs.js";
import { embedImages, textFeatures, zeroShot } from "./clip.js";

/** Zero-shot classification of one image (a file, or uploaded bytes with a name for errors) among labels, most probable first. */
export async function zeroShotImage(run: ClipRun, image: string | ImageSource, labels: readonly string[], templates: readonly string[]): Promise<{ label: string; prob: number }[]> {
  const S = run.model.config.vision_config.image_size;
  const rgb = typeof image === "string" ? await loadImage(image, S) : await decodeImage(image, S);
  const zs = zeroShot(run.model, run.encoder, embedImages(run.model, [rgb]), labels, templates);
  return labels.map((label, i) => ({ label, prob: zs.probs[0][i] })).sort((a, b) => b.prob - a.prob);
}

export interface ImageSearch {
  hits: { file: string; score: number }[];
  skipped: { file: string; reason: string }[];
}

/** Ranks the images of a folder by cosine similarity to a text query; unreadable files are listed in `skipped`. */
export async function searchImages(run: ClipRun, dir: string, query: string, top = 5): Promise<ImageSearch> {
  if (query.trim() === "") throw new RangeError("searchImages: the query is empty");
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
