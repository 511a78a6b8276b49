// CLIP model pieces: the composed ops against float64 references (forward and backward),
// the patch embedding against a direct convolution, config validation, eos pooling under
// causal attention, checkpoint round trip and caption encoding.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { f32, saveSafetensors, type RawTensor } from "../src/io/safetensors.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClipModel, clipConfig, contrastiveLoss, l2Normalize, loadClip, quickGelu, saveClip } from "../src/models/clip/index.js";
import { CaptionEncoder, trainCaptionTokenizer } from "../src/data/captions.js";
import { ids, memoryStats, noGrad, randn, tensor } from "../src/tensor/index.js";
import { gradcheck } from "./helpers/gradcheck.js";
import { sigmoid64, unaryRef, type Reference } from "./helpers/reference.js";

const l2Ref: Reference = ([x], [s]) => {
  const D = s[s.length - 1], out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let n = 0;
    for (let d = 0; d < D; d++) n += x[r * D + d] ** 2;
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d] / Math.sqrt(n);
  }
  return { data: out, shape: [...s] };
};

/** Symmetric InfoNCE in float64: inputs are normalised [N, E] image and text embeddings and a scalar. */
const infoNceRef: Reference = ([img, txt, ls], [si]) => {
  const [N, E] = si, scale = Math.exp(ls[0]);
  const logit = (t: number, i: number) => {
    let s = 0;
    for (let e = 0; e < E; e++) s += txt[t * E + e] * img[i * E + e];
    return scale * s;
  };
  const ce = (row: (j: number) => number, target: number) => {
    const xs = Array.from({ length: N }, (_, j) => row(j));
    const m = Math.max(...xs);
    return Math.log(xs.reduce((a, v) => a + Math.exp(v - m), 0)) + m - xs[target];
  };
  let perText = 0, perImage = 0;
  for (let k = 0; k < N; k++) {
    perText += ce((j) => logit(k, j), k);
    perImage += ce((j) => logit(j, k), k);
  }
  return { data: Float64Array.of((perText / N + perImage / N) / 2), shape: [] };
};

test("quickGelu, l2Normalize and the symmetric InfoNCE loss match float64 references, forward and backward", () => {
  gradcheck("quickGelu [4,7]", [{ shape: [4, 7], std: 2 }], ([x]) => quickGelu(x), unaryRef((x) => x * sigmoid64(1.702 * x)));
  gradcheck("l2Normalize [5,6] (transposed view)", [{ shape: [5, 6], view: { transpose: [0, 1] } }], ([x]) => l2Normalize(x), l2Ref);
  gradcheck("contrastiveLoss N=5 E=4", [{ shape: [5, 4] }, { shape: [5, 4] }, { shape: [] , range: [0.5, 2] }],
    ([a, b, s]) => contrastiveLoss(l2Normalize(a), l2Normalize(b), s).loss,
    (xs, shapes) => infoNceRef([l2Ref([xs[0]], [shapes[0]]).data, l2Ref([xs[1]], [shapes[1]]).data, xs[2]], shapes));
});

test("contrastiveLoss refuses mismatched embeddings and a batch with no negatives", () => {
  assert.throws(() => contrastiveLoss(randn([3, 4]), randn([3, 5]), tensor([1], [])), /expected two \[N, E\] tensors of one shape/);
  assert.throws(() => contrastiveLoss(randn([1, 4]), randn([1, 4]), tensor([1], [])), /no negatives/);
});

const tiny = () => clipConfig({
  projection_dim: 8,
  text_config: { vocab_size: 20, eos_token_id: 2, pad_token_id: 0, hidden_size: 16, intermediate_size: 32, max_position_embeddings: 6 },
  vision_config: { hidden_size: 16, intermediate_size: 32, image_size: 8, patch_size: 4 },
});

test("the patch embedding (reshape + matmul) equals a direct strided convolution", () => {
  const model = new ClipModel(tiny(), { seed: 3 });
  const pe = model.vision_model.embeddings.patch_embedding;
  const x = randn([2, 3, 8, 8]);
  const out = noGrad(() => pe.forward(x).toArray());
  const w = pe.weight.toArray(), px = x.toArray();
  const [D, C, P, S, G] = [16, 3, 4, 8, 2];
  for (let b = 0; b < 2; b++) for (let gy = 0; gy < G; gy++) for (let gx = 0; gx < G; gx++) for (let d = 0; d < D; d++) {
    let s = 0;
    for (let c = 0; c < C; c++) for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) {
      s += w[((d * C + c) * P + i) * P + j] * px[((b * C + c) * S + gy * P + i) * S + gx * P + j];
    }
    const got = out[((b * G * G) + gy * G + gx) * D + d];
    assert.ok(Math.abs(got - s) < 1e-5 * Math.max(1, Math.abs(s)), `patch (${b},${gy},${gx}) dim ${d}: ${got} vs ${s}`);
  }
});

test("CLIP configs are validated with the field at fault named", () => {
  assert.throws(() => clipConfig({ text_config: { vocab_size: 10, eos_token_id: 2 }, vision_config: { image_size: 30, patch_size: 8 } }), /image_size 30 is not a multiple of patch_size 8/);
  assert.throws(() => clipConfig({ text_config: { vocab_size: 10, eos_token_id: 12, bos_token_id: 1 } }), /eos_token_id 12 is outside the vocabulary/);
  assert.throws(() => clipConfig({ text_config: { vocab_size: 10, eos_token_id: 2, hidden_act: "relu" as "gelu_new" } }), /hidden_act "relu" is not supported/);
  assert.throws(() => clipConfig({ text_config: { vocab_size: 10, eos_token_id: 2, hidden_size: 30, num_attention_heads: 4 } }), /not divisible/);
});

