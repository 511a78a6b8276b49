// GPT-2 model behaviour: KV-cached generation equals full recomputation, sampling
// options, checkpoints round-trip through safetensors + config.json, bad checkpoints
// give clear errors, and training memory reaches a steady state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GPT, gptConfig, generate, sampleToken, saveGPT, loadGPT } from "../src/models/gpt/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { ids, noGrad, Rng } from "../src/tensor/index.js";
import { backend } from "../src/native/index.js";

const config = gptConfig({ vocab_size: 50, n_positions: 16, n_embd: 24, n_layer: 2, n_head: 3 });

function argmaxRow(data: Float32Array, row: number, V: number): number {
  let best = 0;
  for (let i = 1; i < V; i++) if (data[row * V + i] > data[row * V + best]) best = i;
  return best;
}

test("greedy generation with the KV cache equals recomputing the whole sequence", () => {
  const model = new GPT(config, { seed: 3 });
  const prompt = [1, 7, 3, 9];
  const { tokens } = generate(model, prompt, { maxNewTokens: 10 });
  assert.equal(tokens.length, 10);
  const seq = [...prompt];
  for (let i = 0; i < 10; i++) {
    const next = noGrad(() => {
      const { logits } = model.forward(ids([seq]));
      return argmaxRow(logits.data, seq.length - 1, config.vocab_size);
    });
    seq.push(next);
  }
  assert.deepEqual(tokens, seq.slice(prompt.length));
});

test("generation slides its window past n_positions and honours stop tokens", () => {
  const model = new GPT(config, { seed: 4 });
  const long = generate(model, [1, 2, 3], { maxNewTokens: 40, temperature: 1, seed: 1 });
  assert.equal(long.tokens.length, 40);
  assert.equal(long.finishReason, "length");
  const first = generate(model, [1, 2, 3], { maxNewTokens: 5 }).tokens[0];
  const stopped = generate(model, [1, 2, 3], { maxNewTokens: 5, stopTokens: [first] });
  assert.deepEqual(stopped, { tokens: [], finishReason: "stop" });
  const streamed: number[] = [];
  generate(model, [1], { maxNewTokens: 6, onToken: (t) => { streamed.push(t); return streamed.length < 3; } });
  assert.equal(streamed.length, 3);
  assert.throws(() => generate(model, [], { maxNewTokens: 1 }), /prompt is empty/);
  assert.throws(() => generate(model, [999], { maxNewTokens: 1 }), /out of range \[0, 50\)/);
});

test("sampling: top-k 1 is greedy, top-p keeps the nucleus, same seed same tokens", () => {
  const logits = new Float32Array([0.1, 2.0, 1.9, -1, 0.5]);
  const rng = new Rng(5);
  for (let i = 0; i < 20; i++) assert.equal(sampleToken(logits, { temperature: 1, topK: 1 }, rng), 1);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.6 }, rng));
  assert.deepEqual([...seen].sort(), [1, 2]);
  const model = new GPT(config, { seed: 5 });
  const a = generate(model, [4, 5], { maxNewTokens: 8, temperature: 0.9, topK: 10, seed: 42 });
  const b = generate(model, [4, 5], { maxNewTokens: 8, temperature: 0.9, topK: 10, seed: 42 });
  assert.deepEqual(a, b);
});

test("save and load round-trip through model.safetensors + config.json", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-gpt-"));
  try {
    const model = new GPT(config, { seed: 6 });
    saveGPT(dir, model);
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.equal(cfg.model_type, "gpt2");
    assert.deepEqual(cfg.architectures, ["GPT2LMHeadModel"]);
    assert.equal(cfg.n_embd, 24);
    const loaded = loadGPT(dir);
    const x = ids([[3, 1, 4, 1, 5]]);
    const [a, b] = noGrad(() => [model.forward(x).logits.toArray(), loaded.forward(x).logits.toArray()]);
    assert.deepEqual(b, a);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("corrupt, truncated and mismatched checkpoints give clear errors", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-gpt-bad-"));
  try {
    saveGPT(dir, new GPT(config));
    const file = join(dir, "model.safetensors");
    const good = readFileSync(file);
    writeFileSync(file, good.subarray(0, good.length - 100));
    assert.throws(() => loadGPT(dir), /model\.safetensors.*(outside the data section|truncated)/);
    writeFileSync(file, Buffer.from("not a safetensors file at all"));
    assert.throws(() => loadGPT(dir), /model\.safetensors/);
    writeFileSync(file, good);
    writeFileSync(join(dir, "config.json"), "{ broken");
    assert.throws(() => loadGPT(dir), /config\.json is not valid JSON/);
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, n_embd: 30 }));
    assert.throws(() => loadGPT(dir), /has shape \[50,24\] in the checkpoint, expected \[50,30\]/);
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, model_type: "bert" }));
    assert.throws(() => loadGPT(dir), /expected "gpt2"/);
    assert.throws(() => loadGPT(join(dir, "missing")), /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("training reaches a steady state: no fresh native allocations after warm-up", () => {
  const model = new GPT(gptConfig({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4 }));
  const opt = new AdamW(model.paramGroups(0.1), { lr: 1e-3 });
  const rng = new Rng(1);
  const batch = () => ids(Array.from({ length: 4 }, () => Array.from({ length: 32 }, () => rng.int(64))));
  const step = () => {
    const x = batch(), y = batch();
    const { loss } = model.forward(x, y);
    loss!.backward();
    clipGradNorm(model.parameters(), 1);
    opt.step();
    opt.zeroGrad();
    loss!.release();
    x.release();
    y.release();
  };
  for (let i = 0; i < 3; i++) step();
  const before = backend.memoryStats();
  for (let i = 0; i < 20; i++) step();
  const after = backend.memoryStats();
  assert.equal(after.freshAllocations, before.freshAllocations, "a steady-state step allocated fresh memory");
  assert.equal(after.bytesInUse, before.bytesInUse, "bytes in use grew across steps (a leak)");
});
