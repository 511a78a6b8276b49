// Adaptation runs end to end on tiny bases written to disk: every method produces an adapter
// that, applied to its base, reproduces the run's scores; the frozen parts stay frozen; LoRA
// trains few parameters; the harness and the audit run on top; worker processes report progress
// and cancel; bad input gets a clear error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { BertForMaskedLM, bertConfig, saveBert } from "../src/models/bert/index.js";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { accuracy, argmax, exampleText, labelIndex } from "../src/tasks/index.js";
import { resolveTask } from "../src/tasks/resolve.js";
import { runAdaptation, type AdaptMethod } from "../src/adapt/run.js";
import { loadAdapted } from "../src/adapt/apply.js";
import { startAdaptationWorker } from "../src/adapt/worker.js";
import { kShotCurve } from "../src/eval/harness.js";
import { curveSvg, curveTable, writeCurve } from "../src/eval/report.js";
import { runAudit } from "../src/eval/audit.js";
import { parseProbeSuite, ProbeFileError } from "../src/eval/probes.js";
import { loadGPT } from "../src/models/gpt/io.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-adapt-run-"));
const good = ["good", "great", "fine", "lovely", "superb", "nice"], bad = ["bad", "awful", "dull", "poor", "boring", "weak"];
const things = ["movie", "plot", "cast", "phone", "meal", "story", "song", "hotel"];
const rows: string[] = [];
things.forEach((t, i) => [...good, ...bad].forEach((w, j) => rows.push(JSON.stringify({ text: `the ${t} was ${w}`, label: good.includes(w) ? "pos" : "neg", _i: i * 100 + j }))));
const taskFile = join(dir, "reviews.jsonl");
writeFileSync(taskFile, rows.join("\n") + "\n");
const tok = new BPETextTokenizer(trainBPE(rows.map((r) => (JSON.parse(r) as { text: string }).text), { vocabSize: 300 }));

const gptDir = join(dir, "gpt"), bertDir = join(dir, "bert"), otherDir = join(dir, "other");
saveGPT(gptDir, new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 1 }));
tok.bpe.save(join(gptDir, "tokenizer.json"));
saveGPT(otherDir, new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 2 }));
tok.bpe.save(join(otherDir, "tokenizer.json"));
saveBert(bertDir, new BertForMaskedLM(bertConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 32 }), { seed: 3 }));
tok.bpe.save(join(bertDir, "tokenizer.json"));

/** Scores an adapter applied to its base on the task's test split (the same split the run used). */
function rescore(adapter: string, base: string): number {
  const task = resolveTask(taskFile);
  const probs = loadAdapted(adapter, base).predict(task.test.map((e) => ("text" in e ? e.text : "")));
  return accuracy(probs.map(argmax), task.test.map((e) => labelIndex(task, e.label)));
}

for (const [base, methods] of [[gptDir, ["zero-shot", "few-shot", "probe", "head", "lora", "full"]], [bertDir, ["zero-shot", "probe", "head", "lora", "full"]]] as const) {
  for (const method of methods as readonly AdaptMethod[]) {
    test(`${method} on a ${base === gptDir ? "GPT" : "BERT"} base: the adapter reproduces the run's accuracy`, async () => {
      const out = join(dir, "adapters", `${base === gptDir ? "gpt" : "bert"}-${method}`);
      const before = readFileSync(join(base, "model.safetensors"));
      const r = await runAdaptation({
        base, method, task: taskFile, out, labelsPerClass: method === "zero-shot" ? 0 : method === "few-shot" ? 2 : 8, steps: 30, lr: 3e-3,
        // Cloze verbalizers must be single tokens: single letters are, in this small vocabulary.
        prompt: { template: "{text}. It was", cloze: "{text}. It was [MASK].", verbalizers: base === gptDir ? { neg: " bad", pos: " good" } : { neg: "x", pos: "y" } },
      });
      assert.equal(r.out, out);
      assert.ok(existsSync(join(out, "adapter.json")) && existsSync(join(out, "adapter.safetensors")));
      assert.ok(r.metrics.accuracy >= 0 && r.metrics.accuracy <= 1 && r.testExamples > 0);
      assert.ok(Math.abs(rescore(out, base) - r.metrics.accuracy) < 1e-9, `${method}: applied adapter disagrees with the run`);
      assert.deepEqual(readFileSync(join(base, "model.safetensors")), before, "the base folder must not change");
      if (method === "head") assert.equal(r.trainableParameters, 32 * 2 + 2);
      if (method === "lora") {
        assert.ok(r.trainableParameters < r.totalParameters * 0.2, `${r.trainableParameters} of ${r.totalParameters}`);
        assert.ok(r.adapterBytes < readFileSync(join(base, "model.safetensors")).length / 2);
      }
      if (method === "full") assert.ok(r.trainableParameters > r.totalParameters);
    });
  }
}

