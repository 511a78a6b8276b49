// --methods auto: stratified folds over the k labels, a pick by held-out accuracy with ties to
// the cheaper method, cross-validation that never reads the test split, and a final run that is
// the picked method trained on all k labels.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { exampleText, resolveTask, type Example, type Task } from "../src/tasks/index.js";
import { runAdaptation } from "../src/adapt/run.js";
import { autoCandidates, crossValidate, foldCount, pickMethod, runAuto, stratifiedFolds } from "../src/eval/auto.js";
import { kShotCurve } from "../src/eval/harness.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-auto-"));
const good = ["good", "great", "fine", "lovely", "superb", "nice"], bad = ["bad", "awful", "dull", "poor", "boring", "weak"];
const rows: string[] = [];
for (const t of ["movie", "plot", "cast", "phone", "meal", "story"]) for (const w of [...good, ...bad]) rows.push(JSON.stringify({ text: `the ${t} was ${w}`, label: good.includes(w) ? "pos" : "neg" }));
const taskFile = join(dir, "reviews.jsonl");
writeFileSync(taskFile, rows.join("\n") + "\n");
const tok = new BPETextTokenizer(trainBPE(rows.map((r) => (JSON.parse(r) as { text: string }).text), { vocabSize: 300 }));
const base = join(dir, "gpt");
saveGPT(base, new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 1 }));
tok.bpe.save(join(base, "tokenizer.json"));

test("stratified folds deal each label evenly and cover every example once", () => {
  const ex: Example[] = Array.from({ length: 24 }, (_, i) => ({ text: `t${i}`, label: ["a", "b", "c"][i % 3] }));
  const folds = stratifiedFolds(ex, 4, 0);
  assert.equal(folds.length, 4);
  assert.deepEqual(folds.flat().map((e) => exampleText(e)).sort(), ex.map((e) => exampleText(e)).sort());
  for (const f of folds) for (const l of ["a", "b", "c"]) assert.equal(f.filter((e) => e.label === l).length, 2);
  assert.equal(foldCount(1), 0);
  assert.equal(foldCount(2), 2);
  assert.equal(foldCount(3), 3);
  assert.equal(foldCount(16), 4);
  assert.throws(() => stratifiedFolds(ex, 1, 0), /n must be an integer >= 2/);
});

test("the pick is the best held-out accuracy; a tie within half an example goes to the cheaper method", () => {
  assert.equal(pickMethod([{ method: "full", accuracy: 0.8, folds: 4 }, { method: "probe", accuracy: 0.6, folds: 4 }], 32), "full");
  assert.equal(pickMethod([{ method: "full", accuracy: 0.8, folds: 4 }, { method: "probe", accuracy: 0.8, folds: 4 }], 32), "probe");
  assert.equal(pickMethod([{ method: "lora", accuracy: 0.5, folds: 4 }, { method: "zero-shot", accuracy: 0.49, folds: 4 }], 32), "zero-shot");
  assert.equal(pickMethod([{ method: "lora", accuracy: 0.5, folds: 4 }, { method: "zero-shot", accuracy: 0.4, folds: 4 }], 32), "lora");
  assert.ok(!autoCandidates().includes("scratch" as never), "scratch is the baseline, never a candidate");
  assert.equal(autoCandidates()[0], "zero-shot", "the cheapest first");
});

test("cross-validation reads only the k labeled examples, never the test split", async () => {
  const task = resolveTask(taskFile);
  // A task whose test split would throw if anything read it.
  const guarded: Task = { ...task, get test(): Example[] { throw new Error("the test split was read during cross-validation"); } } as Task;
  const cv = await crossValidate({ base, labelsPerClass: 4, seed: 0, steps: 3, candidates: ["zero-shot", "probe", "head"] }, guarded);
  assert.deepEqual(cv.map((c) => c.method), ["zero-shot", "probe", "head"]);
  for (const c of cv) {
    assert.equal(c.folds, 4);
    assert.ok(c.accuracy >= 0 && c.accuracy <= 1);
    // 8 labeled examples over 4 folds: accuracy is a multiple of 1/8.
    assert.ok(Math.abs(c.accuracy * 8 - Math.round(c.accuracy * 8)) < 1e-9, String(c.accuracy));
  }
  await assert.rejects(crossValidate({ base, labelsPerClass: 4, candidates: ["scratch"] }, task), /"scratch" is not a candidate/);
});

test("auto trains the picked method on all k labels: the same outcome as running that method", async () => {
  const task = resolveTask(taskFile);
  const r = await runAuto({ base, labelsPerClass: 4, seed: 1, steps: 3, candidates: ["zero-shot", "probe"] }, task);
  assert.equal(r.method, "auto");
  assert.ok(["zero-shot", "probe"].includes(r.picked));
  assert.equal(r.cv.length, 2);
  const same = await runAdaptation({ base, method: r.picked, task: taskFile, labelsPerClass: r.picked === "zero-shot" ? 0 : 4, seed: 1, steps: 3 }, { task });
  assert.equal(r.metrics.accuracy, same.metrics.accuracy);
  assert.equal(r.testExamples, task.test.length);
  // k = 1 leaves nothing to hold out: the first candidate is taken without cross-validation.
  const one = await runAuto({ base, labelsPerClass: 1, seed: 0, steps: 2, candidates: ["probe", "head"] }, task);
  assert.equal(one.picked, "probe");
  assert.ok(Number.isNaN(one.cv[0].accuracy));
});

test("auto is a row of a k-shot curve, with its gap to scratch and its picks", async () => {
  const c = await kShotCurve({ base, task: taskFile, methods: ["auto", "scratch"], ks: [2, "all"], seeds: 2, overrides: { steps: 2 }, autoCandidates: ["zero-shot", "probe"] });
  const p = c.points.find((x) => x.method === "auto")!;
  assert.equal(p.k, 2);
  assert.equal(p.n, 2);
  assert.equal(Object.values(p.picked!).reduce((a, b) => a + b, 0), 2);
  assert.ok(c.gaps.some((g) => g.method === "auto" && g.k === 2));
  assert.ok(!c.points.some((x) => x.method === "auto" && x.k === "all"), "auto does not run on the whole training split");
  assert.ok(c.runs.filter((r) => r.method === "auto").every((r) => r.picked !== undefined && r.cv !== undefined));
});
