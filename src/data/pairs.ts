/**
 * Image–caption pair datasets for CLIP: images preprocessed once into packed uint8 RGB
 * [N, 3, S, S] and cached on disk (so loading is never the bottleneck), with one or more
 * captions per image and an optional class label.
 *
 * Sources: any folder of images plus a JSONL of captions (`{"file": "a.png", "caption": "..."}`
 * or `"captions": [...]`, optional `"label"`), or the built-in emoji set (see emoji.ts).
 *
 *     const ds = await loadFolderPairs("photos/", "photos/captions.jsonl", { size: 32, cacheDir: "runs/cache" });
 *     ds.images.subarray(i * ds.pixelsPer, (i + 1) * ds.pixelsPer);   // uint8 planes of image i
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { basename, isAbsolute, join, resolve } from "node:path";
import { writeFileAtomic } from "../io/atomic.js";
import { writeJsonAtomic } from "../io/json.js";
import { IMAGE_FILE, ImageError, loadImage } from "./images.js";
import { GENERAL_IMAGE_PROMPTS, checkTemplates, fillTemplates } from "./templates.js";

export interface PairItem {
  /** Stable identity of the image (file name, emoji); splits are made by it. */
  id: string;
  captions: string[];
  label?: string;
}

export interface PairDataset {
  name: string;
  size: number;
  /** 3 * size * size */
  pixelsPer: number;
  items: PairItem[];
  /** Packed uint8 RGB planes, item i at [i * pixelsPer, (i + 1) * pixelsPer). */
  images: Uint8Array;
  /** Distinct labels in first-seen order (empty when items carry none). */
  labels: string[];
  /** Files skipped as unreadable, with the reason (a folder dataset keeps going past bad files). */
  skipped: { id: string; reason: string }[];
}

export function imageOf(ds: PairDataset, i: number): Uint8Array {
  return ds.images.subarray(i * ds.pixelsPer, (i + 1) * ds.pixelsPer);
}

export function labelsOf(items: readonly PairItem[]): string[] {
  return [...new Set(items.map((it) => it.label).filter((l): l is string => l !== undefined))];
}

/** The subset of a dataset at the given indices (images copied into a new packed array). */
export function subset(ds: PairDataset, indices: readonly number[], name = ds.name): PairDataset {
  const images = new Uint8Array(indices.length * ds.pixelsPer);
  indices.forEach((i, r) => images.set(imageOf(ds, i), r * ds.pixelsPer));
  const items = indices.map((i) => ds.items[i]);
  return { name, size: ds.size, pixelsPer: ds.pixelsPer, items, images, labels: ds.labels.filter((l) => items.some((it) => it.label === l)), skipped: [] };
}

/** Splits by item id (a hash of it), so no test image is ever seen in training whatever its captions. */
export function splitById(ds: PairDataset, testFraction: number, seed = 0): { train: PairDataset; test: PairDataset } {
  if (!(testFraction > 0 && testFraction < 1)) throw new RangeError(`splitById: testFraction ${testFraction} must be in (0, 1)`);
  const train: number[] = [], test: number[] = [];
  ds.items.forEach((it, i) => {
    const h = createHash("sha256").update(`${seed}:${it.id}`).digest().readUInt32BE(0) / 2 ** 32;
    (h < testFraction ? test : train).push(i);
  });
  return { train: subset(ds, train, `${ds.name}/train`), test: subset(ds, test, `${ds.name}/test`) };
}

interface CacheManifest {
  version: 1;
  key: string;
  size: number;
  items: PairItem[];
  skipped: { id: string; reason: string }[];
}

/** Reads a cached dataset (manifest + packed pixels) if one with this key exists. */
export function readPairCache(cacheDir: string, name: string, key: string): PairDataset | null {
  const base = join(cacheDir, `${name}-${key.slice(0, 16)}`);
  if (!existsSync(`${base}.json`) || !existsSync(`${base}.u8`)) return null;
  let m: CacheManifest;
  try {
    m = JSON.parse(readFileSync(`${base}.json`, "utf8")) as CacheManifest;
  } catch {
    return null;  // an unreadable manifest is a cache miss: the caller rebuilds and rewrites it
  }
  const images = new Uint8Array(readFileSync(`${base}.u8`));
  const pixelsPer = 3 * m.size * m.size;
  if (m.key !== key || images.length !== m.items.length * pixelsPer) return null;  // stale or torn: rebuild
  return { name, size: m.size, pixelsPer, items: m.items, images, labels: labelsOf(m.items), skipped: m.skipped };
}

export function writePairCache(cacheDir: string, key: string, ds: PairDataset): void {
  mkdirSync(cacheDir, { recursive: true });
  const base = join(cacheDir, `${ds.name}-${key.slice(0, 16)}`);
  writeFileAtomic(`${base}.u8`, ds.images);
  writeJsonAtomic(`${base}.json`, { version: 1, key, size: ds.size, items: ds.items, skipped: ds.skipped } satisfies CacheManifest);
}

