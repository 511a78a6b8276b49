// Labeled tasks: the RFC 4180 CSV parser, JSONL/CSV loaders with file:line errors, task checks
// (empty dataset, unknown label, a label missing from training), seeded splits, k-shot
// sampling, and the three built-in tasks from npm packages.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { builtinTask, exampleText, isPair, loadTaskFiles, makeTask, parseCSV, paragraphs, sampleKShot, splitExamples, type Example } from "../src/tasks/index.js";

const withDir = (body: (dir: string) => void) => () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-tasks-"));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

test("CSV: quoted fields hold commas, quotes and newlines; records keep their first line", () => {
  const csv = 'text,label\r\n"Good, really",pos\n"He said ""no""\nthen left",neg\n\nplain,neg\n"",pos\n';
  const recs = parseCSV(csv);
  assert.deepEqual(recs.map((r) => r.cells), [["text", "label"], ["Good, really", "pos"], ['He said "no"\nthen left', "neg"], ["plain", "neg"], ["", "pos"]]);
  assert.deepEqual(recs.map((r) => r.line), [1, 2, 3, 6, 7]);
  assert.deepEqual(parseCSV("a,b").map((r) => r.cells), [["a", "b"]]);  // no trailing newline
  assert.deepEqual(parseCSV("a,,\n").map((r) => r.cells), [["a", "", ""]]);
  assert.throws(() => parseCSV('text\n"never closed\n', "x.csv"), /x\.csv:2: a quoted field is never closed/);
  assert.throws(() => parseCSV('a"b,c\n', "x.csv"), /x\.csv:1: a quote inside an unquoted field/);
  assert.throws(() => parseCSV('"a"b,c\n', "x.csv"), /x\.csv:1: text after the closing quote/);
});

test("JSONL and CSV files load as tasks, single and pair forms", withDir((dir) => {
  const train = join(dir, "train.jsonl"), test_ = join(dir, "test.csv");
  writeFileSync(train, ['{"text": "great fun", "label": "pos"}', "", '{"text": "dull", "label": "neg"}', '{"text": "loved it", "label": "pos"}', '{"text": "awful", "label": 0}'].join("\n"));
  writeFileSync(test_, 'label,text\npos,"fine, fine"\nneg,bad\n0,meh\n');
  const task = loadTaskFiles({ name: "toy", train, test: test_ });
  assert.deepEqual(task.labels, ["0", "neg", "pos"]);
  assert.equal(task.train.length, 4);
  assert.deepEqual(task.test[0], { text: "fine, fine", label: "pos" });

  const pairs = join(dir, "pairs.csv");
  writeFileSync(pairs, "text_a,text_b,label\n" + Array.from({ length: 10 }, (_, i) => `q${i},a${i},${i % 2 ? "yes" : "no"}`).join("\n"));
  const pt = loadTaskFiles({ name: "pairs", train: pairs, testFraction: 0.2, seed: 1 });
  assert.deepEqual(pt.labels, ["no", "yes"]);
  assert.equal(pt.train.length + pt.test.length, 10);
  assert.equal(pt.test.length, 2);
  assert.ok(pt.train.every(isPair));
  assert.match(exampleText(pt.train[0]), /^q\d\na\d$/);
  // Deterministic for a seed.
  assert.deepEqual(loadTaskFiles({ name: "pairs", train: pairs, seed: 1 }), pt);
}));

test("bad input gets errors that name the file and line", withDir((dir) => {
  const f = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
  const empty = f("empty.jsonl", "\n\n");
  assert.throws(() => loadTaskFiles({ name: "t", train: empty }), /t: .*empty\.jsonl holds no rows \(the dataset is empty\)/);
  const emptyCsv = f("empty.csv", "text,label\n");
  assert.throws(() => loadTaskFiles({ name: "t", train: emptyCsv }), /holds no rows/);
  const good = f("good.jsonl", '{"text":"a","label":"x"}\n{"text":"b","label":"y"}\n');
  const unknown = f("unknown.jsonl", '{"text":"a","label":"x"}\n{"text":"c","label":"z"}\n');
  assert.throws(() => loadTaskFiles({ name: "t", train: good, test: unknown }), /unknown\.jsonl:2: unknown label "z" in task t; labels are \["x","y"\]/);
  assert.throws(() => loadTaskFiles({ name: "t", train: unknown, labels: ["x", "y"] }), /unknown\.jsonl:2: unknown label "z"/);
  const onlyX = f("onlyx.jsonl", '{"text":"a","label":"x"}\n{"text":"b","label":"x"}\n');
  assert.throws(() => loadTaskFiles({ name: "t", train: onlyX, test: good, labels: ["x", "y"] }), /label "y" is missing from the training split/);
  const badJson = f("bad.jsonl", '{"text":"a","label":"x"}\n{"text": oops}\n');
  assert.throws(() => loadTaskFiles({ name: "t", train: badJson }), /bad\.jsonl:2: not valid JSON/);
  const noText = f("notext.jsonl", '{"body":"a","label":"x"}\n');
  assert.throws(() => loadTaskFiles({ name: "t", train: noText }), /notext\.jsonl:1: a row needs "text"/);
  const noLabel = f("nolabel.csv", 'text,label\nhello,\n');
  assert.throws(() => loadTaskFiles({ name: "t", train: noLabel }), /nolabel\.csv:2: "label" is missing or empty/);
  const ragged = f("ragged.csv", "text,label\na,x\nb,y,extra\n");
  assert.throws(() => loadTaskFiles({ name: "t", train: ragged }), /ragged\.csv:3: 3 fields, but the header \(text,label\) has 2/);
  assert.throws(() => loadTaskFiles({ name: "t", train: join(dir, "nope.jsonl") }), /nope\.jsonl: no such file/);
  assert.throws(() => loadTaskFiles({ name: "t", train: f("x.txt", "hi") }), /unknown format "\.txt"/);
  assert.throws(() => makeTask("t", [], [{ text: "a", label: "x" }]), /training split is empty/);
  assert.throws(() => makeTask("t", [{ text: "a", label: "x" }], [{ text: "b", label: "x" }]), /at least 2 labels/);
  assert.throws(() => builtinTask("nope"), /unknown built-in task "nope"; built-in tasks are sentiment, spam, sotu-party/);
}));

