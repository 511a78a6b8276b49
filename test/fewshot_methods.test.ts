// Few-shot methods built for small models, on tiny bases written to disk: the pooling a base
// records is read back and used; prototype, k-NN and SetFit adapters reproduce their run's
// scores when applied (owned and shared base alike); the BERT body serves every classifier
// method; in-context few-shot fits its demonstrations to the context and says how many it used.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { BertForMaskedLM, bertConfig } from "../src/models/bert/index.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { choosePooling, embedSequences, loadModel, poolingOf, saveModel } from "../src/models/registry.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { accuracy, argmax, labelIndex } from "../src/tasks/index.js";
import { resolveTask } from "../src/tasks/resolve.js";
import { noGrad } from "../src/tensor/autograd.js";
import { ids as idsTensor } from "../src/tensor/tensor.js";
import { runAdaptation, type AdaptMethod } from "../src/adapt/run.js";
import { applyAdapter, loadAdapted } from "../src/adapt/apply.js";
import { loadAdapter } from "../src/adapt/artifact.js";
import { loadBase } from "../src/adapt/base.js";
import { fitNeighbours, fitPrototypes, neighbourProbs, prototypeProbs } from "../src/adapt/neighbours.js";
import { contrastivePairs } from "../src/adapt/setfit.js";
import { runSteps } from "../src/adapt/steps.js";
import { classifyCausal, fittedContexts } from "../src/adapt/zeroshot.js";
import { Rng } from "../src/tensor/rng.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-fewshot-"));
const good = ["good", "great", "fine", "lovely", "superb", "nice"], bad = ["bad", "awful", "dull", "poor", "boring", "weak"];
const things = ["movie", "plot", "cast", "phone", "meal", "story", "song", "hotel"];
const rows: string[] = [];
for (const t of things) for (const w of [...good, ...bad]) rows.push(JSON.stringify({ text: `the ${t} was ${w}`, label: good.includes(w) ? "pos" : "neg" }));
const taskFile = join(dir, "reviews.jsonl");
writeFileSync(taskFile, rows.join("\n") + "\n");
const tok = new BPETextTokenizer(trainBPE(rows.map((r) => (JSON.parse(r) as { text: string }).text), { vocabSize: 300 }));

const gptDir = join(dir, "gpt"), bertDir = join(dir, "bert"), lastDir = join(dir, "gpt-last");
saveModel(gptDir, new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 1 }));
saveModel(bertDir, new BertForMaskedLM(bertConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 32 }), { seed: 3 }));
const lastModel = new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 1 });
choosePooling(lastModel, "last");
saveModel(lastDir, lastModel);
for (const d of [gptDir, bertDir, lastDir]) tok.bpe.save(join(d, "tokenizer.json"));

const texts = (split: "test") => resolveTask(taskFile)[split].map((e) => ("text" in e ? e.text : ""));
function rescore(adapter: string, base: string): number {
  const task = resolveTask(taskFile);
  const probs = loadAdapted(adapter, base).predict(texts("test"));
  return accuracy(probs.map(argmax), task.test.map((e) => labelIndex(task, e.label)));
}

test("pooling: recorded in config.json, read back, and used by embedSequences (mean stays the default and unchanged)", () => {
  const raw = JSON.parse(readFileSync(join(lastDir, "config.json"), "utf8")) as Record<string, unknown>;
  assert.equal(raw.plinth_pooling, "last");
  assert.equal((JSON.parse(readFileSync(join(gptDir, "config.json"), "utf8")) as Record<string, unknown>).plinth_pooling, undefined, "a default base's config.json is unchanged");
  const m = loadModel(lastDir) as GPT;
  assert.equal(poolingOf(m), "last");
  assert.equal(poolingOf(loadModel(gptDir)), "mean");
  const seqs = [[5, 6, 7], [8, 9, 10, 11, 12]];
  const got = embedSequences(m, seqs);
  // The last token's state, computed by hand from a forward of that sequence alone.
  seqs.forEach((s, i) => {
    const h = noGrad(() => m.hidden(idsTensor([s])).toArray());
    const want = h.subarray((s.length - 1) * 32, s.length * 32);
    for (let d = 0; d < 32; d++) assert.ok(Math.abs(got[i][d] - want[d]) < 1e-5, `sequence ${i} dim ${d}: ${got[i][d]} vs ${want[d]}`);
  });
  const mean = embedSequences(m, seqs, "mean");
  assert.notDeepEqual(Array.from(mean[1]), Array.from(got[1]));
  assert.throws(() => choosePooling(m, "cls"), /cls pooling needs a bidirectional body/);
  const bert = loadModel(bertDir) as BertForMaskedLM;
  const cls = embedSequences(bert, seqs, "cls");
  const h = noGrad(() => bert.hidden(idsTensor([seqs[1]])).toArray());
  for (let d = 0; d < 32; d++) assert.ok(Math.abs(cls[1][d] - h[d]) < 1e-5, "cls is the first position's state");
});

