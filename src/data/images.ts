/**
 * Images for CLIP: decode what sharp reads (PNG, JPEG, WebP, GIF's first frame, TIFF, AVIF/HEIF, SVG), composite transparency over white,
 * resize the short side and centre-crop to S x S, and keep the result as uint8 RGB [3, S, S];
 * `normalizeInto` turns it into CLIP-normalised float32 pixels, `augmentInto` applies light
 * augmentation (a random shift of a few pixels with edge padding, and a horizontal flip).
 *
 * Bad input never crashes the process: an empty, corrupt, oversized or unsupported file
 * raises an ImageError that names the file, what was wrong and what is accepted.
 *
 *     const rgb = await loadImage("cat.png", 32);          // Uint8Array [3*32*32]
 *     const x = new Float32Array(rgb.length); normalizeInto(rgb, x);
 */
import { readFileSync, statSync } from "node:fs";
import sharp, { type Metadata } from "sharp";
import type { Rng } from "../tensor/rng.js";

export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageError";
  }
}

/** OpenAI CLIP's per-channel mean and standard deviation (of [0, 1] RGB). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** sharp's names for the formats it decodes here (AVIF reports as "heif"; SVG is rendered at its own size). */
export const SUPPORTED_FORMATS = ["png", "jpeg", "webp", "gif", "tiff", "heif", "avif", "svg"] as const;
/** File names of those formats, for listing a folder. */
export const IMAGE_FILE = /\.(png|jpe?g|webp|gif|tiff?|avif|heic|heif|svg)$/i;
const ACCEPTED = "PNG, JPEG, WebP, GIF, TIFF, AVIF or SVG";
export const MAX_FILE_BYTES = 64 * 1024 * 1024;
/** Decoding refuses images with more pixels than this (a 16k x 16k decompression bomb would need 1 GB). */
export const MAX_PIXELS = 40_000_000;

export interface ImageSource {
  /** Used in error messages. */
  name: string;
  bytes: Uint8Array;
}

function readSource(path: string): ImageSource {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new ImageError(`image ${path}: not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(`image ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (size > MAX_FILE_BYTES) throw new ImageError(`image ${path}: ${size} bytes is larger than the ${MAX_FILE_BYTES}-byte limit`);
  return { name: path, bytes: readFileSync(path) };
}

/** Decodes one image to uint8 RGB planes [3, S, S] (short side resized to S, centre crop, alpha over white). */
export async function decodeImage(src: ImageSource, size: number): Promise<Uint8Array> {
  if (!Number.isInteger(size) || size < 1 || size > 4096) throw new RangeError(`decodeImage: size ${size} must be an integer in [1, 4096]`);
  const { name, bytes } = src;
  if (bytes.length === 0) throw new ImageError(`image ${name}: the file is empty (0 bytes); expected a ${ACCEPTED} image`);
  if (bytes.length > MAX_FILE_BYTES) throw new ImageError(`image ${name}: ${bytes.length} bytes is larger than the ${MAX_FILE_BYTES}-byte limit`);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new ImageError(`image ${name}: not a readable image (${(e as Error).message}); expected a ${ACCEPTED} file`);
  }
  const format = meta.format ?? "unknown";
  if (!(SUPPORTED_FORMATS as readonly string[]).includes(format)) {
    throw new ImageError(`image ${name}: format "${format}" is not supported; expected ${ACCEPTED}`);
  }
  const w = meta.width ?? 0, h = meta.height ?? 0;
  if (w < 1 || h < 1) throw new ImageError(`image ${name}: has no pixels (${w}x${h})`);
  if (w * h > MAX_PIXELS) throw new ImageError(`image ${name}: ${w}x${h} = ${w * h} pixels is more than the ${MAX_PIXELS}-pixel limit`);
  let raw: Buffer;
  try {
    raw = await sharp(bytes, { limitInputPixels: MAX_PIXELS, failOn: "error" })
      .rotate()
      .flatten({ background: "#ffffff" })
      .resize(size, size, { fit: "cover", position: "centre", kernel: "lanczos3" })
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer();
  } catch (e) {
    throw new ImageError(`image ${name}: the ${format.toUpperCase()} data is corrupt or truncated (${(e as Error).message})`);
  }
  if (raw.length !== size * size * 3) throw new ImageError(`image ${name}: decoded to ${raw.length} bytes, expected ${size}x${size}x3`);
  return interleavedToPlanar(raw, size);
}

export async function loadImage(path: string, size: number): Promise<Uint8Array> {
  return decodeImage(readSource(path), size);
}

/** HWC interleaved RGB(A) -> CHW planes of RGB (alpha, if present, composited over white). */
export function interleavedToPlanar(src: Uint8Array, size: number, channels = 3): Uint8Array {
  const n = size * size;
  const out = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) {
    const a = channels === 4 ? src[i * 4 + 3] / 255 : 1;
    for (let c = 0; c < 3; c++) {
      const v = src[i * channels + c];
      out[c * n + i] = channels === 4 ? Math.round(v * a + 255 * (1 - a)) : v;
    }
  }
  return out;
}

const LUT = ((): Float32Array[] => CLIP_MEAN.map((m, c) => Float32Array.from({ length: 256 }, (_, v) => (v / 255 - m) / CLIP_STD[c])))();

/** uint8 RGB planes -> CLIP-normalised float32, written at `out[offset]`. */
export function normalizeInto(rgb: Uint8Array, out: Float32Array, offset = 0): void {
  const n = rgb.length / 3;
  for (let c = 0; c < 3; c++) {
    const lut = LUT[c];
    for (let i = 0; i < n; i++) out[offset + c * n + i] = lut[rgb[c * n + i]];
  }
}

/**
 * Light augmentation, then normalisation: shift by up to `maxShift` pixels in x and y
 * (edges repeated) and flip horizontally with probability `flip`.
 */
export function augmentInto(rgb: Uint8Array, size: number, out: Float32Array, offset: number, rng: Rng, { maxShift = 2, flip = 0.5 } = {}): void {
  const dx = rng.int(2 * maxShift + 1) - maxShift, dy = rng.int(2 * maxShift + 1) - maxShift;
  const mirror = rng.uniform() < flip;
  const n = size * size;
  const clamp = (v: number) => (v < 0 ? 0 : v >= size ? size - 1 : v);
  for (let c = 0; c < 3; c++) {
    const lut = LUT[c];
    for (let y = 0; y < size; y++) {
      const sy = clamp(y + dy);
      for (let x = 0; x < size; x++) {
        const sx = clamp((mirror ? size - 1 - x : x) + dx);
        out[offset + c * n + y * size + x] = lut[rgb[c * n + sy * size + sx]];
      }
    }
  }
}

/** RGB planes -> PNG bytes (for looking at what the model sees). */
export async function planarToPng(rgb: Uint8Array, size: number): Promise<Buffer> {
  const n = size * size;
  const hwc = Buffer.alloc(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) hwc[i * 3 + c] = rgb[c * n + i];
  return sharp(hwc, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
}
