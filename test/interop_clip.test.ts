// CLIP interop: a CLIPModel-named checkpoint written by PyTorch (scripts/hf_checkpoints.py)
// imports and gives PyTorch's embeddings; the ONNX text and vision towers run in
// onnxruntime-node to Plinth's embeddings within 1e-4; the Hugging Face folder round-trips.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { exportHF, importHF } from "../src/interop/hf.js";
import { clipOnnxBytes, exportONNX } from "../src/interop/onnx/export.js";
import { ClipModel, clipConfig } from "../src/models/clip/index.js";
import { ids, noGrad, tensor } from "../src/tensor/index.js";
import { closeTo, fixtureDir, unpack } from "./helpers/fixtures.js";

type Packed = { shape: number[]; data: string };
interface Expected { input_ids: number[][]; pixel_values: Packed; image_embeds: Packed; text_embeds: Packed; logits_per_text: Packed }
const dir = join(fixtureDir, "hf", "clip");
const exp = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
const pixels = unpack(exp.pixel_values);
const opts = { intraOpNumThreads: 1, interOpNumThreads: 1 };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Plinth's projected (not yet normalised) embeddings, as the ONNX towers output them. */
function plinthProjections(model: ClipModel, px: { shape: number[]; data: Float32Array }, rows: number[][]) {
  return noGrad(() => ({
    image: model.visual_projection.forward(model.vision_model.forward(tensor(px.data, px.shape))).toArray(),
    text: model.text_projection.forward(model.text_model.forward(ids(rows))).toArray(),
  }));
}

async function runTowers(model: ClipModel, px: { shape: number[]; data: Float32Array }, rows: number[][], int8 = false) {
  const bytes = clipOnnxBytes(model, { int8 });
  const text = await ort.InferenceSession.create(bytes.text, opts), vision = await ort.InferenceSession.create(bytes.vision, opts);
  const t = await text.run({ input_ids: new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]) });
  const v = await vision.run({ pixel_values: new ort.Tensor("float32", px.data, px.shape) });
  return { text: t.text_embeds.data as Float32Array, image: v.image_embeds.data as Float32Array };
}

test("a PyTorch-written CLIPModel checkpoint imports and gives PyTorch's embeddings and logits", () => {
  const m = importHF(dir);
  assert.equal(m.kind, "clip");
  const model = m.model as ClipModel;
  const out = noGrad(() => {
    const o = model.forward(tensor(pixels.data, pixels.shape), ids(exp.input_ids));
    return { image: o.imageEmbeds.toArray(), text: o.textEmbeds.toArray(), logits: o.logitsPerText.toArray() };
  });
  closeTo(out.image, unpack(exp.image_embeds).data, 1e-4, 1e-5, "image_embeds");
  closeTo(out.text, unpack(exp.text_embeds).data, 1e-4, 1e-5, "text_embeds");
  closeTo(out.logits, unpack(exp.logits_per_text).data, 1e-4, 1e-4, "logits_per_text");
});

test("ONNX text and vision towers: onnxruntime embeddings match Plinth's within 1e-4 (quick_gelu and gelu_new)", async () => {
  const fixtureModel = importHF(dir).model as ClipModel;
  const want = plinthProjections(fixtureModel, pixels, exp.input_ids);
  const got = await runTowers(fixtureModel, pixels, exp.input_ids);
  const dText = maxAbsDiff(got.text, want.text), dImage = maxAbsDiff(got.image, want.image);
  assert.ok(dText < 1e-4 && dImage < 1e-4, `text ${dText}, image ${dImage}`);
  console.log(`onnxruntime CLIP max-abs-diff text ${dText.toExponential(2)} image ${dImage.toExponential(2)}`);

  const other = new ClipModel(clipConfig({ text_config: { vocab_size: 50, eos_token_id: 3, hidden_act: "gelu_new", max_position_embeddings: 12 }, vision_config: { hidden_act: "gelu_new", image_size: 32, patch_size: 8 } }), { seed: 4 });
  const px = { shape: [2, 3, 32, 32], data: Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37)) };
  const rows = [[1, 7, 9, 3, 0, 0], [1, 3, 0, 0, 0, 0]];
  const w2 = plinthProjections(other, px, rows), g2 = await runTowers(other, px, rows);
  assert.ok(maxAbsDiff(g2.text, w2.text) < 1e-4 && maxAbsDiff(g2.image, w2.image) < 1e-4);
  const q = await runTowers(other, px, rows, true);
  assert.ok(maxAbsDiff(q.image, w2.image) < 0.05 * Math.max(...w2.image.map(Math.abs)), "int8 towers stay close");
});

test("CLIP Hugging Face and ONNX folders: files round-trip, bad configs are refused", () => {
  const tmp = mkdtempSync(join(tmpdir(), "plinth-clip-"));
  try {
    const model = importHF(dir).model as ClipModel;
    exportHF(join(tmp, "hf"), model, null);
    const back = importHF(join(tmp, "hf")).model as ClipModel;
    assert.deepEqual(plinthProjections(back, pixels, exp.input_ids), plinthProjections(model, pixels, exp.input_ids));
    const files = exportONNX(join(tmp, "onnx"), model, null, { int8: true });
    assert.deepEqual(files.map((f) => f.split("/").pop()), ["text_model.onnx", "vision_model.onnx", "text_model_quantized.onnx", "vision_model_quantized.onnx"]);
    const bad = join(tmp, "bad");
    cpSync(dir, bad, { recursive: true });
    const c = JSON.parse(readFileSync(join(bad, "config.json"), "utf8"));
    writeFileSync(join(bad, "config.json"), JSON.stringify({ ...c, architectures: ["CLIPVisionModel"] }));
    assert.throws(() => importHF(bad), /architectures \["CLIPVisionModel"\]; for model_type clip Plinth loads CLIPModel/);
    writeFileSync(join(bad, "config.json"), JSON.stringify({ ...c, vision_config: { ...c.vision_config, hidden_act: "gelu" } }));
    assert.throws(() => importHF(bad), /import: .*hidden_act/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