test("splits are stratified and seeded; k-shot picks k per label", () => {
  const examples: Example[] = Array.from({ length: 100 }, (_, i) => ({ text: `t${i}`, label: i % 4 === 0 ? "a" : "b" }));
  const s = splitExamples(examples, 0.2, 5);
  assert.equal(s.test.filter((e) => e.label === "a").length, 5);
  assert.equal(s.test.filter((e) => e.label === "b").length, 15);
  assert.deepEqual(splitExamples(examples, 0.2, 5), s);
  assert.notDeepEqual(splitExamples(examples, 0.2, 6).test, s.test);
  const task = makeTask("t", s.train, s.test);
  for (const k of [0, 1, 4, 16]) {
    const shots = sampleKShot(task, k, 0);
    assert.equal(shots.filter((e) => e.label === "a").length, k);
    assert.equal(shots.filter((e) => e.label === "b").length, k);
    assert.ok(shots.every((e) => task.train.includes(e)));
  }
  assert.deepEqual(sampleKShot(task, 4, 1), sampleKShot(task, 4, 1));
  assert.notDeepEqual(sampleKShot(task, 4, 1), sampleKShot(task, 4, 2));
  assert.equal(sampleKShot(task, 1000, 0).length, task.train.length);  // capped at what a label has
});

test("built-in sentiment: the UCI sentences, balanced, no null classes", () => {
  const t = builtinTask("sentiment");
  assert.deepEqual(t.labels, ["negative", "positive"]);
  assert.equal(t.train.length + t.test.length, 3000);
  assert.equal(t.test.length, 600);
  assert.equal(t.train.filter((e) => e.label === "positive").length, 1200);
  assert.ok(t.train.every((e) => !isPair(e) && e.text.length > 0));
  assert.deepEqual(builtinTask("sentiment", { seed: 0 }).test.slice(0, 5), t.test.slice(0, 5));
});

test("built-in spam: ham vs spam from the group field", () => {
  const t = builtinTask("spam");
  assert.deepEqual(t.labels, ["ham", "spam"]);
  assert.equal(t.train.length + t.test.length, 6046);
  const spam = [...t.train, ...t.test].filter((e) => e.label === "spam").length;
  assert.ok(spam > 1500 && spam < 2000, `${spam} spam emails`);
});

test("built-in sotu-party: Democratic vs Republican paragraphs, split by address", () => {
  const t = builtinTask("sotu-party");
  assert.deepEqual(t.labels, ["Democratic", "Republican"]);
  assert.ok(t.train.length > 2000 && t.test.length > 300, `${t.train.length}/${t.test.length}`);
  const trainAddresses = new Set(t.train.map((e) => e.group));
  const testAddresses = new Set(t.test.map((e) => e.group));
  assert.ok(testAddresses.size >= 30 && trainAddresses.size >= 140, `${testAddresses.size} test / ${trainAddresses.size} train addresses`);
  assert.ok([...testAddresses].every((a) => a !== undefined && !trainAddresses.has(a)));
  for (const l of t.labels) assert.ok(t.test.some((e) => e.label === l));
  const lengths = t.train.map((e) => exampleText(e).length);
  assert.ok(lengths.every((n) => n >= 150), `shortest paragraph ${Math.min(...lengths)}`);
  assert.deepEqual(paragraphs("One. Two! Three? Four.", 8), ["One. Two!", "Three? Four."]);
});