test("text embeddings are read at the first eos; padding after it changes nothing; a row without eos is refused", () => {
  const model = new ClipModel(tiny(), { seed: 1 });
  const [a, b] = noGrad(() => [model.textEmbeds(ids([[5, 6, 2, 0, 0, 0]])).toArray(), model.textEmbeds(ids([[5, 6, 2, 9, 9, 9]])).toArray()]);
  assert.deepEqual(Array.from(a), Array.from(b));
  const c = noGrad(() => model.textEmbeds(ids([[5, 7, 2, 0, 0, 0]])).toArray());
  assert.notDeepEqual(Array.from(a), Array.from(c));
  assert.throws(() => model.textEmbeds(ids([[5, 6, 7, 8]])), /row 0 .* has no eos token \(id 2\)/);
  assert.throws(() => model.imageEmbeds(randn([1, 3, 16, 16])), /pixels\[1,3,16,16\]: expected \[B, 3, 8, 8\]/);
});

test("a saved CLIP loads back with Hugging Face config fields and identical outputs", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-clip-"));
  try {
    const model = new ClipModel(tiny(), { seed: 7 });
    saveClip(dir, model);
    const again = loadClip(dir);
    assert.deepEqual(again.config, model.config);
    const x = randn([2, 3, 8, 8]), t = ids([[3, 4, 2, 0, 0, 0], [7, 2, 0, 0, 0, 0]]);
    const [l1, l2] = noGrad(() => [model.forward(x, t).loss.item(), again.forward(x, t).loss.item()]);
    assert.equal(l1, l2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("captions become fixed-length ids: tokens, eos, padding; long captions are cut to keep the eos", () => {
  const tok = trainCaptionTokenizer(["a red apple", "a green pear", "an emoji of a dog", "flags"], 300);
  const enc = new CaptionEncoder(tok, 6);
  const out = enc.encodeBatch(["a red apple", "an emoji of a dog with a very long caption that goes on"]);
  assert.equal(out.length, 12);
  for (let r = 0; r < 2; r++) {
    const row = Array.from(out.subarray(r * 6, (r + 1) * 6));
    const at = row.indexOf(enc.eos);
    assert.ok(at > 0, `row ${r} has an eos after its tokens: ${row}`);
    assert.ok(row.slice(at + 1).every((v) => v === enc.pad));
  }
  assert.equal(out[11], enc.eos, "a cut caption still ends with the eos");
  assert.throws(() => new CaptionEncoder(tok, 1), /length 1 must be an integer >= 2/);
});

test("a CLIP training step and an inference pass free every buffer they allocate (none is left to the GC)", () => {
  const model = new ClipModel(tiny(), { seed: 4 });
  const t = ids([[3, 4, 2, 0, 0, 0], [7, 2, 0, 0, 0, 0], [9, 9, 9, 2, 0, 0]]);
  const step = () => {
    const px = randn([3, 3, 8, 8]);
    const { loss } = model.forward(px, t);
    loss.backward();
    loss.release();
    px.release();
  };
  step();  // the first step allocates the parameters' gradients, which stay
  const before = memoryStats().liveBuffers;
  for (let i = 0; i < 4; i++) step();
  for (let i = 0; i < 4; i++) noGrad(() => model.forward(randn([3, 3, 8, 8]), t).loss.item());
  assert.equal(memoryStats().liveBuffers, before);
});

test("a checkpoint in Hugging Face's export layout loads: extra config fields and position_ids buffers are ignored", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-clip-hf-"));
  try {
    const model = new ClipModel(tiny(), { seed: 8 });
    const tensors: Record<string, RawTensor> = {};
    for (const [name, p] of model.namedParameters()) tensors[name] = f32([...p.shape], p.toArray() as Float32Array);
    const positions = (n: number): RawTensor => ({ dtype: "I64", shape: [1, n], data: new Uint8Array(new BigInt64Array(Array.from({ length: n }, (_, i) => BigInt(i))).buffer) });
    tensors["text_model.embeddings.position_ids"] = positions(6);
    tensors["vision_model.embeddings.position_ids"] = positions(5);
    saveSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
    const c = model.config;
    writeFileSync(join(dir, "config.json"), JSON.stringify({
      architectures: ["CLIPModel"], model_type: "clip", torch_dtype: "float32", transformers_version: "4.44.0", projection_dim: c.projection_dim,
      logit_scale_init_value: c.logit_scale_init_value, initializer_factor: 1.0,
      text_config: { ...c.text_config, attention_dropout: 0.0, dropout: 0.0, initializer_range: 0.02, torch_dtype: "float32" },
      vision_config: { ...c.vision_config, attention_dropout: 0.0, dropout: 0.0, initializer_range: 0.02 },
    }));
    const loaded = loadClip(dir);
    const x = randn([1, 3, 8, 8]);
    const [a, b] = noGrad(() => [model.imageEmbeds(x).toArray(), loaded.imageEmbeds(x).toArray()]);
    assert.deepEqual(Array.from(a), Array.from(b));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ model_type: "clip_vision_model" }));
    assert.throws(() => loadClip(dir), /model_type "clip_vision_model", expected "clip"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
