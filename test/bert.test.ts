// BERT masked LM: the model's entry points (token types, pooled embeddings, fill-mask),
// checkpoints round-tripping through safetensors + config.json in HF's layout (with the
// extras HF exports carry), clear errors for bad configs and checkpoints, the MLM
// objective's masking statistics, and a short byte-level pretraining run on Moby Dick
// whose masked-token validation loss ends well below the unigram entropy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ByteTokenizer, concatDocuments, unigramCrossEntropy } from "../src/data/bytes.js";
import { mobyDick, splitDocuments } from "../src/data/corpus.js";
import { MemoryTokens } from "../src/data/tokens.js";
import { decodeSafetensors, saveSafetensors, type RawTensor } from "../src/io/safetensors.js";
import { BertForMaskedLM, bertConfig, loadBert, saveBert } from "../src/models/bert/index.js";
import { ids, memoryStats, noGrad, Rng } from "../src/tensor/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { languageModeling, mlm } from "../src/train/language.js";
import { Trainer } from "../src/train/trainer.js";

const config = bertConfig({ vocab_size: 50, hidden_size: 24, num_hidden_layers: 2, num_attention_heads: 3, intermediate_size: 40, max_position_embeddings: 16 });

const withDir = (prefix: string, body: (dir: string) => void | Promise<void>) => async () => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

test("configs reject what the kernels cannot run, naming the field", () => {
  assert.throws(() => bertConfig({ vocab_size: 10, hidden_act: "gelu" as "gelu_new" }), /hidden_act "gelu" is not supported; use "gelu_new"/);
  assert.throws(() => bertConfig({ vocab_size: 10, attention_probs_dropout_prob: 0.1 }), /attention_probs_dropout_prob 0\.1 .*fused attention.*no attention dropout/);
  assert.throws(() => bertConfig({ vocab_size: 10, hidden_size: 30, num_attention_heads: 4 }), /hidden_size 30 is not divisible by num_attention_heads 4/);
  assert.throws(() => bertConfig({ vocab_size: 10, pad_token_id: 10 }), /pad_token_id 10 is outside the vocabulary/);
  assert.equal(bertConfig({ vocab_size: 10, hidden_size: 32, num_attention_heads: 4 }).intermediate_size, 128);
});

test("token types default to 0; embeddings pool the hidden states; fill-mask ranks the vocabulary", () => {
  const model = new BertForMaskedLM(config, { seed: 1 });
  const x = ids([[1, 7, 3, 9, 2], [4, 4, 8, 0, 5]]);
  noGrad(() => {
    assert.deepEqual(model.hidden(x).shape, [2, 5, 24]);
    assert.deepEqual(model.forward(x, undefined, ids([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])).logits.toArray(), model.forward(x).logits.toArray());
    assert.notDeepEqual(model.forward(x, undefined, ids([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])).logits.toArray(), model.forward(x).logits.toArray());
    const pooled = model.embed(x);
    assert.deepEqual(pooled.shape, [2, 24]);
    const [a, b, c] = model.embedSequences([[1, 7, 3, 9, 2], [6, 6], [4, 4, 8, 0, 5]]);
    assert.deepEqual([a.length, b.length, c.length], [24, 24, 24]);
    const rows = pooled.toArray();
    assert.deepEqual(a, rows.slice(0, 24));
    assert.deepEqual(c, rows.slice(24));
  });
  const [all] = model.fillMask([1, 7, 3, 9, 2], 2, { topK: 1000 });
  assert.equal(all.ids.length, 50);
  assert.equal(new Set(all.ids).size, 50);
  assert.ok(Math.abs(all.probs.reduce((s, p) => s + p, 0) - 1) < 1e-5);
  assert.ok(all.probs.every((p, i) => i === 0 || p <= all.probs[i - 1]));
  const two = model.fillMask([1, 7, 3, 9, 2], [0, 4], { topK: 3 });
  assert.deepEqual(two.map((r) => [r.position, r.ids.length]), [[0, 3], [4, 3]]);
  assert.throws(() => model.fillMask([1, 2], 2), /position 2 is outside the 2 tokens/);
  assert.throws(() => model.forward(ids([Array.from({ length: 17 }, () => 1)])), /sequence length 17 must be in \[1, max_position_embeddings=16\]/);
  assert.throws(() => model.forward(x, undefined, ids([[0, 0]])), /tokenTypeIds int32\[1,2\] must be int32 of the ids' shape \[2,5\]/);
});

test("save and load round-trip in HF's layout, accepting the extras HF exports carry", withDir("plinth-bert-", (dir) => {
  const model = new BertForMaskedLM(config, { seed: 2 });
  saveBert(dir, model);
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  assert.deepEqual(cfg.architectures, ["BertForMaskedLM"]);
  assert.equal(cfg.model_type, "bert");
  assert.equal(cfg.hidden_size, 24);
  const x = ids([[3, 1, 4, 1, 5, 9]]);
  const logits = (m: BertForMaskedLM) => noGrad(() => m.forward(x).logits.toArray());
  assert.deepEqual(logits(loadBert(dir)), logits(model));

  // An HF-style export: position_ids buffer (I64), the tied decoder weight and bias, extra config fields.
  const file = join(dir, "model.safetensors");
  const { tensors } = decodeSafetensors(readFileSync(file));
  const positions = new BigInt64Array(16).map((_, i) => BigInt(i));
  const extra: Record<string, RawTensor> = {
    ...tensors,
    "bert.embeddings.position_ids": { dtype: "I64", shape: [1, 16], data: new Uint8Array(positions.buffer) },
    "cls.predictions.decoder.weight": tensors["bert.embeddings.word_embeddings.weight"],
    "cls.predictions.decoder.bias": tensors["cls.predictions.bias"],
  };
  saveSafetensors(file, extra);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, transformers_version: "4.40.0", position_embedding_type: "absolute", use_cache: true }));
  assert.deepEqual(logits(loadBert(dir)), logits(model));

  const wrongHead = new Uint8Array(tensors["bert.embeddings.word_embeddings.weight"].data);
  wrongHead[3] ^= 0x40;
  saveSafetensors(file, { ...extra, "cls.predictions.decoder.weight": { ...tensors["bert.embeddings.word_embeddings.weight"], data: wrongHead } });
  assert.throws(() => loadBert(dir), /decoder\.weight that differs from bert\.embeddings\.word_embeddings\.weight/);
}));

