// LoRA: a fresh adapter is a no-op; gradients reach only A and B (and match finite differences
// through one LoRALinear, both weight layouts); a few AdamW steps lower a toy loss; merge equals
// the unmerged forward and skips the update, unmerge restores the base; the generation path sees
// the adapter; the trainable fraction of a rank-4 adapter; the adapter artifact round trip and
// its size; remove(); clear errors for bad options.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GPT, gptConfig, forwardCached, KVCache, loadGPT, saveGPT } from "../src/models/gpt/index.js";
import { Linear } from "../src/nn/layers.js";
import { AdamW } from "../src/optim/index.js";
import { ids, noGrad, Rng, tensor as tensorOf, type Tensor } from "../src/tensor/index.js";
import { LoRAError, LoRALinear, applyLoRA } from "../src/adapt/lora.js";
import { baseIdentity, loadAdapter, saveAdapter } from "../src/adapt/artifact.js";
import { assertClose, gradcheck } from "./helpers/gradcheck.js";
import type { Reference } from "./helpers/reference.js";

const tiny = () => new GPT(gptConfig({ vocab_size: 64, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 16 }), { seed: 3 });

function batch(seed: number, B = 2, T = 8, V = 64): { x: Tensor; y: Tensor } {
  const rng = new Rng(seed);
  const seq = Array.from({ length: B * (T + 1) }, () => Math.floor(rng.uniform() * V));
  const xs: number[] = [], ys: number[] = [];
  for (let b = 0; b < B; b++) {
    const row = seq.slice(b * (T + 1), (b + 1) * (T + 1));
    xs.push(...row.slice(0, T));
    ys.push(...row.slice(1));
  }
  return { x: ids(xs, [B, T]), y: ids(ys, [B, T]) };
}

const logitsOf = (m: GPT, x: Tensor): Float32Array => noGrad(() => m.forward(x).logits.toArray() as Float32Array);
const snapshot = (m: GPT): Map<string, Float32Array> => new Map(m.namedParameters().map(([n, p]) => [n, p.toArray() as Float32Array]));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

test("a fresh adapter is an exact no-op and adapts the GPT-2 linear fields", () => {
  const m = tiny();
  const { x } = batch(1);
  const before = logitsOf(m, x);
  const nBase = m.namedParameters().length;
  const lora = applyLoRA(m, { rank: 4, alpha: 8, seed: 1 });
  assert.deepEqual(lora.layers.map(([n]) => n), [0, 1].flatMap((i) => [
    `transformer.h.${i}.attn.c_attn`, `transformer.h.${i}.attn.c_proj`, `transformer.h.${i}.mlp.c_fc`, `transformer.h.${i}.mlp.c_proj`]));
  assert.ok(m.transformer.h[0].attn.c_attn instanceof LoRALinear);
  assert.deepEqual(logitsOf(m, x), before);
  // Frozen base: namedParameters (requiresGrad only) lists just the adapter, under the same names as stateDict().
  const names = m.namedParameters().map(([n]) => n);
  assert.deepEqual(names, Object.keys(lora.stateDict()));
  assert.ok(names.every((n) => /\.lora_[AB]$/.test(n)), names.join(","));
  assert.equal(m.transformer.h[1].mlp.c_fc.weight.shape.join(), "32,128"); // still the base's tensor
  const A = lora.layers[0][1].lora_A;
  assert.deepEqual(A.shape, [32, 4]);
  const a = Array.from(A.toArray());
  const variance = a.reduce((s, v) => s + v * v, 0) / a.length;
  assert.ok(variance > 0.25 * 0.5 && variance < 0.25 * 1.6, `A variance ${variance}, expected ~1/r`);
  assert.ok(lora.layers.every(([, l]) => l.lora_B.toArray().every((v) => v === 0)));
  // remove() restores the original Linear fields and the base's trainability.
  const originals = lora.layers.map(([, l]) => l.base);
  lora.remove();
  assert.equal(m.transformer.h[0].attn.c_attn, originals[0]);
  assert.ok(!(m.transformer.h[1].mlp.c_proj instanceof LoRALinear));
  assert.equal(m.namedParameters().length, nBase);
  assert.throws(() => lora.merge(), /removed/);
});

