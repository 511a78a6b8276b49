// CLIP parity with PyTorch: image/text embeddings, logits, the symmetric InfoNCE loss, every
// gradient (Conv2d patch embedding included) and 10 clipped AdamW steps of a tiny CLIP match
// the float64 golden values of scripts/torch_parity_clip.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ClipModel, clipConfig, type ClipConfig } from "../src/models/clip/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { ids, tensor } from "../src/tensor/index.js";
import { closeTo, fixtureGroups, gradsMatch, loadFixture, unpack, type Packed } from "./helpers/fixtures.js";

interface ClipFixture {
  config: ClipConfig;
  params: Record<string, Packed>;
  pixel_values: Packed;
  input_ids: number[][];
  image_embeds: Packed;
  text_embeds: Packed;
  logits_per_text: Packed;
  loss: number;
  grads: Record<string, Packed>;
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; decay: string[]; clip: number };
  train_losses: number[];
  grad_norms: number[];
}

const fx = loadFixture<ClipFixture>("clip_tiny.json");

function build(): ClipModel {
  const model = new ClipModel(clipConfig(fx.config));
  model.loadStateDict(Object.fromEntries(Object.entries(fx.params).map(([k, v]) => [k, unpack(v)])));
  return model;
}
const pixels = () => {
  const p = unpack(fx.pixel_values);
  return tensor(p.data, p.shape);
};

test("CLIP parameter names and shapes are Hugging Face's (patch embedding as a Conv2d weight)", () => {
  const model = build();
  const names = model.namedParameters().map(([n, p]) => `${n}:${p.shape.join("x")}`);
  const want = Object.entries(fx.params).map(([n, p]) => `${n}:${p.shape.join("x")}`);
  assert.deepEqual([...names].sort(), [...want].sort());
  assert.ok(names.includes("vision_model.embeddings.patch_embedding.weight:16x3x4x4"));
  assert.ok(names.includes("logit_scale:"));
});

test("tiny CLIP embeddings, logits, loss and every gradient match PyTorch", () => {
  const model = build();
  const out = model.forward(pixels(), ids(fx.input_ids));
  for (const t of [out.imageEmbeds, out.textEmbeds, out.logitsPerText]) t.retain();
  closeTo(out.imageEmbeds.toArray(), unpack(fx.image_embeds).data, 1e-4, 1e-5, "image_embeds");
  closeTo(out.textEmbeds.toArray(), unpack(fx.text_embeds).data, 1e-4, 1e-5, "text_embeds");
  closeTo(out.logitsPerText.toArray(), unpack(fx.logits_per_text).data, 1e-4, 1e-4, "logits_per_text");
  assert.ok(Math.abs(out.loss.item() - fx.loss) < 1e-5, `loss ${out.loss.item()} vs ${fx.loss}`);
  out.loss.backward();
  // A key bias adds the same score to every key of a query, which the softmax cancels: its
  // gradient is exactly 0 in exact arithmetic (PyTorch's float64 gives ~1e-16), so it is
  // compared against the scale of the other attention gradients instead of its own.
  const keyBias = (n: string) => n.endsWith("self_attn.k_proj.bias");
  gradsMatch(model.namedParameters().filter(([n]) => !keyBias(n)), Object.fromEntries(Object.entries(fx.grads).filter(([n]) => !keyBias(n))));
  const named = new Map(model.namedParameters());
  for (const [name, p] of named) {
    if (!keyBias(name)) continue;
    const q = Array.from(named.get(name.replace("k_proj", "q_proj"))!.grad!.toArray());
    const scale = q.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (const v of Array.from(p.grad!.toArray())) assert.ok(Math.abs(v) < 1e-5 * scale, `${name}: gradient ${v} should vanish (q_proj.bias scale ${scale})`);
  }
});

test("tiny CLIP first 10 AdamW steps (clipped) match PyTorch", () => {
  const model = build();
  const opt = new AdamW(fixtureGroups(model.namedParameters(), fx.adamw.decay, fx.adamw.weight_decay),
    { lr: fx.adamw.lr, betas: fx.adamw.betas, eps: fx.adamw.eps });
  const x = pixels(), y = ids(fx.input_ids);
  for (let step = 0; step < 10; step++) {
    opt.zeroGrad();
    const { loss } = model.forward(x, y);
    const value = loss.item();
    loss.backward();
    const norm = clipGradNorm(model.parameters(), fx.adamw.clip);
    opt.step();
    assert.ok(Math.abs(value - fx.train_losses[step]) < 5e-5 * Math.max(1, Math.abs(fx.train_losses[step])), `step ${step}: loss ${value} vs ${fx.train_losses[step]}`);
    assert.ok(Math.abs(norm - fx.grad_norms[step]) < 2e-4 * fx.grad_norms[step], `step ${step}: grad norm ${norm} vs ${fx.grad_norms[step]}`);
  }
});