test("full fine-tuning learns an easy task from its labels; the frozen head-only body does not move", async () => {
  const full = await runAdaptation({ base: gptDir, method: "full", task: taskFile, labelsPerClass: "all", steps: 120, lr: 3e-3, seed: 1 });
  assert.ok(full.metrics.accuracy >= 0.9, `full fine-tune accuracy ${full.metrics.accuracy}`);
  assert.ok(full.losses.at(-1)! < full.losses[0] * 0.5, `loss ${full.losses[0]} -> ${full.losses.at(-1)}`);
  const out = join(dir, "adapters", "head-frozen");
  await runAdaptation({ base: gptDir, method: "head", task: taskFile, out, labelsPerClass: 8, steps: 20 });
  const adapted = loadAdapted(out, gptDir), base = loadGPT(gptDir);
  assert.deepEqual(adapted.body.parameters().map((p) => Array.from(p.toArray())), base.parameters().map((p) => Array.from(p.toArray())));
});

test("an adapter is refused on another base, naming both hashes", async () => {
  const out = join(dir, "adapters", "probe-for-gpt");
  await runAdaptation({ base: gptDir, method: "probe", task: taskFile, out, labelsPerClass: 4 });
  assert.throws(() => loadAdapted(out, otherDir), /was made for base sha256 [0-9a-f]{64}.*has sha256 [0-9a-f]{64}/);
});

test("bad input: unknown method, empty data, unknown label, label missing from training, k=0 without zero-shot", async () => {
  await assert.rejects(runAdaptation({ base: gptDir, method: "magic" as AdaptMethod, task: taskFile }), /unknown adaptation method "magic"/);
  const empty = join(dir, "empty.jsonl");
  writeFileSync(empty, "");
  await assert.rejects(runAdaptation({ base: gptDir, method: "probe", task: empty }), /empty/);
  const test1 = join(dir, "test-unknown.jsonl");
  writeFileSync(test1, JSON.stringify({ text: "the film was weird", label: "meh" }) + "\n");
  await assert.rejects(runAdaptation({ base: gptDir, method: "probe", task: taskFile, testFile: test1 }), /unknown label "meh"/);
  const onlyPos = join(dir, "only-pos.jsonl"), testBoth = join(dir, "test-both.jsonl");
  writeFileSync(onlyPos, rows.filter((r) => r.includes('"pos"')).join("\n"));
  writeFileSync(testBoth, rows.slice(0, 20).join("\n"));
  await assert.rejects(runAdaptation({ base: gptDir, method: "head", task: onlyPos, testFile: testBoth, labels: ["neg", "pos"] }), /label "neg" is missing from the training split/);
  await assert.rejects(runAdaptation({ base: gptDir, method: "lora", task: taskFile, labelsPerClass: 0 }), /labelsPerClass 0 only suits zero-shot/);
  await assert.rejects(runAdaptation({ base: join(dir, "nope"), method: "probe", task: taskFile }), /not a folder/);
  await assert.rejects(runAdaptation({ base: gptDir, method: "probe", task: "no-such-task" }), /unknown task "no-such-task"/);
});

