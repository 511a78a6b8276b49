// Multi-LoRA packed forward: rows for different adapters (and the bare base), some prefilling
// and some decoding, in one batched base forward, give the same logits as running each
// sequence alone through the model with its LoRA applied (applyLoRA + forwardCached).
import { test } from "node:test";
import assert from "node:assert/strict";
import { GPT, gptConfig, forwardCached, KVCache } from "../src/models/gpt/index.js";
import { Rng } from "../src/tensor/index.js";
import { applyLoRA } from "../src/adapt/lora.js";
import { forwardPacked, loraWeights, type LoRAWeights } from "../src/serve/packed.js";

const cfg = gptConfig({ vocab_size: 50, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 });

function randomAdapter(model: GPT, seed: number, rank: number, targets?: string[]): { weights: LoRAWeights; load: (m: GPT) => ReturnType<typeof applyLoRA> } {
  const lora = applyLoRA(model, { rank, alpha: 2 * rank, seed, targets });
  const rng = new Rng(seed + 100);
  for (const t of lora.trainableParameters()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.3;
  const tensors = lora.tensors();
  lora.remove();
  return {
    weights: loraWeights(`a${seed}`, tensors, { rank, alpha: 2 * rank }),
    load: (m: GPT) => {
      const h = applyLoRA(m, { rank, alpha: 2 * rank, seed, targets });
      h.loadStateDict(tensors);
      return h;
    },
  };
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((d, v, i) => Math.max(d, Math.abs(v - b[i])), 0);

test("packed multi-adapter forward equals each sequence run alone with its adapter", () => {
  const model = new GPT(cfg, { seed: 7 });
  const a1 = randomAdapter(model, 1, 4);
  const a2 = randomAdapter(model, 2, 2, ["c_attn", "mlp.c_proj"]);
  const prompts = [[1, 2, 3, 4, 5], [9, 8, 7], [4, 4, 4, 4], [11]];
  const adapters = [a1, null, a2, a1];
  const caches = prompts.map(() => new KVCache(cfg.n_layer, cfg.n_positions, cfg.n_embd));
  // Step 1: everyone prefills together. Step 2: two decode while two start anew (mixed step).
  const first = forwardPacked(model, prompts.map((tokens, i) => ({ tokens, cache: caches[i], adapter: adapters[i]?.weights ?? null })));
  const second = forwardPacked(model, [
    { tokens: [6], cache: caches[0], adapter: a1.weights },
    { tokens: [3], cache: caches[2], adapter: a2.weights },
  ]);
  prompts.forEach((p, i) => {
    const handle = adapters[i]?.load(model);
    const cache = new KVCache(cfg.n_layer, cfg.n_positions, cfg.n_embd);
    const ref = forwardCached(model, p, cache);
    assert.ok(maxDiff(first[i], ref) < 1e-4, `row ${i}: ${maxDiff(first[i], ref)}`);
    if (i === 0 || i === 2) {
      const ref2 = forwardCached(model, [i === 0 ? 6 : 3], cache);
      assert.ok(maxDiff(second[i === 0 ? 0 : 1], ref2) < 1e-4, `decode row ${i}`);
    }
    // The adapter changes the output (the comparison is not vacuous).
    if (handle !== undefined) {
      handle.remove();
      const bare = forwardCached(model, p, new KVCache(cfg.n_layer, cfg.n_positions, cfg.n_embd));
      assert.ok(maxDiff(bare, ref) > 1e-3, `adapter ${i} is a no-op`);
    }
  });
  assert.equal(caches[0].length, 6);
  assert.equal(caches[1].length, 3);
  for (const c of caches) c.release();
});

test("packed forward refuses rows past the cache and adapters of the wrong shape", () => {
  const model = new GPT(cfg, { seed: 7 });
  const cache = new KVCache(cfg.n_layer, 4, cfg.n_embd);
  assert.throws(() => forwardPacked(model, [{ tokens: [1, 2, 3, 4, 5], cache, adapter: null }]), /exceed the cache capacity 4/);
  assert.throws(() => loraWeights("x", {}, { rank: 2 }), /no lora_A/);
  cache.release();
});
