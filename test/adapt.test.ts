// Adaptation without fine-tuning: zero-/few-shot label likelihood on a tiny GPT (probabilities,
// agreement with the model's own log-softmax, contextual calibration), masked-LM cloze on a
// tiny BERT (agreement with fillMask), the linear probe on separable data and on pooled
// embeddings, adapter artifacts bound to their base, and clear errors for bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { BertForMaskedLM, bertConfig, saveBert } from "../src/models/bert/index.js";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { ids, mean, noGrad, Rng } from "../src/tensor/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { accuracy, argmax, type Example } from "../src/tasks/index.js";
import { applyCalibration, classifyCausal, classifyMasked, continuationLogProbs, renderPrompt } from "../src/adapt/zeroshot.js";
import { embedTexts, probeProbs, trainProbe } from "../src/adapt/probe.js";
import { baseIdentity, loadAdapter, probeFromTensors, probeTensors, readAdapterManifest, saveAdapter, sha256File } from "../src/adapt/artifact.js";

const corpus = Array.from({ length: 40 }, (_, i) =>
  `Review: the movie was ${i % 2 ? "good" : "bad"} and the plot was ${i % 3 ? "great" : "awful"}.\nSentiment: ${i % 2 ? "good" : "bad"}`);
const tok = new BPETextTokenizer(trainBPE(corpus, { vocabSize: 330 }));
const gpt = new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64 }), { seed: 1 });
const bert = new BertForMaskedLM(bertConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64 }), { seed: 2 });
const labels = ["negative", "positive"];
const verbalizers = { negative: " bad", positive: " good" };
const template = "Review: {text}\nSentiment:";
const examples: Example[] = [
  { text: "the movie was good", label: "positive" },
  { text: "the plot was awful", label: "negative" },
  { text: "great", label: "positive" },
  { text: "a".repeat(300), label: "negative" },  // longer than the context: the prompt's start is dropped
];

const isDistribution = (rows: number[][], width: number) => {
  for (const r of rows) {
    assert.equal(r.length, width);
    assert.ok(r.every((p) => p >= 0 && p <= 1 && Number.isFinite(p)), JSON.stringify(r));
    assert.ok(Math.abs(r.reduce((a, b) => a + b, 0) - 1) < 1e-9, JSON.stringify(r));
  }
};
const close = (a: number, b: number, tol: number) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

function logSoftmaxAt(logits: Float32Array, row: number, V: number, id: number): number {
  const r = logits.subarray(row * V, (row + 1) * V);
  const m = Math.max(...r);
  return r[id] - m - Math.log(r.reduce((s, v) => s + Math.exp(v - m), 0));
}

test("the verbalizers the tests use are single tokens", () => {
  assert.equal(Array.from(tok.encode(" good")).length, 1);
  assert.equal(Array.from(tok.encode(" bad")).length, 1);
  assert.equal(renderPrompt("A: {text_a} B: {text_b} {text}", { textA: "x", textB: "y", label: "l" }), "A: x B: y x\ny");
});

test("continuation scores are the summed log-softmax of the model's logits", () => {
  const context = Array.from(tok.encode("Review: the movie was good\nSentiment:"));
  const continuation = Array.from(tok.encode(" good and great"));
  assert.ok(continuation.length > 1);
  const seq = [...context, ...continuation];
  const V = gpt.config.vocab_size;
  const logits = noGrad(() => gpt.forward(ids([seq])).logits.toArray() as Float32Array);
  let expected = 0;
  for (let t = context.length; t < seq.length; t++) expected += logSoftmaxAt(logits, t - 1, V, seq[t]);
  const [got, again] = continuationLogProbs(gpt, [{ context, continuation }, { context, continuation }]);
  close(got, expected, 1e-4);
  assert.equal(got, again);
});

