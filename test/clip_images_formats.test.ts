// CLIP on a user's own pictures: every format sharp decodes (PNG, JPEG, WebP, GIF, TIFF, AVIF,
// SVG) loads; a folder of class subfolders or label-only caption rows is captioned from prompt
// templates; and a run trains and scores zero-shot with the templates it was given.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { decodeImage, loadImage } from "../src/data/images.js";
import { listImages, loadFolderPairs } from "../src/data/pairs.js";
import { GENERAL_IMAGE_PROMPTS, checkTemplates, fillTemplates } from "../src/data/templates.js";
import { pretrainContrastive, runTemplates } from "../src/eval/clip_run.js";
import { EMOJI_GROUP_PROMPTS } from "../src/data/emoji.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-clip-formats-"));
const FORMATS = ["png", "jpeg", "webp", "gif", "tiff", "avif", "svg"] as const;
const COLORS: Record<string, string> = { red_square: "#d00000", "blue-square": "#0030e0" };

async function write(path: string, format: (typeof FORMATS)[number], color: string, n: number): Promise<void> {
  if (format === "svg") {
    writeFileSync(path, `<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect width="20" height="20" fill="white"/><rect x="${n}" y="2" width="12" height="12" fill="${color}"/></svg>`);
    return;
  }
  const img = sharp({ create: { width: 20, height: 20, channels: 3, background: "#ffffff" } }).composite([{ input: { create: { width: 12, height: 12, channels: 3, background: color } }, left: n, top: 2 }]);
  await img[format]().toFile(path);
}

const ready = (async () => {
  for (const [cls, color] of Object.entries(COLORS)) {
    mkdirSync(join(dir, "classes", cls), { recursive: true });
    for (const f of FORMATS) for (let n = 0; n < 3; n++) await write(join(dir, "classes", cls, `${f}-${n}.${f === "jpeg" ? "jpg" : f}`), f, color, 1 + 2 * n);
  }
})();

test("every format sharp decodes loads as RGB planes of the requested size", async () => {
  await ready;
  const red = join(dir, "classes", "red_square");
  const files = listImages(red);
  assert.equal(files.length, FORMATS.length * 3, files.join(","));
  for (const f of files) {
    const rgb = await loadImage(f, 8);
    assert.equal(rgb.length, 3 * 8 * 8, f);
    // The centre pixel is the square's red, whatever the container format.
    const c = 4 * 8 + 4;
    assert.ok(rgb[c] > 150 && rgb[64 + c] < 90 && rgb[128 + c] < 90, `${f}: rgb ${rgb[c]},${rgb[64 + c]},${rgb[128 + c]}`);
  }
  await assert.rejects(decodeImage({ name: "x.bin", bytes: new Uint8Array([1, 2, 3, 4]) }, 8), /not a readable image .*expected a PNG, JPEG, WebP, GIF, TIFF, AVIF or SVG file/);
});

test("a folder of class subfolders is captioned from the templates, labels from the folder names", async () => {
  await ready;
  const ds = await loadFolderPairs(join(dir, "classes"), undefined, { size: 8, templates: ["a photo of a {label}.", "a {label} shape"] });
  assert.equal(ds.items.length, 2 * FORMATS.length * 3);
  assert.deepEqual(ds.labels, ["blue square", "red square"]);
  const first = ds.items.find((it) => it.label === "red square")!;
  assert.deepEqual(first.captions, ["a photo of a red square.", "a red square shape"]);
  assert.equal(ds.skipped.length, 0);
  // Label-only rows of a captions file are captioned the same way (general defaults here).
  writeFileSync(join(dir, "captions.jsonl"), [JSON.stringify({ file: "classes/red_square/gif-0.gif", label: "red square" }), JSON.stringify({ file: "classes/blue-square/svg-0.svg", caption: "a blue box" })].join("\n"));
  const rows = await loadFolderPairs(dir, join(dir, "captions.jsonl"), { size: 8 });
  assert.deepEqual(rows.items[0].captions, fillTemplates(GENERAL_IMAGE_PROMPTS, "red square"));
  assert.deepEqual(rows.items[1].captions, ["a blue box"]);
  await assert.rejects(loadFolderPairs(join(dir, "classes"), undefined, { templates: ["a photo"] }), /template "a photo" has no \{label\} placeholder/);
  assert.throws(() => checkTemplates([]), /at least one template/);
});

test("a run on a user's folder trains its captions and scores zero-shot with the given templates, not the emoji ones", async () => {
  await ready;
  assert.deepEqual(runTemplates({ images: "x" }), [...GENERAL_IMAGE_PROMPTS]);
  assert.deepEqual(runTemplates({}), [...EMOJI_GROUP_PROMPTS]);
  const templates = ["a photo of a {label}."];
  const run = await pretrainContrastive({
    images: join(dir, "classes"), templates, size: "tiny", imageSize: 16, outDir: join(dir, "run"), steps: 2, batch: 8, lr: 5e-4, warmup: 1,
    seed: 1, vocab: 300, testFraction: 0.3, quiet: true,
  });
  assert.ok(run.train.items.every((it) => it.captions[0] === `a photo of a ${it.label}.`));
  const summary = JSON.parse(readFileSync(join(dir, "run", "summary.json"), "utf8"));
  assert.ok(run.heldOut !== null, "a single process scores its own run");
  if (run.heldOut.zeroShot !== null) {
    assert.deepEqual(summary.heldOut.zeroShot.templates, templates);
    assert.equal(summary.heldOut.zeroShot.labels.length, 2);
  }
  assert.ok(summary.heldOut.retrieval !== undefined);
});
