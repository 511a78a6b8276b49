// The pretraining loop learns real text: a small byte-level GPT trained for a few
// hundred steps on Moby Dick ends well below the unigram entropy of held-out chapters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ByteTokenizer, concatDocuments, unigramCrossEntropy } from "../src/data/bytes.js";
import { mobyDick, splitDocuments } from "../src/data/corpus.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { cosineSchedule } from "../src/optim/index.js";
import { MemoryTokens } from "../src/data/tokens.js";
import { clm, languageModeling } from "../src/train/language.js";
import { Trainer } from "../src/train/trainer.js";
import { lineChartSvg } from "../src/train/plot.js";

test("byte tokenizer round-trips any input, including invalid UTF-8", () => {
  const tok = new ByteTokenizer();
  for (const text of ["Call me Ishmael.", "鯨 🐋 naïve", "const x: number = 1;\n", ""]) {
    assert.equal(tok.decode(tok.encode(text)), text);
  }
  const bytes = Uint8Array.from([0xff, 0xfe, 0x80, 0x41, 0xc3]);
  assert.deepEqual(tok.decodeBytes(tok.encodeBytes(bytes)), bytes);
  assert.throws(() => tok.decode([300]), /not a byte token/);
});

test("Moby Dick splits by chapter and the unigram baseline is about 4.4 bits per byte", () => {
  const docs = mobyDick();
  assert.ok(docs.length > 100);
  const { train, val } = splitDocuments(docs, 10);
  const ids = new Set(val.map((d) => d.id));
  assert.ok(train.every((d) => !ids.has(d.id)), "a chapter is in both splits");
  const tok = new ByteTokenizer();
  const tr = concatDocuments(train.map((d) => tok.encode(d.text)), tok.eot);
  const va = concatDocuments(val.map((d) => tok.encode(d.text)), tok.eot);
  const bits = unigramCrossEntropy(tr, va, tok.vocabSize) / Math.log(2);
  assert.ok(bits > 4 && bits < 5, `unigram ${bits} bits/byte`);
});

test("a small GPT learns Moby Dick: validation loss falls well below the unigram entropy", async () => {
  const tok = new ByteTokenizer();
  const { train, val } = splitDocuments(mobyDick(), 10);
  const tr = concatDocuments(train.map((d) => tok.encode(d.text)), tok.eot);
  const va = concatDocuments(val.map((d) => tok.encode(d.text)), tok.eot);
  const unigram = unigramCrossEntropy(tr, va, tok.vocabSize);
  const model = new GPT(gptConfig({ vocab_size: 257, n_positions: 64, n_embd: 96, n_layer: 2, n_head: 4 }), { seed: 1 });
  const dir = mkdtempSync(join(tmpdir(), "plinth-train-"));
  try {
    const objective = languageModeling(model, clm, { train: new MemoryTokens(tr), val: new MemoryTokens(va), batch: 16, ctx: 64, evalWindows: 16 });
    const result = await new Trainer({ model, objective, steps: 300, lr: 3e-3, warmup: 20, evalEvery: 100, checkpointEvery: 1000, outDir: dir, quiet: true }).run();
    assert.equal(result.steps, 300);
    assert.ok(result.valLoss < unigram - 0.5, `validation ${result.valLoss.toFixed(3)} vs unigram ${unigram.toFixed(3)} nats/byte`);
    const lines = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n");
    assert.equal(lines.length, 300);
    assert.ok(JSON.parse(lines[99]).valLoss > 0);
    assert.match(readFileSync(join(dir, "loss.svg"), "utf8"), /^<svg[\s\S]*validation loss[\s\S]*<\/svg>$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("warm-up then cosine decay", () => {
  const o = { lr: 1, warmup: 10, totalSteps: 110, minLr: 0.1 };
  assert.equal(cosineSchedule(0, o), 0.1);
  assert.equal(cosineSchedule(9, o), 1);
  assert.ok(Math.abs(cosineSchedule(60, o) - 0.55) < 1e-9);
  assert.equal(cosineSchedule(500, o), 0.1);
});

test("loss chart SVG escapes text and survives empty or flat series", () => {
  const svg = lineChartSvg([{ name: "a<b", color: "red", points: [] }, { name: "flat", color: "blue", points: [[0, 1], [1, 1]] }], { title: "t&t" });
  assert.match(svg, /a&lt;b/);
  assert.match(svg, /t&amp;t/);
  assert.doesNotMatch(svg, /NaN/);
});
