// The task suite: every task loads with a fixed split that keeps a group (document, file,
// thread, article) on one side, enough test examples, a prompt for each label; suite names
// resolve like built-ins; and one suite run on a tiny base writes one table and one plot.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { SUITES, SUITE_TASKS, exampleText, resolveTask, suiteTask, suiteTasks, type Example } from "../src/tasks/index.js";
import { splitByGroup } from "../src/tasks/package_data.js";
import { promptFor } from "../src/adapt/base.js";
import { runSuite } from "../src/eval/suite.js";
import { suiteGapSvg, suiteTable, writeSuite } from "../src/eval/suite_report.js";

test("the core suite has at least 8 tasks of at least 5 kinds, and none of the reserved ones", () => {
  assert.ok(SUITES.core.length >= 8, SUITES.core.join(","));
  const kinds = new Set(Object.values(SUITE_TASKS).map((t) => t.kind));
  assert.ok(kinds.size >= 5, [...kinds].join(","));
  for (const name of SUITES.core) assert.doesNotMatch(name, /wordnet|lexname|fortune/i);
  for (const name of SUITES.quick) assert.ok(SUITES.core.includes(name));
  assert.throws(() => suiteTasks("nope"), /unknown suite "nope"; suites are core, quick/);
});

for (const name of Object.keys(SUITE_TASKS)) {
  test(`${name}: a fixed, grouped split with enough test examples and a prompt for every label`, () => {
    const t = suiteTask(name);
    assert.equal(t.name, name);
    assert.ok(t.test.length >= 200, `${name}: ${t.test.length} test examples`);
    for (const l of t.labels) {
      assert.ok(t.train.filter((e) => e.label === l).length >= 16, `${name}: label ${l} has fewer than 16 training examples`);
      assert.ok(t.test.some((e) => e.label === l), `${name}: label ${l} is missing from the test split`);
    }
    const trainGroups = new Set(t.train.map((e) => e.group));
    assert.equal(t.test.filter((e) => trainGroups.has(e.group)).length, 0, `${name}: a group on both sides of the split`);
    assert.ok(t.test.every((e) => e.group !== undefined));
    // Deterministic: resolving it again (as a worker process would) gives the same split.
    const again = resolveTask(name);
    assert.deepEqual(again.test.map((e) => ("text" in e ? e.text : "")), t.test.map((e) => ("text" in e ? e.text : "")));
    const texts = new Set(t.train.map((e) => ("text" in e ? e.text : "")));
    assert.ok(t.test.filter((e) => texts.has("text" in e ? e.text : "")).length <= t.test.length * 0.02, `${name}: test texts repeated in training`);
    const prompt = promptFor(t);
    assert.deepEqual(Object.keys(prompt.verbalizers).sort(), [...t.labels].sort());
    assert.equal(new Set(Object.values(prompt.verbalizers)).size, t.labels.length, `${name}: two labels share a verbalizer`);
  });
}

test("splitByGroup keeps each group on one side, also when a group spans labels", () => {
  const ex: Example[] = [];
  for (let g = 0; g < 20; g++) for (let i = 0; i < 3; i++) ex.push({ text: `${g}-${i}`, label: i === 2 ? "b" : g % 2 ? "a" : "b", group: `g${g}` });
  const { train, test: held } = splitByGroup(ex, 0.25, 0);
  const tr = new Set(train.map((e) => e.group));
  assert.equal(held.filter((e) => tr.has(e.group)).length, 0);
  assert.ok(held.length >= 6 && held.length <= 30, String(held.length));
  assert.deepEqual(splitByGroup(ex, 0.25, 0).test, held, "the same seed gives the same split");
  assert.notDeepEqual(splitByGroup(ex, 0.25, 1).test.map((e) => exampleText(e)).sort(), held.map((e) => exampleText(e)).sort());
  assert.throws(() => splitByGroup(ex, 1, 0), /testFraction 1 must be in \(0, 1\)/);
});

test("a suite run on a tiny base writes one table (task x k x method, gap to scratch, auto's picks) and one plot", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-suite-"));
  const tok = new BPETextTokenizer(trainBPE(["the grinning face with big eyes", "Alle Menschen sind frei und gleich an Würde", "Tous les êtres humains naissent libres"], { vocabSize: 300 }));
  saveGPT(dir, new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32 }), { seed: 1 }));
  tok.bpe.save(join(dir, "tokenizer.json"));
  const r = await runSuite({
    base: dir, suite: ["emoji-topic", "language-id"], methods: ["auto", "probe", "scratch"], ks: [2], seeds: 2, maxTest: 24,
    overrides: { steps: 3, maxTokens: 32 }, autoCandidates: ["zero-shot", "probe"],
  });
  assert.deepEqual(r.tasks.map((c) => c.task), ["emoji-topic", "language-id"]);
  for (const c of r.tasks) {
    const auto = c.points.find((p) => p.method === "auto" && p.k === 2)!;
    assert.equal(Object.values(auto.picked!).reduce((a, b) => a + b, 0), 2, "auto reports a pick per seed");
    assert.ok(Object.keys(auto.picked!).every((m) => ["zero-shot", "probe"].includes(m)));
    assert.ok(c.gaps.some((g) => g.method === "auto"));
    assert.equal(c.testExamples, 24);
  }
  const table = suiteTable(r);
  assert.match(table, /\| emoji-topic \| topic \| 2 \| auto \| [\d.]+ \| [+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\]/);
  assert.match(table, /\| language-id \| language \| 2 \| scratch \|/);
  assert.match(table, /\| 2 \| auto \| \d of 2 \| \d of 2 \|/);
  const svg = suiteGapSvg(r);
  assert.match(svg, /^<svg/);
  assert.match(svg, /emoji-topic/);
  assert.match(svg, /k = 2/);
  const paths = writeSuite(join(dir, "out"), r);
  assert.ok(existsSync(paths.svg) && existsSync(paths.table));
  assert.equal(JSON.parse(readFileSync(paths.json, "utf8")).tasks.length, 2);
  await assert.rejects(runSuite({ base: dir, suite: "quick", methods: ["probe"], ks: [2], seeds: 1 }), /must include scratch/);
});
