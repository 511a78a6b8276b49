// Label likelihood uses what the model learned: a tiny GPT trained for a few seconds on
// templated reviews classifies unseen reviews zero-shot well above chance, and the masked
// cloze path and the metrics run on its outputs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { ids, Rng } from "../src/tensor/index.js";
import { AdamW } from "../src/optim/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { accuracy, argmax, expectedCalibrationError, labelIndex, makeTask, type Example } from "../src/tasks/index.js";
import { classifyCausal } from "../src/adapt/zeroshot.js";

const positive = ["good", "great", "fun", "lovely", "superb"];
const negative = ["bad", "awful", "dull", "boring", "poor"];
const subjects = ["movie", "plot", "cast", "ending", "music", "story"];
const line = (s: string, w: string) => `Review: the ${s} was ${w}\nSentiment:${positive.includes(w) ? " good" : " bad"}\n`;

test("a briefly trained GPT classifies unseen reviews zero-shot by label likelihood", () => {
  const rng = new Rng(0);
  // Hold out a fifth of the (subject, word) pairs: the test reviews are unseen sentences.
  const words = [...positive, ...negative];
  const trainLines: string[] = [], heldOut: Example[] = [];
  subjects.forEach((s, i) => words.forEach((w, j) => {
    if ((i + j) % 5 === 0) heldOut.push({ text: `the ${s} was ${w}`, label: positive.includes(w) ? "positive" : "negative" });
    else trainLines.push(line(s, w));
  }));
  const tok = new BPETextTokenizer(trainBPE(trainLines, { vocabSize: 300 }));
  const model = new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 48, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 3 });
  const opt = new AdamW(model.paramGroups(0.01), { lr: 3e-3 });
  const stream: number[] = [];
  for (let r = 0; r < 20; r++) for (let i = 0; i < trainLines.length; i++) stream.push(...Array.from(tok.encode(trainLines[rng.int(trainLines.length)])));
  const T = 32, B = 16;
  const started = Date.now();
  for (let step = 0; step < 250 && Date.now() - started < 10_000; step++) {
    const rows: number[][] = [], targets: number[][] = [];
    for (let b = 0; b < B; b++) {
      const at = rng.int(stream.length - T - 1);
      rows.push(stream.slice(at, at + T));
      targets.push(stream.slice(at + 1, at + T + 1));
    }
    const loss = model.loss(ids(rows), ids(targets));
    if (process.env.DEBUG_ADAPT && step % 50 === 0) console.log(step, loss.item());
    loss.backward();
    opt.step();
    opt.zeroGrad();
  }
  const task = makeTask("reviews", heldOut, heldOut, ["negative", "positive"]);
  const { probs } = classifyCausal(model, tok, task.labels, task.test, { template: "Review: {text}\nSentiment:", verbalizers: { negative: " bad", positive: " good" } });
  const gold = task.test.map((e) => labelIndex(task, e.label));
  const acc = accuracy(probs.map(argmax), gold);
  if (process.env.DEBUG_ADAPT) console.log(JSON.stringify(probs));
  assert.ok(acc >= 0.8, `zero-shot accuracy ${acc} on unseen reviews`);
  const calibrated = classifyCausal(model, tok, task.labels, task.test, { template: "Review: {text}\nSentiment:", verbalizers: { negative: " bad", positive: " good" }, calibrate: true });
  assert.ok(accuracy(calibrated.probs.map(argmax), gold) >= 0.8);
  const ece = expectedCalibrationError(probs, gold);
  assert.ok(ece >= 0 && ece <= 1);
});
