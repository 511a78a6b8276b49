// The sentence-embedding objective: runs in the one Trainer on GPT and BERT bodies (dropout
// noise switched on only while the views are drawn), validates by neighbouring-span retrieval,
// and `pretrain --objective embed --init` continues a base and records the objective and pooling.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryTokens } from "../src/data/tokens.js";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { BertForMaskedLM, bertConfig } from "../src/models/bert/index.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { loadModel, poolingOf, saveModel } from "../src/models/registry.js";
import { loadSafetensors } from "../src/io/safetensors.js";
import { Dropout } from "../src/nn/layers.js";
import { Rng } from "../src/tensor/rng.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { sentenceEmbedding } from "../src/train/embed.js";
import { Trainer } from "../src/train/trainer.js";
import { pretrain } from "../src/cli/pretrain.js";

const rng = new Rng(7);
const stream = (n: number) => new MemoryTokens(Int32Array.from({ length: n }, () => 1 + rng.int(60)));

for (const [name, make, causal] of [
  ["GPT", () => new GPT(gptConfig({ vocab_size: 64, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64 }), { seed: 1 }), true],
  ["BERT", () => new BertForMaskedLM(bertConfig({ vocab_size: 64, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64 }), { seed: 2 }), false],
] as const) {
  for (const views of ["dropout", "neighbours"] as const) {
    test(`embed objective (${views} views) trains a ${name} body in the Trainer and validates by retrieval`, async () => {
      const model = make();
      const before = model.parameters()[0].toArray().slice();
      const objective = sentenceEmbedding(model, { train: stream(4000), val: stream(2000), batch: 8, span: 24, pooling: causal ? "last" : "cls", causal, padId: 0, views, evalBatches: 2 });
      const r = await new Trainer({ model, objective, steps: 6, lr: 1e-3, warmup: 1, evalEvery: 100, quiet: true, handleSignals: false }).run();
      assert.equal(r.steps, 6);
      for (const h of r.history) assert.ok(Number.isFinite(h.loss) && h.loss > 0, `loss ${h.loss}`);
      assert.ok(Number.isFinite(r.valLoss));
      const top1 = r.history.at(-1)!.scores!.valTop1;
      assert.ok(top1 >= 0 && top1 <= 1, `valTop1 ${top1}`);
      assert.notDeepEqual(Array.from(model.parameters()[0].toArray()), Array.from(before));
      // The noise is the objective's: the model's own dropout stays as configured.
      const walk = (m: unknown, out: Dropout[] = []): Dropout[] => {
        if (m instanceof Dropout) out.push(m);
        else if (m !== null && typeof m === "object") for (const v of Object.values(m)) if (typeof v === "object") walk(v, out);
        return out;
      };
      const layers = walk(model);
      assert.ok(layers.length > 0);
      for (const d of layers) assert.equal(d.p, 0);
    });
  }
}

test("embed objective refuses a batch without negatives and data shorter than a pair of spans", () => {
  const model = new GPT(gptConfig({ vocab_size: 64, n_embd: 32, n_layer: 1, n_head: 2, n_positions: 64 }), { seed: 1 });
  assert.throws(() => sentenceEmbedding(model, { train: stream(1000), val: stream(1000), batch: 1, span: 8, pooling: "mean", causal: true, padId: 0 }), /batch 1 must be an integer >= 2/);
  assert.throws(() => sentenceEmbedding(model, { train: stream(1000), val: stream(10), batch: 4, span: 8, pooling: "mean", causal: true, padId: 0 }), /validation data has 10 tokens/);
});

test("pretrain --objective embed --init continues a base and records the objective and the pooling", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-embed-"));
  const text = Array.from({ length: 400 }, (_, i) => `Line ${i}: the ${["cat", "dog", "bird"][i % 3]} sat on the ${["mat", "log", "hill"][i % 3]} and looked around.`).join("\n");
  const data = join(dir, "text.txt");
  writeFileSync(data, text);
  const bpe = trainBPE([text], { vocabSize: 300 });
  const tok = new BPETextTokenizer(bpe);
  const base = join(dir, "base");
  saveModel(base, new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64 }), { seed: 1 }));
  bpe.save(join(base, "tokenizer.json"));
  const out = join(dir, "embed");
  const run = await pretrain({ objective: "embed", init: base, pooling: "last", data: [data], outDir: out, steps: 3, batch: 4, ctx: 16, evalEvery: 3, quiet: true });
  assert.equal(run.result.steps, 3);
  assert.equal((JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>).plinth_pooling, "last");
  assert.equal(poolingOf(loadModel(out)), "last");
  const meta = loadSafetensors(join(out, "model.safetensors")).metadata;
  assert.equal(meta?.objective, "embed");
  const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as { objective: string; pooling: string };
  assert.deepEqual([summary.objective, summary.pooling], ["embed", "last"]);
});