test("k-shot curve: one point per (method, k) with n = seeds, paired gaps to scratch, table, SVG and JSON", async () => {
  const curve = await kShotCurve({ base: gptDir, task: taskFile, methods: ["zero-shot", "probe", "head", "scratch"], ks: [0, 2, 4], seeds: 2, overrides: { steps: 10, prompt: { verbalizers: { neg: " bad", pos: " good" } } } });
  assert.deepEqual(curve.points.map((p) => `${p.method}@${p.k}:${p.n}`), ["zero-shot@0:1", "probe@2:2", "head@2:2", "scratch@2:2", "probe@4:2", "head@4:2", "scratch@4:2"]);
  assert.equal(curve.gaps.length, 4);
  for (const g of curve.gaps) {
    const mine = curve.runs.filter((r) => r.method === g.method && r.labelsPerClass === g.k).map((r) => r.metrics.accuracy);
    const scratch = curve.runs.filter((r) => r.method === "scratch" && r.labelsPerClass === g.k).map((r) => r.metrics.accuracy);
    assert.ok(Math.abs(g.accuracy.mean - (mine[0] + mine[1] - scratch[0] - scratch[1]) / 2) < 1e-12);
  }
  const paths = writeCurve(join(dir, "eval"), curve);
  assert.match(readFileSync(paths.svg, "utf8"), /^<svg[\s\S]*<polyline[\s\S]*<\/svg>$/);
  assert.match(curveTable(curve), /\| probe \| {2}\| \d+\.\d \[/);
  assert.equal((JSON.parse(readFileSync(paths.json, "utf8")) as { runs: unknown[] }).runs.length, 1 + 3 * 2 * 2);
  assert.ok(curveSvg(curve).includes("majority"));
});

test("worker process: progress arrives, the outcome matches, cancel stops it with an AbortError", async () => {
  const seen: number[] = [];
  const job = startAdaptationWorker({ base: gptDir, method: "head", task: taskFile, labelsPerClass: 4, steps: 15 }, { onProgress: (p) => seen.push(p.step) });
  const r = await job.result;
  assert.equal(r.method, "head");
  assert.equal(seen.at(-1), 15);
  const long = startAdaptationWorker({ base: gptDir, method: "full", task: taskFile, steps: 100000 }, { onProgress: () => long.cancel() });
  await assert.rejects(long.result, (e: Error) => e.name === "AbortError");
  const bad = startAdaptationWorker({ base: gptDir, method: "probe", task: "no-such-task" });
  await assert.rejects(bad.result, /unknown task "no-such-task"/);
});

test("audit: verdicts against the base, blocking failures, and probe files that do not parse", async () => {
  const out = join(dir, "adapters", "audit-full");
  await runAdaptation({ base: gptDir, method: "full", task: taskFile, out, labelsPerClass: "all", steps: 120, lr: 3e-3, seed: 1 });
  const suite = parseProbeSuite(JSON.stringify({
    name: "t", task: taskFile,
    probes: [
      { id: "neg", kind: "label", text: "the song was awful", expect: "neg", blocking: true },
      { id: "pos", kind: "label", text: "the hotel was lovely", expect: "pos" },
      { id: "swap", kind: "invariance", texts: ["the movie was good", "the story was good"], tolerance: 1 },
      { id: "lm", kind: "avoid", prompt: "the movie was", avoid: " bad", prefer: " good" },
    ],
  }), "suite.json");
  const report = runAudit({ base: gptDir, adapters: [out], suite });
  const row = (id: string) => report.rows.find((r) => r.probe === id)!;
  for (const id of ["neg", "pos"]) {
    const v = row(id).adapters[out];
    assert.equal(v.pass, true, `${id}: ${v.detail}`);
    assert.equal(v.verdict, row(id).base.pass ? "ok" : "fixed");
  }
  assert.equal(report.blockingFailures.length, 0);
  // A base-only audit reports a failing blocking probe as inherited by everything built on it.
  const failing = parseProbeSuite(JSON.stringify({ name: "f", probes: [{ id: "x", kind: "avoid", prompt: "the movie was", avoid: " bad", prefer: " good", blocking: true }] }), "f.json");
  const baseOnly = runAudit({ base: gptDir, adapters: [], suite: failing });
  assert.equal(baseOnly.blockingFailures.length, baseOnly.rows[0].base.pass ? 0 : 1);
  assert.throws(() => parseProbeSuite("{ not json", "bad.json"), (e: Error) => e instanceof ProbeFileError && /bad.json: not valid JSON/.test(e.message));
  assert.throws(() => parseProbeSuite('{"id":"a","kind":"label","text":"x","expect":"pos"}\n{"id":"b","kind":"teleport"}\n', "p.jsonl"), /p.jsonl:2 \(b\): unknown kind "teleport"/);
  assert.throws(() => parseProbeSuite('{"name":"n","probes":[]}', "e.json"), /holds no probes/);
});

test("plinth audit exits 1 when a blocking probe is inherited; plinth adapt writes an adapter", () => {
  const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const probes = join(dir, "blocking.json");
  writeFileSync(probes, JSON.stringify({ name: "b", probes: [{ id: "always-fails", kind: "label", text: "the movie was good", expect: "pos", blocking: true }] }));
  const adapt = spawnSync(process.execPath, [main, "adapt", "--base", gptDir, "--task", taskFile, "--method", "head", "--k", "4", "--steps", "5", "--out", join(dir, "cli-head")], { encoding: "utf8" });
  assert.equal(adapt.status, 0, adapt.stderr);
  assert.match(adapt.stdout, /head on reviews: accuracy \d+\.\d%/);
  const audit = spawnSync(process.execPath, [main, "audit", "--base", gptDir, "--probes", probes, "--adapters", join(dir, "cli-head"), "--out", join(dir, "audit")], { encoding: "utf8" });
  // The suite has no task, so the label probe cannot run on the adapter's task: n/a, not a failure.
  assert.equal(audit.status, 0, audit.stderr);
  assert.match(audit.stdout, /n\/a/);
  // prefer == avoid never passes (it needs a strictly higher score): the base fails it, and a head
  // adapter keeps the base's body, so it inherits the failure of a blocking probe.
  writeFileSync(probes, JSON.stringify({ name: "b", probes: [{ id: "never", kind: "avoid", prompt: "the movie was", avoid: " good", prefer: " good", blocking: true }] }));
  const blocked = spawnSync(process.execPath, [main, "audit", "--base", gptDir, "--probes", probes, "--adapters", join(dir, "cli-head"), "--out", join(dir, "audit")], { encoding: "utf8" });
  assert.equal(blocked.status, 1, blocked.stdout);
  assert.match(blocked.stdout, /inherited/);
  assert.match(blocked.stderr, /1 blocking probe failure\(s\): never inherited in/);
  writeFileSync(probes, "{ broken");
  const broken = spawnSync(process.execPath, [main, "audit", "--base", gptDir, "--probes", probes], { encoding: "utf8" });
  assert.equal(broken.status, 1);
  assert.match(broken.stderr, /not valid JSON/);
});

test("perplexity of the base and of an adapted body on a task's texts; a masked LM is refused", async () => {
  const { perplexity } = await import("../src/eval/perplexity.js");
  const { loadBase } = await import("../src/adapt/base.js");
  const texts = resolveTask(taskFile).test.map((e) => ("text" in e ? e.text : ""));
  const base = loadBase(gptDir);
  const p = perplexity(base.model, base.tok, texts);
  assert.ok(p.tokens > 50 && Number.isFinite(p.loss) && Math.abs(p.perplexity - Math.exp(p.loss)) < 1e-9 && p.bitsPerByte > 0);
  // An untrained model is close to uniform over its vocabulary.
  assert.ok(Math.abs(p.loss - Math.log(tok.vocabSize)) < 0.5, `loss ${p.loss} vs log V ${Math.log(tok.vocabSize)}`);
  const bert = loadBase(bertDir);
  assert.throws(() => perplexity(bert.model, bert.tok, texts), /needs a causal LM/);
  assert.throws(() => perplexity(base.model, base.tok, []), /no texts/);
});

test("pair tasks {text_a, text_b, label} adapt like single texts", async () => {
  const pairs = join(dir, "pairs.csv");
  const lines = ["text_a,text_b,label"];
  things.forEach((t, i) => good.concat(bad).forEach((w, j) => lines.push(`the ${t} was ${w},"the ${things[(i + j) % things.length]} was ${(j % 2 ? good : bad)[j % 6]}",${good.includes(w) === (j % 2 === 1) ? "same" : "different"}`)));
  writeFileSync(pairs, lines.join("\n") + "\n");
  const r = await runAdaptation({ base: gptDir, method: "head", task: pairs, labelsPerClass: 8, steps: 10, out: join(dir, "adapters", "pairs-head") });
  assert.deepEqual(r.labels, ["different", "same"]);
  assert.ok(r.testExamples > 0 && r.trainExamples === 16);
  assert.ok(Math.abs(rescorePairs(join(dir, "adapters", "pairs-head"), pairs) - r.metrics.accuracy) < 1e-9);
});

function rescorePairs(adapter: string, file: string): number {
  const task = resolveTask(file);
  const probs = loadAdapted(adapter, gptDir).predict(task.test.map((e) => exampleText(e)));
  return accuracy(probs.map(argmax), task.test.map((e) => labelIndex(task, e.label)));
}
