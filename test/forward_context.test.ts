// The forward context: decoding and multi-adapter inference run each model's one forward.
// An adapter applied to a shared base (the server's path) predicts what the same adapter
// applied to a base of its own predicts (LoRA merged, full weights loaded), and leaves the
// shared base exactly as it was; the decoding ops refuse bad segments, overflowing caches and
// tensors that need gradients.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { BertForMaskedLM, bertConfig, saveBert } from "../src/models/bert/index.js";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { runAdaptation } from "../src/adapt/run.js";
import { applyAdapter, loadAdapted } from "../src/adapt/apply.js";
import { loadAdapter } from "../src/adapt/artifact.js";
import { loadBase } from "../src/adapt/base.js";
import { SequenceClassifier } from "../src/adapt/classifier.js";
import { toFloat32 } from "../src/io/safetensors.js";
import { KVCache } from "../src/nn/context.js";
import { cachedAttention, lowRankUpdate } from "../src/tensor/ops/decode.js";
import { noGrad } from "../src/tensor/autograd.js";
import { empty, tensor } from "../src/tensor/tensor.js";
import { assertClose } from "./helpers/gradcheck.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-forward-context-"));
const rows: string[] = [];
for (const t of ["movie", "plot", "cast", "meal", "song", "hotel"]) {
  for (const w of ["good", "great", "nice", "bad", "awful", "dull"]) rows.push(JSON.stringify({ text: `the ${t} was ${w}`, label: ["good", "great", "nice"].includes(w) ? "pos" : "neg" }));
}
const taskFile = join(dir, "reviews.jsonl");
writeFileSync(taskFile, rows.join("\n") + "\n");
const tok = new BPETextTokenizer(trainBPE(rows.map((r) => (JSON.parse(r) as { text: string }).text), { vocabSize: 280 }));
const gptDir = join(dir, "gpt"), bertDir = join(dir, "bert");
saveGPT(gptDir, new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 1 }));
tok.bpe.save(join(gptDir, "tokenizer.json"));
saveBert(bertDir, new BertForMaskedLM(bertConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 32 }), { seed: 3 }));
tok.bpe.save(join(bertDir, "tokenizer.json"));
const texts = ["the movie was good", "the hotel was dull", "the song was", "awful"];

for (const [name, base] of [["GPT", gptDir], ["BERT", bertDir]] as const) {
  for (const method of ["lora", "full"] as const) {
    test(`${name} ${method}: on a shared base the adapter predicts what it does on its own base, and the shared base is unchanged`, async () => {
      const out = join(dir, `${name}-${method}`);
      await runAdaptation({ base, method, task: taskFile, out, labelsPerClass: 6, steps: 25, lr: 1e-2 });
      const own = loadAdapted(out, base).predict(texts);
      const shared = loadBase(base);
      const before = Object.entries(shared.model.stateDict()).map(([k, t]) => [k, Float32Array.from(t.data)] as const);
      const applied = applyAdapter(shared, loadAdapter(out, base), out);
      const got = applied.predict(texts);
      assertClose(`${name} ${method} shared vs own`, got.flat(), own.flat(), 1e-5, 1e-4);
      // The body's change must matter, or the comparison above proves nothing: the same head on the bare base differs.
      const { tensors } = loadAdapter(out, base);
      const headOnly = new SequenceClassifier(shared.model, shared.tok, 2);
      headOnly.score.loadStateDict({ weight: { shape: tensors["score.weight"].shape, data: toFloat32(tensors["score.weight"]) }, bias: { shape: tensors["score.bias"].shape, data: toFloat32(tensors["score.bias"]) } });
      const diff = Math.max(...headOnly.predict(texts).flat().map((p, i) => Math.abs(p - got.flat()[i])));
      assert.ok(diff > 1e-4, `the ${method} body changes nothing (max diff ${diff})`);
      const after = shared.model.stateDict();
      for (const [k, v] of before) assert.deepEqual(after[k].data, v, `${k} of the shared base changed`);
    });
  }
}

test("cachedAttention: segments must cover the rows in order; caches must fit; no gradients", () => {
  noGrad(() => {
    const C = 8, qkv = tensor(Array.from({ length: 3 * 3 * C }, (_, i) => Math.sin(i)), [3, 3 * C]);
    const cache = new KVCache(1, 4, C);
    const seg = (start: number, count: number, past = 0) => ({ start, count, past, keys: cache.k[0], values: cache.v[0] });
    assert.throws(() => cachedAttention(qkv, 2, [seg(0, 2)]), /segments cover 2 rows, qkv has 3/);
    assert.throws(() => cachedAttention(qkv, 2, [seg(1, 3)]), /must cover rows 0..2 in order/);
    assert.throws(() => cachedAttention(qkv, 2, [seg(0, 3, 2)]), /5 positions exceed the cache capacity 4/);
    assert.throws(() => cachedAttention(qkv, 3, [seg(0, 3)]), /not divisible by nHead=3/);
    assert.throws(() => cachedAttention(qkv, 2, [{ ...seg(0, 3), values: empty([5, C]) }]), /differ/);
    const y = cachedAttention(qkv, 2, [seg(0, 3)]);
    assert.deepEqual(y.shape, [3, C]);
    // The first row sees only itself: its output is its own value row.
    assertClose("row 0 = v0", y.data.subarray(0, C), qkv.data.subarray(2 * C, 3 * C), 1e-6, 1e-6);
  });
  const q = tensor(new Array(3 * 8).fill(0.1), [1, 24]);
  q.requiresGrad = true;
  const cache = new KVCache(1, 4, 8);
  assert.throws(() => cachedAttention(q, 2, [{ start: 0, count: 1, past: 0, keys: cache.k[0], values: cache.v[0] }]), /run it under noGrad/);
});

test("lowRankUpdate: adds scale (x A) B to the chosen rows only; checks shapes and rows", () => {
  noGrad(() => {
    const x = tensor([[1, 2], [3, 4], [5, 6]]), y = tensor([[0, 0, 0], [0, 0, 0], [0, 0, 0]]);
    const A = tensor([[1], [1]]), B = tensor([[1, 2, 3]]);
    lowRankUpdate(y, x, A, B, 0.5, 1, 2);
    assert.deepEqual(Array.from(y.data), [0, 0, 0, 3.5, 7, 10.5, 5.5, 11, 16.5]);
    assert.throws(() => lowRankUpdate(y, x, A, B, 1, 2, 2), /rows \[2, 4\) outside \[0, 3\)/);
    assert.throws(() => lowRankUpdate(y, x, B, A, 1, 0, 1), /expected \[\.\.\., rows, 1\]|expected contiguous A/);
  });
});