test("zero-shot and few-shot give label distributions; calibration flattens the content-free input", () => {
  const zero = classifyCausal(gpt, tok, labels, examples, { template, verbalizers });
  isDistribution(zero.probs, 2);
  assert.equal(zero.calibration, null);

  const demos: Example[] = [{ text: "good", label: "positive" }, { text: "bad", label: "negative" }];
  const few = classifyCausal(gpt, tok, labels, examples, { template, verbalizers, demonstrations: demos });
  isDistribution(few.probs, 2);
  assert.notDeepEqual(few.probs, zero.probs);

  // Calibrated against "N/A" alone, the input "N/A" itself becomes exactly uniform.
  const cal = classifyCausal(gpt, tok, labels, [...examples, { text: "N/A", label: "negative" }], { template, verbalizers, calibrate: true, contentFree: ["N/A"] });
  isDistribution(cal.probs, 2);
  assert.ok(cal.calibration !== null);
  isDistribution([cal.calibration], 2);
  close(cal.probs[examples.length][0], 0.5, 1e-9);
  // Each calibrated row is the raw row divided by the content-free distribution, renormalised.
  const expected = applyCalibration(zero.probs, cal.calibration);
  zero.probs.forEach((row, i) => row.forEach((_, j) => close(cal.probs[i][j], expected[i][j], 1e-9)));
  // Hand-checked: [0.8, 0.2] / [0.8, 0.2] -> uniform; [0.5, 0.5] / [0.8, 0.2] -> [0.2, 0.8].
  assert.deepEqual(applyCalibration([[0.8, 0.2]], [0.8, 0.2]), [[0.5, 0.5]]);
  const shifted = applyCalibration([[0.5, 0.5]], [0.8, 0.2])[0];
  close(shifted[0], 0.2, 1e-12);
  close(shifted[1], 0.8, 1e-12);
});

test("masked-LM cloze scores the verbalizers at [MASK] like fillMask does", () => {
  const clozeTemplate = "{text} It was[MASK].";
  const { probs } = classifyMasked(bert, tok, labels, examples, { template: clozeTemplate, verbalizers });
  isDistribution(probs, 2);
  const mask = tok.special("[MASK]")!;
  const seq = [...Array.from(tok.encode("the movie was good It was")), mask, ...Array.from(tok.encode("."))];
  const [fm] = bert.fillMask(seq, seq.indexOf(mask), { topK: tok.vocabSize });
  const pOf = (text: string) => fm.probs[fm.ids.indexOf(Array.from(tok.encode(text))[0])];
  const z = pOf(" bad") + pOf(" good");
  close(probs[0][0], pOf(" bad") / z, 1e-5);
  close(probs[0][1], pOf(" good") / z, 1e-5);
  const cal = classifyMasked(bert, tok, labels, examples, { template: clozeTemplate, verbalizers, calibrate: true, contentFree: ["N/A"] });
  isDistribution(cal.probs, 2);
  assert.ok(cal.calibration !== null);
});

test("prompting errors name what is wrong", () => {
  assert.throws(() => classifyCausal(gpt, tok, labels, examples, { template, verbalizers: { negative: " bad" } }), /no verbalizer for label "positive"/);
  assert.throws(() => classifyCausal(gpt, tok, labels, examples, { template: "Sentiment:", verbalizers }), /has no \{text\}/);
  assert.throws(() => classifyCausal(gpt, tok, labels, examples, { template, verbalizers: { ...verbalizers, neutral: " meh" } }), /verbalizer for unknown label "neutral"/);
  assert.throws(() => classifyCausal(gpt, tok, labels, examples, { template, verbalizers, demonstrations: [{ text: "x", label: "meh" }] }), /demonstration with unknown label "meh"/);
  assert.throws(() => classifyMasked(bert, tok, labels, examples, { template: "{text} It was", verbalizers }), /has no \[MASK\]/);
  assert.throws(() => classifyMasked(bert, tok, labels, examples, { template: "{text} [MASK]", verbalizers: { negative: " bad", positive: " wonderful" } }), /" wonderful" of label "positive" is \d+ tokens; a cloze needs single-token verbalizers/);
});

function clusters(n: number, seed: number): { X: Float32Array[]; y: number[] } {
  const rng = new Rng(seed);
  const centres = [[4, 0, 0, 0, 0, 0, 0, 0], [0, 4, 0, 0, 0, 0, 0, 0], [0, 0, 4, 0, 0, 0, 0, 0]];
  const X: Float32Array[] = [], y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    X.push(Float32Array.from(centres[c], (v) => v + rng.normal() * 0.5 + 10));  // an offset the standardisation removes
    y.push(c);
  }
  return { X, y };
}

test("the linear probe learns a separable task to 100% and early-stops on a held-out slice", () => {
  const train = clusters(90, 1), heldOut = clusters(60, 2);
  const { probe, history, bestEpoch } = trainProbe(train.X, train.y, 3, { epochs: 200, lr: 0.1, patience: 20 });
  assert.ok(history.length <= 200 && bestEpoch >= 1);
  assert.ok(history.every((h) => h.valLoss !== null));
  assert.ok(history[history.length - 1].trainLoss < history[0].trainLoss / 4, JSON.stringify([history[0], history[history.length - 1]]));
  const probs = probeProbs(probe, heldOut.X);
  isDistribution(probs, 3);
  assert.equal(accuracy(probs.map(argmax), heldOut.y), 1);
  // Tiny k-shot sets have no held-out slice and train for the full epochs.
  const few = trainProbe(train.X.slice(0, 6), train.y.slice(0, 6), 3, { epochs: 50 });
  assert.equal(few.history.length, 50);
  assert.ok(few.history.every((h) => h.valLoss === null));
  assert.throws(() => trainProbe(train.X, train.y.slice(1), 3), /90 feature rows for 89 labels/);
  assert.throws(() => trainProbe(train.X, train.y.map(() => 3), 3), /label 3 of example 0 is outside \[0, 3\)/);
  assert.throws(() => probeProbs(probe, [new Float32Array(4)]), /example 0 has 4 features, expected 8/);
});