test("gradients reach only lora_A / lora_B", () => {
  const m = tiny();
  const lora = applyLoRA(m, { rank: 2, alpha: 4, dropout: 0.1, seed: 2 });
  // Give B values so that A receives a non-zero gradient as well.
  const rng = new Rng(5);
  for (const [, l] of lora.layers) l.lora_B.data.forEach((_, i, d) => (d[i] = rng.normal() * 0.1));
  const { x, y } = batch(2);
  m.train();
  m.loss(x, y).backward();
  const base = new Set<Tensor>(lora.layers.flatMap(([, l]) => [l.weight, ...(l.bias ? [l.bias] : [])]));
  base.add(m.transformer.wte.weight).add(m.transformer.ln_f.weight).add(m.transformer.h[0].ln_1.bias);
  for (const t of base) {
    assert.equal(t.requiresGrad, false);
    assert.equal(t.grad, null);
  }
  for (const p of lora.trainableParameters()) {
    assert.ok(p.grad !== null, p.name);
    assert.ok(p.grad.toArray().some((v) => v !== 0), `${p.name} gradient is all zero`);
  }
});

// y = x W (+ b) + s * x A B in float64, W in either layout.
function loraRef(W: Float32Array, bias: Float32Array | null, layout: "in_out" | "out_in", inF: number, outF: number, s: number): Reference {
  return ([x, A, B], [sx, sa]) => {
    const r = sa[1], rows = x.length / inF;
    const out = new Float64Array(rows * outF);
    for (let n = 0; n < rows; n++) {
      const h = new Float64Array(r);
      for (let k = 0; k < r; k++) for (let i = 0; i < inF; i++) h[k] += x[n * inF + i] * A[i * r + k];
      for (let o = 0; o < outF; o++) {
        let v = bias === null ? 0 : bias[o];
        for (let i = 0; i < inF; i++) v += x[n * inF + i] * (layout === "in_out" ? W[i * outF + o] : W[o * inF + i]);
        for (let k = 0; k < r; k++) v += s * h[k] * B[k * outF + o];
        out[n * outF + o] = v;
      }
    }
    return { data: out, shape: [...sx.slice(0, -1), outF] };
  };
}

for (const layout of ["in_out", "out_in"] as const) {
  test(`LoRALinear (${layout}): forward and gradients of x, A, B match float64 finite differences`, () => {
    const [inF, outF, r] = [6, 5, 3];
    const base = new Linear(inF, outF, { layout, std: 0.5, rng: new Rng(7) });
    base.bias!.data.set([0.1, -0.2, 0.3, 0, 0.5]);
    const lora = new LoRALinear(base, { rank: r, alpha: 6, seed: 4 });
    assert.equal(base.weight.requiresGrad, false);
    const W = base.weight.toArray() as Float32Array, b = base.bias!.toArray() as Float32Array;
    gradcheck(`lora ${layout}`, [{ shape: [2, 3, inF] }, { shape: [inF, r] }, { shape: [r, outF] }], ([x, A, B]) => {
      lora.lora_A = A;
      lora.lora_B = B;
      return lora.forward(x);
    }, loraRef(W, b, layout, inF, outF, 2));
    assert.equal(base.weight.grad, null);
    assert.equal(base.bias!.grad, null);
  });

  test(`LoRALinear (${layout}): merge folds the update into the base weight, unmerge restores it`, () => {
    const [inF, outF] = [8, 12];
    const base = new Linear(inF, outF, { layout, rng: new Rng(9) });
    const W0 = base.weight.toArray() as Float32Array;
    const lora = new LoRALinear(base, { rank: 2, alpha: 3, seed: 1 });
    const rng = new Rng(11);
    lora.lora_B.data.forEach((_, i, d) => (d[i] = rng.normal()));
    const xs = Array.from({ length: 4 * inF }, () => rng.normal());
    const X = new Float32Array(xs);
    const run = () => noGrad(() => {
      const t = tensorOf(X, [4, inF]);
      return lora.forward(t).toArray() as Float32Array;
    });
    const want = loraRef(W0, base.bias!.toArray() as Float32Array, layout, inF, outF, 1.5)(
      [Float64Array.from(X), Float64Array.from(lora.lora_A.toArray()), Float64Array.from(lora.lora_B.toArray())], [[4, inF], [inF, 2], [2, outF]]);
    const unmerged = run();
    assertClose("unmerged forward", unmerged, want.data, 1e-5, 1e-4);
    lora.merge();
    assert.equal(lora.merged, true);
    assert.ok(maxAbsDiff(base.weight.toArray(), W0) > 1e-3, "merge did not change the base weight");
    assertClose("merged forward", run(), unmerged, 1e-5, 1e-4);
    // The merged forward skips the update: changing B now has no effect.
    const Bsave = lora.lora_B.toArray() as Float32Array;
    lora.lora_B.data.fill(0, 0, lora.lora_B.size);
    assertClose("merged forward ignores B", run(), unmerged, 1e-5, 1e-4);
    lora.lora_B.data.set(Bsave);
    lora.unmerge();
    assert.ok(maxAbsDiff(base.weight.toArray(), W0) < 1e-5);
    assertClose("unmerged again", run(), unmerged, 1e-6, 1e-6);
  });
}

