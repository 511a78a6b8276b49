/**
 * `plinth demo` (what `npm start` runs): the main job on the embedded default. Trains a
 * byte-level BPE tokenizer and pretrains a small GPT on the default corpus (Moby Dick,
 * State of the Union addresses, ham emails and TypeScript's lib sources, all shipped by
 * npm packages) for a bounded time, then reports validation perplexity against the
 * unigram baseline, prints samples and says where the model is. A second run reuses the
 * finished model (or resumes an interrupted one) instead of starting over.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { generate } from "../models/gpt/index.js";
import { can } from "../models/registry.js";
import { backend } from "../native/index.js";
import { parseDuration, parseIntArg } from "./args.js";
import { pretrain, printReport } from "./pretrain.js";

export const demoHelp = `plinth demo — the main job: tokenizer + GPT pretraining on the default corpus, then samples

Usage: plinth demo [--time 10m] [--size small] [--out runs/default] [--retrain] [--seed N]

  --time      training budget (e.g. 90s, 10m; default 10m)
  --size      GPT preset: tiny, small, S, M (default small)
  --out       run folder (default runs/default)
  --retrain   start over even if the run folder holds a finished model

Examples:
  npm start                                   # same as: plinth demo
  plinth demo --time 2m --size tiny --out /tmp/quick`;

const PROMPTS = ["Call me Ishmael. ", "Fellow-Citizens of the Senate and House of Representatives: ", "interface Array<T> {\n    "];

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { time: { type: "string" }, size: { type: "string" }, out: { type: "string" }, retrain: { type: "boolean" }, seed: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(demoHelp);
    return;
  }
  const budget = parseDuration(values.time ?? "10m");
  const outDir = resolve(values.out ?? "runs/default");
  if (values.retrain) {
    const { rmSync } = await import("node:fs");
    rmSync(outDir, { recursive: true, force: true });
  }
  const finished = existsSync(join(outDir, "summary.json")) && existsSync(join(outDir, "model.safetensors"));
  console.log(`plinth · ${backend.isa()} kernels · ${backend.threads()} threads`);
  if (finished) console.log(`${outDir} already holds a finished run: reusing it (pass --retrain to start over)`);
  const seed = parseIntArg("seed", values.seed, 1234);
  const run = await pretrain({
    objective: "clm", size: values.size ?? "small", data: ["default"], outDir, seconds: finished ? 0 : budget,
    vocab: 4096, batch: 16, lr: 2e-3, warmup: 100, gradAccum: 1, evalEvery: 250, checkpointEvery: 250, seed,
  });
  printReport(run);
  console.log("");
  const model = run.model;
  if (!can(model, "generate")) throw new Error("demo: expected a causal LM (gpt2) model");
  PROMPTS.forEach((prompt, i) => {
    const ids = Array.from(run.tokenizer.encode(prompt));
    const { tokens } = generate(model, ids, { maxNewTokens: 60, temperature: 0.8, topK: 40, seed: seed + i, stopTokens: [run.tokenizer.eot] });
    console.log(`sample ${i + 1}: ${JSON.stringify(prompt + run.tokenizer.decode(tokens))}`);
  });
  console.log("");
  console.log(`model saved in ${outDir}: config.json, model.safetensors, tokenizer.json (Hugging Face layout); metrics.jsonl, loss.svg, checkpoints/ beside them`);
  console.log(`continue it:  plinth generate --model ${outDir} --prompt "Call me "`);
  console.log(`adapt it:     plinth adapt --base ${outDir} --task sentiment --method lora --k 32`);
  console.log(`measure it:   plinth eval --base ${outDir} --task spam --methods zero-shot,probe,lora,scratch --k 0,4,32 --seeds 3`);
  console.log(`serve it:     plinth serve --model default=${outDir}`);
}