test("corrupt, truncated and mismatched checkpoints give clear errors", withDir("plinth-bert-bad-", (dir) => {
  saveBert(dir, new BertForMaskedLM(config));
  const file = join(dir, "model.safetensors");
  const good = readFileSync(file);
  writeFileSync(file, good.subarray(0, good.length - 100));
  assert.throws(() => loadBert(dir), /model\.safetensors.*(outside the data section|truncated)/);
  writeFileSync(file, Buffer.from("not a safetensors file at all"));
  assert.throws(() => loadBert(dir), /model\.safetensors/);
  writeFileSync(file, good);
  const { tensors } = decodeSafetensors(good);
  const { "cls.predictions.bias": _dropped, ...withoutBias } = tensors;
  saveSafetensors(file, withoutBias);
  assert.throws(() => loadBert(dir), /missing \[cls\.predictions\.bias\]/);
  writeFileSync(file, good);
  writeFileSync(join(dir, "config.json"), "{ broken");
  assert.throws(() => loadBert(dir), /config\.json is not valid JSON/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, hidden_size: 30 }));
  assert.throws(() => loadBert(dir), /has shape \[50,24\] in the checkpoint, expected \[50,30\]/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, model_type: "gpt2" }));
  assert.throws(() => loadBert(dir), /expected "bert"/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, hidden_act: "gelu" }));
  assert.throws(() => loadBert(dir), /config\.json: BERT config: hidden_act "gelu" is not supported/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, position_embedding_type: "relative_key" }));
  assert.throws(() => loadBert(dir), /only "absolute" is supported/);
  assert.throws(() => loadBert(join(dir, "missing")), /does not exist/);
}));