test("prototype and k-NN separate clusters, pick k and a scale by leave-one-out, and refuse bad input", () => {
  const rng = new Rng(3);
  const point = (c: number) => Float32Array.from({ length: 8 }, (_, d) => 5 + (d === c ? 2 : 0) + 0.3 * rng.normal());
  const X = [0, 1, 2].flatMap((c) => Array.from({ length: 6 }, () => point(c)));
  const y = [0, 1, 2].flatMap((c) => new Array<number>(6).fill(c));
  const Xt = [0, 1, 2].flatMap((c) => Array.from({ length: 10 }, () => point(c)));
  const yt = [0, 1, 2].flatMap((c) => new Array<number>(10).fill(c));
  const p = fitPrototypes(X, y, 3), n = fitNeighbours(X, y, 3);
  assert.ok(accuracy(prototypeProbs(p, Xt).map(argmax), yt) > 0.9);
  assert.ok(accuracy(neighbourProbs(n, Xt).map(argmax), yt) > 0.9);
  assert.ok(n.k >= 1 && n.k <= 5 && n.k % 2 === 1, `k ${n.k}`);
  for (const row of neighbourProbs(n, Xt)) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-9 && Math.min(...row) > 0);
  assert.throws(() => fitPrototypes(X, y.slice(1), 3), /18 embeddings for 17 labels/);
  assert.throws(() => fitNeighbours(X, y, 3, { k: 0 }), /k must be a positive integer/);
});

test("SetFit pairs alternate positives and negatives and never pair an example with itself", () => {
  const y = [0, 0, 0, 1, 1, 2];
  const pairs = contrastivePairs(y, 200, new Rng(1));
  assert.equal(pairs.length, 200);
  for (const p of pairs) {
    assert.notEqual(p.a, p.b);
    assert.equal(p.same, y[p.a] === y[p.b] ? 1 : 0);
  }
  assert.ok(pairs.filter((p) => p.same === 1).length > 60);
  assert.throws(() => contrastivePairs([1, 1], 4, new Rng(1)), /at least 2 labels/);
});

for (const [name, base, methods] of [
  ["GPT", gptDir, ["prototype", "knn", "setfit"]],
  ["GPT (last-token pooling)", lastDir, ["prototype", "setfit"]],
  ["BERT", bertDir, ["probe", "prototype", "knn", "setfit", "head", "lora", "full"]],
] as const) {
  for (const method of methods as readonly AdaptMethod[]) {
    test(`${method} on a ${name} base writes an adapter that reproduces the run's accuracy`, async () => {
      const out = join(dir, "adapters", `${name.replace(/\W+/g, "-")}-${method}`);
      const r = await runAdaptation({ base, method, task: taskFile, out, labelsPerClass: 8, steps: 20, lr: 3e-3, setfit: { pairs: 64 } });
      assert.equal(r.method, method);
      assert.ok(r.adapterBytes > 0);
      const manifest = JSON.parse(readFileSync(join(out, "adapter.json"), "utf8")) as { config: { pooling: string } };
      assert.equal(manifest.config.pooling, base === lastDir ? "last" : "mean");
      assert.ok(Math.abs(rescore(out, base) - r.metrics.accuracy) < 1e-9, `${method}: rescored ${rescore(out, base)} vs ${r.metrics.accuracy}`);
      if (method === "setfit") {
        // A shared base (the server's) gets the same probabilities without being changed.
        const shared = loadBase(base);
        const before = shared.model.parameters()[0].toArray().slice();
        const a = applyAdapter(shared, loadAdapter(out, base), out);
        const owned = loadAdapted(out, base).predict(texts("test").slice(0, 5));
        const got = a.predict(texts("test").slice(0, 5));
        got.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - owned[i][j]) < 1e-4)));
        assert.deepEqual(shared.model.parameters()[0].toArray(), before);
        // In pieces (the server's encoder queue): several bounded forwards, the same probabilities.
        let forwards = 0;
        const it = a.predictSteps(texts("test").slice(0, 5), { pieceTokens: 24, pieceChars: 64 });
        let r = it.next();
        for (; !r.done; r = it.next()) if (r.value.kind === "forward") forwards++;
        assert.ok(forwards >= 2, `${forwards} forwards`);
        r.value.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - got[i][j]) < 1e-5)));
      }
    });
  }
}

