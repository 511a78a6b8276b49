// The pretraining pipeline end to end (tokenizer -> shards -> GPT -> checkpoints -> HF
// layout), its reuse on a second run, the unigram baseline and the scaling-law fit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unigramCrossEntropy } from "../src/data/bytes.js";
import { MemoryTokens } from "../src/data/tokens.js";
import { PRETRAIN_DEFAULTS, pretrain, resolvePretrainOptions, unigramBaseline } from "../src/cli/pretrain.js";
import { UsageError } from "../src/cli/args.js";
import { loadGPT } from "../src/models/gpt/index.js";
import { BPETokenizer } from "../src/tokenizer/index.js";
import { fitPowerLaw } from "../src/train/scaling.js";

test("pretrain: tokenizer, shards, model and checkpoints in Hugging Face layout; a second run reuses them", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-pretrain-"));
  try {
    const opts = {
      objective: "clm" as const, size: "tiny", data: ["moby-dick"], outDir: dir, steps: 200, vocab: 512, batch: 8, ctx: 32, lr: 5e-3, warmup: 10,
      gradAccum: 1, evalEvery: 100, checkpointEvery: 100, seed: 1, quiet: true,
    };
    const first = await pretrain(opts);
    assert.equal(first.result.steps, 200);
    for (const f of ["tokenizer.json", "config.json", "model.safetensors", "summary.json", "metrics.jsonl", "loss.svg", "data/manifest.json"]) {
      assert.ok(existsSync(join(dir, f)), `${f} is missing`);
    }
    assert.ok(first.result.valLoss < first.unigram, `validation ${first.result.valLoss} vs unigram ${first.unigram}`);
    const tok = BPETokenizer.load(join(dir, "tokenizer.json"));
    assert.equal(tok.vocabSize, 512);
    assert.equal(loadGPT(dir).config.vocab_size, 512);
    const manifest = JSON.parse(readFileSync(join(dir, "data", "manifest.json"), "utf8"));
    assert.equal(manifest.tokenizer.vocabSize, 512);
    const second = await pretrain(opts);
    assert.equal(second.corpus.reused, true);
    assert.equal(second.result.resumedFrom, 200);
    assert.equal(second.result.steps, 200);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("pretrain as a library: left-out options take the CLI defaults; bad ones are rejected before any work", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-pretrain-"));
  try {
    const o = resolvePretrainOptions({ outDir: join(dir, "run") });
    assert.deepEqual({ ...o, seconds: undefined, outDir: undefined }, { ...PRETRAIN_DEFAULTS, data: ["default"], seconds: undefined, outDir: undefined });
    assert.equal(o.seconds, 600, "no budget given means the CLI's 10 minutes");
    assert.equal(resolvePretrainOptions({ outDir: dir, steps: 5 }).seconds, undefined);
    const out = join(dir, "never");
    for (const [bad, message] of [
      [{ size: "huge" }, /unknown --size "huge" for clm \(expected tiny, small, S, M\)/],
      [{ objective: "mlm", size: "huge" }, /unknown --size "huge" for mlm \(expected tiny, small, S, M, base\)/],
      [{ lr: 0 }, /--lr must be a number > 0/],
      [{ lr: Number.NaN }, /--lr must be a number > 0/],
      [{ batch: 2.5 }, /--batch must be an integer >= 1/],
      [{ steps: 0 }, /--steps must be an integer >= 1/],
      [{ data: [] }, /--data: no data sources given/],
      [{ data: ["moby-dick", join(dir, "missing.txt")] }, /--data source .*missing\.txt: no such file or folder/],
    ] as [Record<string, unknown>, RegExp][]) {
      await assert.rejects(pretrain({ outDir: out, steps: 1, ...bad }), (e: Error) => e instanceof UsageError && message.test(e.message));
    }
    assert.ok(!existsSync(out), "nothing is written before the options are checked");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("unigram baseline over token sources equals the in-memory computation", () => {
  const train = Int32Array.from({ length: 5000 }, (_, i) => (i * 7) % 13);
  const val = Int32Array.from({ length: 700 }, (_, i) => (i * 5) % 17);
  const a = unigramBaseline(new MemoryTokens(train), new MemoryTokens(val), 20);
  assert.ok(Math.abs(a - unigramCrossEntropy(train, val, 20)) < 1e-9);
});

test("the scaling-law fit recovers a known power law", () => {
  const points = [1e4, 3e4, 1e5, 3e5, 1e6].map((n) => ({ n, loss: 40 * n ** -0.3 + 1.5 }));
  const fit = fitPowerLaw(points);
  assert.ok(Math.abs(fit.alpha - 0.3) < 0.01, `alpha ${fit.alpha}`);
  assert.ok(Math.abs(fit.c - 1.5) < 0.02, `c ${fit.c}`);
  assert.ok(fit.rmse < 1e-3);
  assert.throws(() => fitPowerLaw(points.slice(0, 2)), /at least 3 points/);
});
