/** `plinth adapt --objective lm` (generative fine-tuning) and `plinth eval --perplexity chats.jsonl` (held-out assistant tokens). */
import { join } from "node:path";
import { type GenerativeOutcome, type GenerativeScores, runGenerative, scoreGenerative } from "../adapt/generative.js";
import { loadAdapted } from "../adapt/apply.js";
import { loadBase } from "../adapt/base.js";
import type { GPT } from "../models/gpt/model.js";
import { can } from "../models/registry.js";
import { loadGenerativeData } from "../tasks/chat.js";
import type { Parser } from "../tasks/code_parse.js";
import { chatTemplateFor } from "../tokenizer/chat_template.js";
import { Progress } from "../train/progress.js";
import { UsageError, checkWritableDir, parseFloatArg, parseIntArg } from "./args.js";
import { type WeightFormat, useInferenceWeights } from "../models/inference_weights.js";

type Values = Record<string, string | boolean | undefined>;
const str = (v: Values, k: string): string | undefined => (typeof v[k] === "string" ? (v[k] as string) : undefined);

const pct = (v: number): string => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : "--");
const scores = (s: GenerativeScores): string =>
  `loss ${s.loss.toFixed(4)} (perplexity ${s.perplexity.toFixed(2)}) on ${s.tokens} assistant tokens, exact match ${pct(s.exactMatch)}, similarity ${Number.isFinite(s.similarity) ? s.similarity.toFixed(3) : "--"}` +
  (Number.isFinite(s.parseRate) ? `, parses ${pct(s.parseRate)}` : "");

export async function runGenerativeAdapt(values: Values): Promise<void> {
  if (values.objective !== "lm") throw new UsageError(`--objective ${JSON.stringify(values.objective)}: the objective is lm (generative fine-tuning); classification needs no --objective`);
  const data = str(values, "data") ?? str(values, "task");
  if (data === undefined) throw new UsageError("--data is required with --objective lm (a chat or prompt/completion .jsonl, or text files: a file, folder or glob)");
  const method = str(values, "method") ?? "lora";
  if (method !== "lora" && method !== "full") throw new UsageError(`--method ${method}: generative fine-tuning is lora or full`);
  const base = str(values, "base")!;
  const out = str(values, "out") ?? join("runs", "adapters", `${data.replace(/.*[\\/]/, "").replace(/[*?]/g, "").replace(/\.\w+$/, "") || "text"}-${method}-lm`);
  checkWritableDir("out", out);
  const int = (k: string, min = 1): number | undefined => (str(values, k) === undefined ? undefined : parseIntArg(k, str(values, k), 0, min));
  const lora = {
    rank: int("rank"), alpha: str(values, "alpha") === undefined ? undefined : parseFloatArg("alpha", str(values, "alpha"), 16),
    dropout: str(values, "lora-dropout") === undefined ? undefined : parseFloatArg("lora-dropout", str(values, "lora-dropout"), 0.05),
    targets: str(values, "targets")?.split(",").map((s) => s.trim()).filter((s) => s !== ""),
  };
  const bar = new Progress(`adapt ${method} lm`);
  const o = await runGenerative({
    base, method, data, out, validation: str(values, "validation"),
    valFraction: str(values, "val-fraction") === undefined ? undefined : parseFloatArg("val-fraction", str(values, "val-fraction"), 0.1),
    seed: parseIntArg("seed", str(values, "seed"), 0), steps: int("steps"), epochs: int("epochs"),
    lr: str(values, "lr") === undefined ? undefined : parseFloatArg("lr", str(values, "lr"), 0), batchSize: int("batch-size"), ctx: int("ctx", 2),
    maxTest: int("max-test", 0), lora, roleTokens: values["role-tokens"] === true,
  }, {
    onProgress: (p) => bar.update(p.step / p.total, { step: `${p.step}/${p.total}`, ...(p.loss !== undefined ? { loss: p.loss.toFixed(4) } : {}), ...(p.valLoss !== undefined ? { val: p.valLoss.toFixed(4) } : {}) }, p.step === p.total),
  });
  bar.done();
  if (values.json === true) return void console.log(JSON.stringify(o));
  console.log(summary(o));
}

function summary(o: GenerativeOutcome): string {
  return [
    `${o.method} (objective lm) on ${o.format} data: ${o.trainExamples} training and ${o.valExamples} held-out examples, ${o.steps} steps, ${o.trainingTokens.toLocaleString("en-US")} tokens`,
    `held-out before: ${scores(o.before)}`,
    `held-out after:  ${scores(o.after)}`,
    `trainable parameters ${o.trainableParameters.toLocaleString("en-US")} of ${o.totalParameters.toLocaleString("en-US")}, train ${o.trainSeconds.toFixed(1)}s`,
    o.out === null ? "no adapter written" : `adapter ${o.out} (${(o.adapterBytes / 1024).toFixed(1)} KiB); loss curve in the adapter's config and the progress above`,
  ].join("\n");
}

export function runGenerativeEval({ base, adapter, data, maxTest, json, weights = "fp32", parse }: { base: string; adapter?: string; data: string; maxTest: number; json: boolean; weights?: WeightFormat; parse?: Parser }): void {
  const { model, tok } = adapter !== undefined ? (() => { const a = loadAdapted(adapter, base); return { model: a.body, tok: a.tok }; })() : loadBase(base);
  if (weights !== "fp32") useInferenceWeights(model, weights);
  if (!can(model, "generate")) throw new UsageError(`--perplexity on chats needs a causal LM (gpt2) base`);
  const records = loadGenerativeData(data).records;
  const s = scoreGenerative(model as GPT, tok, chatTemplateFor(base), records, { maxTest, source: data, parse });
  const { replies, ...figures } = s;
  if (json) return void console.log(JSON.stringify({ model: adapter ?? base, data, ...figures, examplesMatched: replies.length }));
  console.log(`${adapter ?? base} on ${data}: ${scores(s)} (${replies.length} greedy replies)`);
}