test("mlm masks 15% of non-special tokens, 80% [MASK] / 10% random / 10% kept, never a special id", () => {
  const V = 257, MASK = 257, EOT = 256, B = 64, T = 128;
  const objective = mlm({ maskToken: MASK, vocabSize: V, specialIds: [EOT] });
  const rng = new Rng(7);
  const windows = new Int32Array(B * (T + 1));
  let positions = 0, targets = 0, masked = 0, random = 0, kept = 0;
  for (let round = 0; round < 12; round++) {
    for (let i = 0; i < windows.length; i++) windows[i] = rng.uniform() < 0.05 ? EOT : rng.int(256);
    const { x, y } = objective.batch(windows, B, T, rng);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const orig = windows[b * (T + 1) + t], xi = x.ids[b * T + t], yi = y.ids[b * T + t];
        if (orig === EOT) {
          assert.equal(yi, -1, "a special id became a target");
          assert.equal(xi, EOT, "a special id was replaced");
          continue;
        }
        positions++;
        if (yi < 0) {
          assert.equal(xi, orig, "a non-target input changed");
          continue;
        }
        assert.equal(yi, orig);
        targets++;
        if (xi === MASK) masked++;
        else if (xi === orig) kept++;
        else {
          assert.ok(xi >= 0 && xi < V, `random replacement ${xi} is outside the vocabulary`);
          random++;
        }
      }
    }
    x.release();
    y.release();
  }
  // ~94k positions, ~14k targets: 4 standard deviations are ±0.005 and ±0.015.
  const frac = targets / positions;
  assert.ok(Math.abs(frac - 0.15) < 0.005, `target fraction ${frac}`);
  assert.ok(Math.abs(masked / targets - 0.8) < 0.015, `[MASK] fraction ${masked / targets}`);
  assert.ok(Math.abs(random / targets - 0.1 * (1 - 1 / V)) < 0.01, `random fraction ${random / targets}`);
  assert.ok(Math.abs(kept / targets - (0.1 + 0.1 / V)) < 0.01, `kept fraction ${kept / targets}`);
});

test("training steps hold memory steady: the target-row head's index tensors are freed with the graph", () => {
  const model = new BertForMaskedLM(bertConfig({ vocab_size: 65, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, max_position_embeddings: 32 }));
  const opt = new AdamW(model.paramGroups(0.1), { lr: 1e-3 });
  const rng = new Rng(1);
  const objective = mlm({ maskToken: 64, vocabSize: 64 });
  const windows = new Int32Array(4 * 33);
  const step = () => {
    for (let i = 0; i < windows.length; i++) windows[i] = rng.int(64);
    const { x, y } = objective.batch(windows, 4, 32, rng);
    const loss = model.loss(x, y);
    loss.backward();
    clipGradNorm(model.parameters(), 1);
    opt.step();
    opt.zeroGrad();
    for (const t of [loss, x, y]) t.release();
  };
  for (let i = 0; i < 3; i++) step();
  const before = memoryStats().bytesInUse;
  for (let i = 0; i < 20; i++) step();
  assert.equal(memoryStats().bytesInUse, before, "bytes in use grew across steps (a leak)");
});

test("a small byte-level BERT learns Moby Dick: masked-token validation loss ends well below the unigram entropy", withDir("plinth-bert-train-", async (dir) => {
  const tok = new ByteTokenizer();
  const MASK = tok.vocabSize; // one id past the bytes and <|endoftext|>
  const { train, val } = splitDocuments(mobyDick(), 10);
  const tr = concatDocuments(train.map((d) => tok.encode(d.text)), tok.eot);
  const va = concatDocuments(val.map((d) => tok.encode(d.text)), tok.eot);
  const ctx = 16, evalWindows = 256;
  // Validation scores the first evalWindows windows; the context-free baseline is the unigram
  // cross-entropy of exactly those tokens (masked positions are a uniform sample of them).
  const unigram = unigramCrossEntropy(tr, va.subarray(0, evalWindows * ctx), tok.vocabSize);
  const model = new BertForMaskedLM(bertConfig({
    vocab_size: tok.vocabSize + 1, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, max_position_embeddings: ctx,
  }), { seed: 1 });
  const trainer = new Trainer({
    model, objective: languageModeling(model, mlm({ maskToken: MASK, vocabSize: tok.vocabSize, specialIds: [tok.eot] }), { train: new MemoryTokens(tr), val: new MemoryTokens(va), batch: 32, ctx, evalWindows }),
    outDir: dir, steps: 1200, lr: 3e-3, warmup: 20, evalEvery: 400, checkpointEvery: 1200, quiet: true, handleSignals: false,
  });
  const result = await trainer.run();
  assert.equal(result.steps, 1200);
  const vals = result.history.filter((r) => r.valLoss !== undefined).map((r) => r.valLoss!);
  assert.equal(vals.length, 3);
  assert.ok(vals[2] < vals[0], `validation did not improve: ${vals.map((v) => v.toFixed(3)).join(" -> ")}`);
  assert.ok(result.valLoss < unigram - 0.4, `masked validation ${result.valLoss.toFixed(3)} vs unigram ${unigram.toFixed(3)} nats/byte`);
}));