test("setfit with a LoRA body writes a small adapter that loads back, owned or shared", async () => {
  const out = join(dir, "adapters", "setfit-lora");
  const r = await runAdaptation({ base: gptDir, method: "setfit", task: taskFile, out, labelsPerClass: 8, setfit: { pairs: 64, body: "lora" } });
  assert.ok(r.trainableParameters < 10_000, `${r.trainableParameters} trainable`);
  assert.ok(Math.abs(rescore(out, gptDir) - r.metrics.accuracy) < 1e-9);
  const shared = loadBase(gptDir);
  const applied = applyAdapter(shared, loadAdapter(out, gptDir), out);
  const probs = applied.predict(texts("test"));
  // In pieces through the shared base's forward context: the same probabilities.
  const stepped = runSteps(applied.predictSteps(texts("test"), { pieceTokens: 32 }));
  stepped.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - probs[i][j]) < 1e-5)));
  const task = resolveTask(taskFile);
  assert.ok(Math.abs(accuracy(probs.map(argmax), task.test.map((e) => labelIndex(task, e.label))) - r.metrics.accuracy) < 0.05);
});

test("in-context few-shot fits a 128-token context: 16 demonstrations per class run, and only whole ones that fit are used", () => {
  const gpt = new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 128 }), { seed: 4 });
  gpt.eval();
  const task = resolveTask(taskFile);
  const demos = [...task.train.filter((e) => e.label === "pos").slice(0, 16), ...task.train.filter((e) => e.label === "neg").slice(0, 16)];
  assert.equal(demos.length, 32);
  const o = { template: "{text}. It was", verbalizers: { neg: " bad", pos: " good" }, demonstrations: demos, calibrate: true };
  const r = classifyCausal(gpt, tok, task.labels, task.test.slice(0, 6), o);
  assert.equal(r.probs.length, 6);
  const used = r.demonstrationsUsed!;
  assert.equal(used.length, 6);
  for (const n of used) assert.ok(n >= 2 && n < 32, `${n} demonstrations used`);
  const { contexts, used: again } = fittedContexts(tok, task.labels, task.test.slice(0, 6), o, 128);
  assert.deepEqual(again, used);
  for (const c of contexts) assert.ok(c.length + 1 <= 128, `a context of ${c.length} tokens plus the verbalizer fits 128`);
  // Balanced: the demonstrations used alternate between the labels.
  const firstTwo = fittedContexts(tok, task.labels, ["x"], { ...o, demonstrations: demos }, 128);
  assert.ok(firstTwo.used[0] >= 2);
});

test("few-shot through runAdaptation reports how many demonstrations fit", async () => {
  const r = await runAdaptation({ base: gptDir, method: "few-shot", task: taskFile, labelsPerClass: 8, out: join(dir, "adapters", "few"), prompt: { template: "{text}. It was", verbalizers: { neg: " bad", pos: " good" } } });
  const cfg = (JSON.parse(readFileSync(join(dir, "adapters", "few", "adapter.json"), "utf8")) as { config: { demonstrationsUsed: { mean: number; max: number; of: number } } }).config;
  assert.equal(cfg.demonstrationsUsed.of, 16);
  assert.ok(cfg.demonstrationsUsed.max < 16 && cfg.demonstrationsUsed.mean > 0, JSON.stringify(cfg.demonstrationsUsed));
  assert.equal(r.method, "few-shot");
});

test("setfit preempted mid-run checkpoints, and the resumed run ends with the uninterrupted run's adapter (a rank means a LoRA body)", async () => {
  const spec = { base: gptDir, method: "setfit" as const, task: taskFile, labelsPerClass: 8, setfit: { pairs: 96, batchPairs: 8, rank: 2 } };
  const whole = await runAdaptation({ ...spec, out: join(dir, "adapters", "setfit-whole"), checkpointDir: join(dir, "ck-whole") });
  assert.ok(whole.trainableParameters < 10_000, `a rank without a body is LoRA: ${whole.trainableParameters} trainable`);
  const checkpointDir = join(dir, "ck-sliced"), out = join(dir, "adapters", "setfit-sliced");
  const preempt = new AbortController();
  await assert.rejects(runAdaptation({ ...spec, out, checkpointDir }, { preempt: preempt.signal, onProgress: (p) => { if (p.step === 5) preempt.abort(); } }),
    (e: unknown) => (e as Error).name === "PreemptedError" && (e as { step: number }).step === 5);
  const resumed = await runAdaptation({ ...spec, out, checkpointDir });
  assert.equal(resumed.losses.length, 12);
  assert.deepEqual(resumed.losses, whole.losses);
  assert.equal(resumed.trainingTokens, whole.trainingTokens);
  const a = loadAdapter(join(dir, "adapters", "setfit-whole"), gptDir).tensors, b = loadAdapter(out, gptDir).tensors;
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  for (const k of Object.keys(a)) assert.deepEqual(b[k].data, a[k].data, k);
});
