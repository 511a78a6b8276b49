/**
 * The built-in image–text set: every emoji of `unicode-emoji-json` rendered with the
 * Noto Color Emoji font of `@fontsource/noto-color-emoji` by `@napi-rs/canvas`, labelled
 * with its group (9 classes) and captioned from its name and group. Glyphs the font does
 * not have are dropped: those that render blank, as the font's "missing glyph" box, or as
 * several glyphs side by side (a ZWJ sequence the font cannot join).
 *
 *     const ds = renderEmojiDataset({ size: 32, cacheDir: "runs/cache" });
 *     ds.items[0];   // { id: "😀", captions: ["grinning face", ...], label: "Smileys & Emotion" }
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { GlobalFonts, createCanvas } from "@napi-rs/canvas";
import { type PairDataset, type PairItem, labelsOf, readPairCache, writePairCache } from "./pairs.js";

const require = createRequire(import.meta.url);
const FAMILY = "PlinthNotoColorEmoji";

interface EmojiEntry {
  name: string;
  group: string;
}

/** Caption templates; {name} and {group} are filled per emoji. */
export const EMOJI_CAPTION_TEMPLATES = [
  "{name}",
  "an emoji of {name}",
  "{name}, a {group} emoji",
  "a {group} emoji: {name}",
  "{group}",
  "an emoji from {group}",
] as const;

/** Zero-shot prompt templates for the group labels (ensembled). */
export const EMOJI_GROUP_PROMPTS = ["a {label} emoji", "an emoji from {label}", "{label}", "an emoji of {label}"] as const;

export function emojiCaptions(name: string, group: string): string[] {
  const g = group.toLowerCase();
  return EMOJI_CAPTION_TEMPLATES.map((t) => t.replace("{name}", name).replace("{group}", g));
}

let registered = false;
function registerFont(): void {
  if (registered) return;
  const dir = join(dirname(require.resolve("@fontsource/noto-color-emoji/package.json")), "files");
  const files = readdirSync(dir).filter((f) => f.endsWith(".woff2"));
  if (files.length === 0) throw new Error(`emoji: no .woff2 font files in ${dir}`);
  for (const f of files) {
    if (GlobalFonts.registerFromPath(join(dir, f), FAMILY) === null) throw new Error(`emoji: could not register the font file ${join(dir, f)}`);
  }
  registered = true;
}

export interface RenderedEmoji {
  rgb: Uint8Array;
  /** Why it is dropped, or null when it rendered as one glyph. */
  dropped: "blank" | "missing-glyph" | "not-joined" | null;
}

/** A renderer at one size: draws one emoji centred, composites over white, checks it. */
export function emojiRenderer(size: number): (emoji: string) => RenderedEmoji {
  if (!Number.isInteger(size) || size < 8 || size > 512) throw new RangeError(`emoji: size ${size} must be an integer in [8, 512]`);
  registerFont();
  const canvas = createCanvas(size, size);
  const ctx = canvas.getContext("2d");
  const fontPx = Math.round(size * 0.8);
  ctx.font = `${fontPx}px ${FAMILY}`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  const n = size * size;
  const draw = (text: string): { rgb: Uint8Array; opaque: number; alpha: Uint8Array } => {
    ctx.clearRect(0, 0, size, size);
    ctx.fillText(text, size / 2, size * 0.54);
    const d = ctx.getImageData(0, 0, size, size).data;
    const rgb = new Uint8Array(3 * n), alpha = new Uint8Array(n);
    let opaque = 0;
    for (let i = 0; i < n; i++) {
      const a = d[i * 4 + 3];
      alpha[i] = a;
      if (a > 16) opaque++;
      // Canvas image data is unpremultiplied: composite over white.
      for (let c = 0; c < 3; c++) rgb[c * n + i] = Math.round((d[i * 4 + c] * a + 255 * (255 - a)) / 255);
    }
    return { rgb, opaque, alpha };
  };
  const missing = draw("\u{E000}").alpha;  // a private-use code point: the font's missing-glyph box, if any
  const sameAsMissing = (alpha: Uint8Array) => alpha.every((v, i) => Math.abs(v - missing[i]) <= 8);
  return (emoji) => {
    const { rgb, opaque, alpha } = draw(emoji);
    if (opaque < 0.02 * n) return { rgb, dropped: "blank" };
    if (sameAsMissing(alpha)) return { rgb, dropped: "missing-glyph" };
    if (ctx.measureText(emoji).width > 1.5 * fontPx) return { rgb, dropped: "not-joined" };
    return { rgb, dropped: null };
  };
}

function emojiTable(): [string, EmojiEntry][] {
  const path = require.resolve("unicode-emoji-json/data-by-emoji.json");
  return Object.entries(JSON.parse(readFileSync(path, "utf8")) as Record<string, EmojiEntry>);
}

export interface EmojiDataset extends PairDataset {
  /** How many emoji were dropped, by reason. */
  dropped: Record<string, number>;
}

/** Renders (or reads from the cache) every emoji at size x size. */
export function renderEmojiDataset({ size = 32, cacheDir }: { size?: number; cacheDir?: string } = {}): EmojiDataset {
  const table = emojiTable();
  const pkg = (name: string) => (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), "utf8")) as { version: string }).version;
  const key = createHash("sha256").update(`emoji-v1:${size}:${pkg("unicode-emoji-json")}:${pkg("@fontsource/noto-color-emoji")}:${EMOJI_CAPTION_TEMPLATES.join("|")}`).digest("hex");
  const name = `emoji${size}`;
  if (cacheDir !== undefined) {
    const cached = readPairCache(cacheDir, name, key);
    if (cached !== null) return { ...cached, dropped: Object.fromEntries(Object.entries(countBy(cached.skipped.map((s) => s.reason)))) };
  }
  const render = emojiRenderer(size);
  const items: PairItem[] = [], chunks: Uint8Array[] = [], skipped: { id: string; reason: string }[] = [];
  for (const [emoji, e] of table) {
    const r = render(emoji);
    if (r.dropped !== null) {
      skipped.push({ id: emoji, reason: r.dropped });
      continue;
    }
    items.push({ id: emoji, captions: emojiCaptions(e.name, e.group), label: e.group });
    chunks.push(r.rgb);
  }
  const pixelsPer = 3 * size * size;
  const images = new Uint8Array(items.length * pixelsPer);
  chunks.forEach((c, i) => images.set(c, i * pixelsPer));
  const ds: PairDataset = { name, size, pixelsPer, items, images, labels: labelsOf(items), skipped };
  if (cacheDir !== undefined) writePairCache(cacheDir, key, ds);
  return { ...ds, dropped: countBy(skipped.map((s) => s.reason)) };
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}
