// Images and image–text pairs: real PNG/JPEG/WebP decoding through sharp, clear errors for
// empty, corrupt, huge and unsupported files, augmentation, the folder + JSONL loader with
// its on-disk cache, the rendered emoji set and the split by image identity.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { ImageError, augmentInto, decodeImage, loadImage, normalizeInto } from "../src/data/images.js";
import { imageOf, loadFolderPairs, splitById } from "../src/data/pairs.js";
import { emojiRenderer, renderEmojiDataset } from "../src/data/emoji.js";
import { Rng } from "../src/tensor/index.js";

const tmp = mkdtempSync(join(tmpdir(), "plinth-images-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** A 40x20 image: left half red, right half blue. */
async function halves(format: "png" | "jpeg" | "webp"): Promise<Buffer> {
  const w = 40, h = 20, raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(x < w / 2 ? [255, 0, 0] : [0, 0, 255], (y * w + x) * 3);
  const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  return format === "png" ? img.png().toBuffer() : format === "jpeg" ? img.jpeg({ quality: 95 }).toBuffer() : img.webp({ lossless: true }).toBuffer();
}

test("PNG, JPEG and WebP decode to RGB planes: short side resized, centre crop", async () => {
  for (const format of ["png", "jpeg", "webp"] as const) {
    const rgb = await decodeImage({ name: `halves.${format}`, bytes: await halves(format) }, 8);
    assert.equal(rgb.length, 3 * 8 * 8);
    // The 40x20 image scales to 16x8, the crop keeps x in [4, 12): left half red, right half blue.
    const px = (c: number, y: number, x: number) => rgb[c * 64 + y * 8 + x];
    assert.ok(px(0, 4, 0) > 200 && px(2, 4, 0) < 50, `${format}: left is red (${px(0, 4, 0)}, ${px(2, 4, 0)})`);
    assert.ok(px(2, 4, 7) > 200 && px(0, 4, 7) < 50, `${format}: right is blue`);
  }
});

test("transparent pixels composite over white", async () => {
  const png = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
  const rgb = await decodeImage({ name: "clear.png", bytes: png }, 4);
  assert.ok(rgb.every((v) => v === 255));
});

test("empty, corrupt, truncated, huge and unsupported images raise a clear ImageError", async () => {
  const good = await halves("png");
  // 48 megapixels of one colour: 1.4 MB as PNG, 144 MB once decoded, which is refused before decoding.
  const huge = await sharp({ create: { width: 8000, height: 6000, channels: 3, background: "#ff0000" } }).png({ compressionLevel: 1 }).toBuffer();
  const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#123456" } }).gif().toBuffer();
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty.png", new Uint8Array(0), /the file is empty \(0 bytes\); expected a PNG, JPEG, WebP, GIF, TIFF, AVIF or SVG image/],
    ["noise.png", Buffer.from("this is not an image at all, just text"), /not a readable image .*expected a PNG, JPEG, WebP, GIF, TIFF, AVIF or SVG file/],
    ["truncated.png", good.subarray(0, Math.floor(good.length / 2)), /corrupt or truncated/],
    ["huge.png", huge, /8000x6000 = 48000000 pixels is more than the 40000000-pixel limit/],
  ];
  // GIF (its first frame) is one of the formats sharp decodes, as are TIFF, AVIF and SVG.
  assert.equal((await decodeImage({ name: "anim.gif", bytes: gif }, 16)).length, 3 * 16 * 16);
  for (const [name, bytes, message] of cases) {
    await assert.rejects(decodeImage({ name, bytes }, 16), (e: unknown) => e instanceof ImageError && message.test(e.message) && e.message.includes(name), name);
  }
  await assert.rejects(loadImage(join(tmp, "missing.png"), 16), /missing\.png: cannot read it \(ENOENT\)/);
  await assert.rejects(loadImage(tmp, 16), /not a regular file/);
});

test("augmentation with no shift and no flip equals plain normalisation; a flip mirrors each row", () => {
  const S = 6, rgb = Uint8Array.from({ length: 3 * S * S }, (_, i) => (i * 37) % 256);
  const plain = new Float32Array(rgb.length), same = new Float32Array(rgb.length), flipped = new Float32Array(rgb.length);
  normalizeInto(rgb, plain);
  augmentInto(rgb, S, same, 0, new Rng(1), { maxShift: 0, flip: 0 });
  augmentInto(rgb, S, flipped, 0, new Rng(1), { maxShift: 0, flip: 1 });
  assert.deepEqual(same, plain);
  for (let c = 0; c < 3; c++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    assert.equal(flipped[c * S * S + y * S + x], plain[c * S * S + y * S + (S - 1 - x)]);
  }
  assert.ok(Math.abs(plain[0] - (rgb[0] / 255 - 0.48145466) / 0.26862954) < 1e-6);
});

test("a folder + JSONL dataset skips unreadable files with their reason and is cached on disk", async () => {
  const dir = join(tmp, "folder");
  rmSync(dir, { recursive: true, force: true });
  (await import("node:fs")).mkdirSync(dir);
  writeFileSync(join(dir, "a.png"), await halves("png"));
  writeFileSync(join(dir, "b.jpg"), await halves("jpeg"));
  writeFileSync(join(dir, "bad.png"), "garbage");
  const jsonl = join(dir, "captions.jsonl");
  writeFileSync(jsonl, [
    { file: "a.png", caption: "red and blue", label: "flag" },
    { file: "b.jpg", captions: ["a jpeg", "red left"], label: "flag" },
    { file: "bad.png", caption: "broken" },
  ].map((r) => JSON.stringify(r)).join("\n"));
  const cache = join(tmp, "cache");
  const ds = await loadFolderPairs(dir, jsonl, { size: 8, cacheDir: cache });
  assert.deepEqual(ds.items.map((it) => it.id), ["a.png", "b.jpg"]);
  assert.deepEqual(ds.items[1].captions, ["a jpeg", "red left"]);
  assert.equal(ds.skipped.length, 1);
  assert.match(ds.skipped[0].reason, /bad\.png: not a readable image/);
  const again = await loadFolderPairs(dir, jsonl, { size: 8, cacheDir: cache });
  assert.deepEqual(Array.from(again.images), Array.from(ds.images));
  writeFileSync(join(dir, "bad.jsonl"), '{"file": "a.png"}\n');
  await assert.rejects(loadFolderPairs(dir, join(dir, "bad.jsonl")), /bad\.jsonl:1: expected \{"file": string, "caption": string\}/);
});

test("emoji render in colour; blank and missing glyphs are detected", () => {
  const render = emojiRenderer(32);
  const grin = render("😀");
  assert.equal(grin.dropped, null);
  const n = 32 * 32;
  let yellow = 0;
  for (let i = 0; i < n; i++) if (grin.rgb[i] > 200 && grin.rgb[n + i] > 150 && grin.rgb[2 * n + i] < 100) yellow++;
  assert.ok(yellow > 100, `the grinning face is yellow (${yellow} yellow pixels)`);
  assert.equal(render(" ").dropped, "blank");
  assert.notEqual(render("\u{E000}").dropped, null);
});

test("the emoji set: 9 groups, captions from names and groups, split by emoji with no overlap", () => {
  const ds = renderEmojiDataset({ size: 16, cacheDir: join(tmp, "emoji-cache") });
  assert.equal(ds.labels.length, 9);
  assert.ok(ds.items.length > 1800, `${ds.items.length} emoji rendered`);
  const grin = ds.items.find((it) => it.id === "😀")!;
  assert.equal(grin.label, "Smileys & Emotion");
  assert.ok(grin.captions.includes("an emoji of grinning face"));
  assert.ok(grin.captions.some((c) => c.includes("smileys & emotion")));
  const { train, test: held } = splitById(ds, 0.2);
  const trainIds = new Set(train.items.map((it) => it.id));
  assert.ok(held.items.every((it) => !trainIds.has(it.id)));
  assert.equal(train.items.length + held.items.length, ds.items.length);
  assert.ok(Math.abs(held.items.length / ds.items.length - 0.2) < 0.04);
  const k = ds.items.findIndex((it) => it.id === held.items[0].id);
  assert.deepEqual(Array.from(imageOf(held, 0)), Array.from(imageOf(ds, k)));
  assert.deepEqual(splitById(ds, 0.2).test.items.map((it) => it.id), held.items.map((it) => it.id), "the split is deterministic");
});