interface CaptionRow {
  file: string;
  captions: string[];
  label?: string;
}

/** Rows of a captions JSONL; a row with a "label" but no caption is captioned from the templates. */
function parseCaptions(path: string, templates: readonly string[]): CaptionRow[] {
  if (!existsSync(path)) throw new Error(`captions: ${path} does not exist (expected a JSONL file: {"file": "a.png", "caption": "..."} per line)`);
  const rows: CaptionRow[] = [];
  readFileSync(path, "utf8").split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new Error(`captions: ${path}:${i + 1} is not valid JSON (${(e as Error).message})`);
    }
    const r = o as Record<string, unknown>;
    let caps = typeof r.caption === "string" ? [r.caption] : Array.isArray(r.captions) ? r.captions.filter((c): c is string => typeof c === "string") : [];
    if (caps.length === 0 && r.caption === undefined && r.captions === undefined && typeof r.label === "string" && r.label.trim() !== "") caps = fillTemplates(templates, r.label.trim());
    if (typeof r.file !== "string" || caps.length === 0 || caps.some((c) => c.trim() === "")) {
      throw new Error(`captions: ${path}:${i + 1}: expected {"file": string, "caption": string}, {"file", "captions": [strings]} or {"file", "label": string}, got ${line.slice(0, 120)}`);
    }
    rows.push({ file: r.file, captions: caps, ...(typeof r.label === "string" ? { label: r.label } : {}) });
  });
  if (rows.length === 0) throw new Error(`captions: ${path} has no rows`);
  return rows;
}

/**
 * A folder of images + a JSONL of captions. Unreadable images (corrupt, empty, unsupported,
 * too large) are skipped and listed in `skipped`; the load fails only if none is usable.
 */
export async function loadFolderPairs(dir: string, captionsPath: string | undefined, { size = 32, cacheDir, templates = GENERAL_IMAGE_PROMPTS }: { size?: number; cacheDir?: string; templates?: readonly string[] } = {}): Promise<PairDataset> {
  checkTemplates(templates, "loadFolderPairs");
  const rows = captionsPath === undefined ? classFolderRows(dir, templates) : parseCaptions(captionsPath, templates);
  const name = `folder-${basename(resolve(dir))}`;
  const hash = createHash("sha256").update(`v1:${size}`);
  const paths = rows.map((r) => (isAbsolute(r.file) ? r.file : join(dir, r.file)));
  for (let i = 0; i < rows.length; i++) {
    hash.update(JSON.stringify(rows[i]));
    if (existsSync(paths[i])) hash.update(readFileSync(paths[i]));
  }
  const key = hash.digest("hex");
  if (cacheDir !== undefined) {
    const cached = readPairCache(cacheDir, name, key);
    if (cached !== null) return cached;
  }
  const items: PairItem[] = [], chunks: Uint8Array[] = [], skipped: { id: string; reason: string }[] = [];
  for (let i = 0; i < rows.length; i++) {
    try {
      chunks.push(await loadImage(paths[i], size));
      items.push({ id: rows[i].file, captions: rows[i].captions, ...(rows[i].label !== undefined ? { label: rows[i].label } : {}) });
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      skipped.push({ id: rows[i].file, reason: e.message });
    }
  }
  if (items.length === 0) throw new Error(`loadFolderPairs: none of the ${rows.length} images in ${dir} could be read; first problem: ${skipped[0]?.reason}`);
  const pixelsPer = 3 * size * size;
  const images = new Uint8Array(items.length * pixelsPer);
  chunks.forEach((c, i) => images.set(c, i * pixelsPer));
  const ds: PairDataset = { name, size, pixelsPer, items, images, labels: labelsOf(items), skipped };
  if (cacheDir !== undefined) writePairCache(cacheDir, key, ds);
  return ds;
}

/**
 * Without a captions file: one subfolder per class (`pets/tabby cat/1.jpg`), the folder's name the
 * label (underscores and hyphens read as spaces), each image captioned from the templates.
 */
export function classFolderRows(dir: string, templates: readonly string[]): CaptionRow[] {
  if (!existsSync(dir)) throw new Error(`images: folder ${dir} does not exist`);
  const rows: CaptionRow[] = [];
  for (const sub of readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    const label = sub.replace(/[_-]+/g, " ").trim();
    for (const f of readdirSync(join(dir, sub)).filter((x) => IMAGE_FILE.test(x)).sort()) rows.push({ file: `${sub}/${f}`, captions: fillTemplates(templates, label), label });
  }
  if (rows.length === 0) throw new Error(`images: ${dir} has no class subfolders with images in them; give a folder of <label>/<image> files, or a captions JSONL with --captions`);
  return rows;
}

/** Image files in a folder (PNG, JPEG, WebP, GIF, TIFF, AVIF, SVG by extension), sorted. */
export function listImages(dir: string): string[] {
  if (!existsSync(dir)) throw new Error(`images: folder ${dir} does not exist`);
  return readdirSync(dir).filter((f) => IMAGE_FILE.test(f)).sort().map((f) => join(dir, f));
}