test("pooled embeddings come from GPT hidden states and BERT's embedSequences", () => {
  const texts = ["the movie was good", "bad", "", "the plot was awful and the movie was bad"];
  const g = embedTexts(gpt, tok, texts);
  assert.equal(g.length, 4);
  assert.ok(g.every((e) => e.length === 32 && e.every(Number.isFinite)));
  const direct = noGrad(() => mean(gpt.hidden(ids([Array.from(tok.encode(texts[0]))])), 1).toArray());
  g[0].forEach((v, i) => close(v, direct[i], 1e-5));
  const b = embedTexts(bert, tok, texts);
  assert.ok(b.every((e) => e.length === 32));
  const single = bert.embedSequences([Array.from(tok.encode("bad"))])[0];
  b[1].forEach((v, i) => close(v, single[i], 1e-5));  // batched GEMMs may differ in the last bit
  // A probe on pooled embeddings predicts distributions end to end.
  const { probe } = trainProbe([...g, ...g], [0, 1, 0, 1, 0, 1, 0, 1], 2, { epochs: 20 });
  isDistribution(probeProbs(probe, g), 2);
});

test("adapter artifacts round-trip and refuse another base, naming both hashes", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-adapter-"));
  try {
    const baseDir = join(dir, "base"), otherDir = join(dir, "other"), bertDir = join(dir, "bert"), adapterDir = join(dir, "adapter");
    saveGPT(baseDir, gpt);
    saveGPT(otherDir, new GPT(gpt.config, { seed: 99 }));
    saveBert(bertDir, bert);
    const base = baseIdentity(baseDir);
    assert.equal(base.model_type, "gpt2");
    assert.equal(base.sha256, sha256File(join(baseDir, "model.safetensors")));
    const { X, y } = clusters(30, 3);
    const { probe } = trainProbe(X, y, 3, { epochs: 30 });
    const manifest = saveAdapter(adapterDir, { method: "probe", task: "clusters", labels: ["a", "b", "c"], config: { pooling: "mean", epochs: 30 }, base }, probeTensors(probe));
    assert.equal(readAdapterManifest(adapterDir).created, manifest.created);

    const loaded = loadAdapter(adapterDir, baseDir);
    assert.deepEqual(loaded.manifest, manifest);
    assert.deepEqual(loaded.manifest.config, { pooling: "mean", epochs: 30 });
    const back = probeFromTensors(loaded.tensors);
    assert.deepEqual(back, probe);
    assert.deepEqual(probeProbs(back, X), probeProbs(probe, X));

    const other = baseIdentity(otherDir);
    assert.notEqual(other.sha256, base.sha256);
    assert.throws(() => loadAdapter(adapterDir, otherDir), (e: Error) =>
      e.message.includes(base.sha256) && e.message.includes(other.sha256) && /was made for base sha256/.test(e.message));
    assert.throws(() => loadAdapter(adapterDir, bertDir), /was made for base sha256 [0-9a-f]{64} \(gpt2\), but .* \(bert\)/);

    // A zero-shot adapter holds only its config; its safetensors file is empty.
    const zsDir = join(dir, "zeroshot");
    saveAdapter(zsDir, { method: "zeroshot", task: "sentiment", labels, config: { template, verbalizers }, base });
    assert.deepEqual(loadAdapter(zsDir, baseDir).tensors, {});

    assert.throws(() => loadAdapter(join(dir, "missing"), baseDir), /adapter\.json does not exist/);
    writeFileSync(join(zsDir, "adapter.json"), "{");
    assert.throws(() => loadAdapter(zsDir, baseDir), /adapter\.json is not valid JSON/);
    assert.throws(() => baseIdentity(join(dir, "nowhere")), /model\.safetensors does not exist/);
    assert.throws(() => saveAdapter(join(dir, "bad"), { method: "probe", task: "t", labels, config: {}, base: { model_type: "gpt2", sha256: "abc" } }), /is not 64 hex digits/);
    assert.throws(() => probeFromTensors({}, "x"), /x: tensor probe\.weight is missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