test("AdamW on the adapter lowers a toy loss; merge/unmerge on the trained GPT; generation sees the adapter", () => {
  const m = tiny();
  const base0 = snapshot(m);
  const lora = applyLoRA(m, { rank: 4, alpha: 8, seed: 3 });
  const opt = new AdamW(lora.trainableParameters(), { lr: 1e-2, weightDecay: 0 });
  const { x, y } = batch(4);
  m.train();
  const losses: number[] = [];
  for (let step = 0; step < 15; step++) {
    m.zeroGrad();
    const loss = m.loss(x, y);
    losses.push(loss.item());
    loss.backward();
    opt.step();
  }
  assert.ok(losses[losses.length - 1] < losses[0] - 0.05, `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
  lora.remove({ keepMerged: false }); // compare base tensors by name with the adapter taken out
  const after = snapshot(m);
  for (const [n, v] of base0) assert.deepEqual(after.get(n), v, `${n} changed during adaptation`);
  // Re-apply and load the trained factors.
  const trained = Object.fromEntries(Object.entries(lora.stateDict()).map(([k, t]) => [k, t.toArray()]));
  const lora2 = applyLoRA(m, { rank: 4, alpha: 8, seed: 99 });
  lora2.loadStateDict(Object.fromEntries(Object.entries(lora2.stateDict()).map(([k, t]) => [k, { shape: t.shape, data: trained[k] }])));
  m.eval();
  const adapted = logitsOf(m, x);
  assert.ok(maxAbsDiff(adapted, logitsOf(tiny(), x)) > 1e-3, "the trained adapter changes nothing");
  // Generation (KV cache) goes through the same fields: its last logits equal the adapted forward's.
  const V = 64, T = x.shape[1];
  const row0 = Array.from(x.ids.subarray(0, T));
  const cache = new KVCache(2, 16, 32);
  const cached = forwardCached(m, row0, cache);
  cache.release();
  assertClose("forwardCached with LoRA", cached, adapted.subarray((T - 1) * V, T * V), 1e-5, 1e-4);
  // merge: same logits (rtol 1e-4), base weights changed; unmerge: base restored (< 1e-5).
  lora2.merge();
  assert.ok(lora2.layers.every(([, l]) => l.merged));
  assertClose("merged logits", logitsOf(m, x), adapted, 1e-5, 1e-4);
  lora2.unmerge();
  for (const [path, l] of lora2.layers) {
    const d = maxAbsDiff(l.weight.toArray(), base0.get(`${path}.weight`)!);
    assert.ok(d < 1e-5, `${path}.weight differs by ${d} after unmerge`);
  }
  assertClose("unmerged logits", logitsOf(m, x), adapted, 1e-5, 1e-4);
});

test("a rank-4 adapter on a 4-layer, 256-wide GPT trains at most 2% of the parameters", () => {
  const m = new GPT(gptConfig({ vocab_size: 512, n_embd: 256, n_layer: 4, n_head: 4, n_positions: 1024 }), { seed: 0 });
  const lora = applyLoRA(m, { rank: 4 });
  const c = lora.parameterCount();
  // Per block: c_attn 4(256+768) + attn.c_proj 4(256+256) + c_fc 4(256+1024) + mlp.c_proj 4(1024+256).
  assert.equal(c.trainable, 4 * (4 * (256 + 768) + 4 * 512 + 2 * 4 * (256 + 1024)));
  assert.equal(c.trainable, m.numParameters());
  assert.ok(c.fraction <= 0.02, c.summary);
  assert.match(c.summary, /^LoRA: 65\.5K trainable parameters, 1\.\d\d% of 3\.\dM$/);
  console.log(`  ${c.summary}`);
});

test("adapter artifact round trip via saveAdapter / loadAdapter; the file is small", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-lora-"));
  try {
    const cfg = gptConfig({ vocab_size: 64, n_embd: 128, n_layer: 2, n_head: 4, n_positions: 16 });
    const m = new GPT(cfg, { seed: 5 });
    const baseDir = join(dir, "base"), adapterDir = join(dir, "adapter");
    saveGPT(baseDir, m); // before applyLoRA: afterwards namedParameters lists only the adapter
    const lora = applyLoRA(m, { rank: 2, alpha: 4, seed: 6 });
    const rng = new Rng(8);
    for (const p of lora.trainableParameters()) p.data.forEach((_, i, d) => (d[i] = rng.normal() * 0.05));
    const { x } = batch(6);
    m.eval();
    const want = logitsOf(m, x);
    saveAdapter(adapterDir, { method: "lora", task: "toy", labels: ["a", "b"], config: lora.config, base: baseIdentity(baseDir) }, lora.tensors());
    const adapterBytes = statSync(join(adapterDir, "adapter.safetensors")).size;
    const baseBytes = statSync(join(baseDir, "model.safetensors")).size;
    assert.ok(adapterBytes <= 0.05 * baseBytes, `adapter ${adapterBytes} B vs base ${baseBytes} B`);

    const loaded = loadAdapter(adapterDir, baseDir);
    assert.equal(loaded.manifest.method, "lora");
    const c = loaded.manifest.config as { rank: number; alpha: number; targets: string[] };
    const m2 = loadGPT(baseDir);
    const lora2 = applyLoRA(m2, { rank: c.rank, alpha: c.alpha, targets: c.targets, seed: 123 });
    lora2.loadStateDict(loaded.tensors);
    m2.eval();
    assertClose("reloaded adapter logits", logitsOf(m2, x), want, 1e-6, 1e-6);
    // Wrong shapes or names are refused.
    const lora3Model = loadGPT(baseDir);
    const lora3 = applyLoRA(lora3Model, { rank: 3, seed: 0 });
    assert.throws(() => lora3.loadStateDict(loaded.tensors), /lora_A has shape \[128,2\], expected \[128,3\]/);
    const { ["transformer.h.0.mlp.c_fc.lora_B"]: _dropped, ...partial } = loaded.tensors;
    assert.throws(() => lora2.loadStateDict(partial), /missing \[transformer\.h\.0\.mlp\.c_fc\.lora_B\]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad options give clear errors and leave the model untouched", () => {
  const m = tiny();
  const n = m.namedParameters().length;
  assert.throws(() => applyLoRA(m, { rank: 0 }), (e: Error) => e instanceof LoRAError && /rank must be a positive integer, got 0/.test(e.message));
  assert.throws(() => applyLoRA(m, { rank: 2.5 }), /rank must be a positive integer/);
  assert.throws(() => applyLoRA(m, { rank: 4, alpha: -1 }), /alpha must be a finite number > 0, got -1/);
  assert.throws(() => applyLoRA(m, { rank: 4, dropout: 1 }), /dropout must be in \[0, 1\)/);
  assert.throws(() => applyLoRA(m, { rank: 4, targets: ["c_attn", "q_proj"] }), /target "q_proj" matches no Linear layer.*\[c_attn, c_proj, c_fc\]/);
  assert.throws(() => applyLoRA(m, { rank: 4, targets: [] }), /targets must be a non-empty list/);
  assert.throws(() => applyLoRA(m, { rank: 64 }), /rank 64 exceeds min\(in, out\) = 32/);
  assert.equal(m.namedParameters().length, n);
  assert.ok(!(m.transformer.h[0].attn.c_attn instanceof LoRALinear));
  // Targets by path suffix; a second application is refused.
  const lora = applyLoRA(m, { rank: 2, targets: ["attn.c_proj"] });
  assert.deepEqual(lora.layers.map(([p]) => p), ["transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj"]);
  assert.throws(() => applyLoRA(m, { rank: 2 }), /already carries LoRA adapters/);
  assert.throws(() => new LoRALinear(m.transformer.h[0].attn.c_proj, { rank: 2 }), /already carries a LoRA adapter/);
});

test("saving a GPT while an adapter is applied is refused with a clear error", () => {
  const model = new GPT(gptConfig({ vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 1, n_head: 2 }));
  const handle = applyLoRA(model, { rank: 2 });
  const dir = mkdtempSync(join(tmpdir(), "plinth-lora-save-"));
  try {
    assert.throws(() => saveGPT(dir, model), /LoRA adapter is applied/);
    handle.remove();
    saveGPT(dir, model);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
