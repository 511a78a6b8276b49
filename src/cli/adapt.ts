/** `plinth adapt` (one adaptation, one adapter) and `plinth eval` (k-shot curves, or one adapter's scores). */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ADAPT_METHODS, type AdaptMethod, type AdaptOutcome, type AdaptSpec, runAdaptation } from "../adapt/run.js";
import { startAdaptationWorker } from "../adapt/worker.js";
import { loadAdapted } from "../adapt/apply.js";
import { loadBase } from "../adapt/base.js";
import { resolveTask } from "../tasks/resolve.js";
import { isGenerativeJsonl } from "../tasks/chat.js";
import { perplexity } from "../eval/perplexity.js";
import { PARSERS } from "../tasks/code_parse.js";
import { existsSync, readFileSync } from "node:fs";
import { readAdapterManifest } from "../adapt/artifact.js";
import { type Shots, kShotCurve } from "../eval/harness.js";
import { accuracy, argmax, expectedCalibrationError, macroF1 } from "../tasks/metrics.js";
import { exampleText, labelIndex } from "../tasks/task.js";
import { writeCurve, curveTable } from "../eval/report.js";
import { Progress } from "../train/progress.js";
import { launchedRank } from "../native/mpi.js";
import { runRanks } from "./procs.js";
import { runGenerativeAdapt, runGenerativeEval } from "./generative.js";
import { parseCurveMethods, runSuiteEval, suiteHelp } from "./suite.js";
import { UsageError, checkModelDir, checkWritableDir, oneOf, optionalInt, parseFloatArg, parseIntArg } from "./args.js";
import { WEIGHT_FORMATS, useInferenceWeights } from "../models/inference_weights.js";

export const adaptHelp = `plinth adapt — adapt a base to a labeled task; writes an adapter bound to the base

Usage: plinth adapt --base <dir> --task <name|file> --method <${ADAPT_METHODS.filter((m) => m !== "scratch").join("|")}> [options]
       plinth adapt --base <dir> --objective lm --method <lora|full> --data <chats.jsonl|text files, folder or glob> [options]

  --base        base model folder (config.json, model.safetensors, tokenizer.json), e.g. runs/default
  --task        built-in task (sentiment, spam, sotu-party) or a JSONL/CSV file of {text,label} or {text_a,text_b,label}
  --test        separate test file for a file task (default: a stratified 20% of --task is held out)
  --method      zero-shot | few-shot | probe | prototype | knn | setfit | head | full | lora
                prototype, knn: cosine nearest class mean / k nearest labeled examples on the frozen
                embeddings (no training); setfit: the body tuned on pairs of the labels (same label
                close, different labels apart), then a logistic head on its embeddings
  --k           labeled examples per class (default: all of the training split)
  --out         adapter folder (default runs/adapters/<task>-<method>)
  --seed        picks the k examples and seeds training (default 0)
  --steps, --lr, --batch-size, --max-tokens   training options (defaults depend on the method)
  --rank, --alpha, --lora-dropout, --targets  LoRA options (default rank 3, alpha 6, dropout 0.05,
                targets c_attn,c_proj,c_fc on GPT; query,key,value,output.dense,intermediate.dense on BERT)
  --pairs, --batch-pairs   setfit: pairs drawn in all (default 20 per labeled example, 160 to 960)
                and per step (default 16); with --rank/--alpha setfit tunes LoRA factors, not every weight
  --knn-k       knn: neighbours that vote (default: chosen by leave-one-out on the labels)
  --max-test    score at most this many test examples
  --worker      run in a worker process (progress still shows here)
  --procs N     full: data-parallel over N processes on this machine (runs mpirun; needs Open MPI; under
                mpirun/srun the ranks are found on their own); --batch-size is the global batch, a multiple of N
  --objective lm   generative fine-tuning: causal-LM loss on assistant (or completion) tokens only, short
                examples packed into rows of the base's context; --data is a chat {"messages": [...]} or
                {"prompt","completion"} .jsonl, or plain text for continued pretraining ("src/**/*.ts");
                --epochs (default 3), --val-fraction (default 0.1), --validation <file>, --ctx <tokens>;
                default lr 2e-3 (lora, rank 8) or 3e-4 (full); prints held-out loss before and after;
                --role-tokens: the chat template's role markers become tokens of their own, with rows
                the adapter trains (LoRA: saved beside the factors; full: part of the weights)

Examples:
  plinth adapt --base runs/default --task sentiment --method lora --k 32
  plinth adapt --base runs/default --task reviews.jsonl --method probe
  plinth adapt --base runs/small --method lora --objective lm --data chats.jsonl --out runs/chat-lora`;

export const evalHelp = `plinth eval — k-shot curves with confidence intervals, or the scores of one adapter

Usage: plinth eval --base <dir> --task <name|file> [--methods probe,lora,full,scratch] [--k 0,1,2,4,8,16,32,64,all] [--seeds 3] [--out dir]
       plinth eval --base <dir> --suite <core|quick> [--methods auto,probe,scratch] [--k 8,16] [--seeds 3] [--out dir]
       plinth eval --base <dir> --adapter <dir> [--task <name|file>]
       plinth eval --base <dir> [--adapter <dir>] --perplexity <task|file.txt>

  --methods   among ${ADAPT_METHODS.join(", ")} (scratch = same architecture trained from random init: the baseline),
              and auto (a method picked per task, k and seed by cross-validation on the k labels alone)
${suiteHelp}
  --k         labels per class; zero-shot runs at k=0, the others at k>=1 and "all"
  --seeds     runs per (method, k), each with other labeled examples (default 3)
  --max-test  score at most this many test examples (default 400)
  --out       where curve.json, curve.svg and table.md go (default runs/eval/<task>)
  --workers   run every adaptation in its own worker process (clean memory figures)
  --weights     fp32 (default), bf16 or int8 matrices for --perplexity (the inference weights of generate)
  --parse typescript  with --perplexity on a .jsonl: the share of greedy replies TypeScript's parser
              accepts (a completion after its prompt, a chat reply alone), for code
  --perplexity  perplexity and bits per byte of the (adapted) causal LM on a task's test texts or a text file;
              on a chat or prompt/completion .jsonl: held-out loss and perplexity on the assistant tokens, and
              exact match and string similarity of greedy replies against the references (--json: one JSON object)

Examples:
  plinth eval --base runs/default --task sentiment --methods zero-shot,probe,lora,scratch --k 0,4,32 --seeds 3
  plinth eval --base runs/default --adapter runs/adapters/sentiment-lora
  plinth eval --base runs/default --adapter runs/adapters/sentiment-full --perplexity sentiment`;

function common(values: Record<string, string | boolean | undefined>): Partial<AdaptSpec> {
  const str = (k: string): string | undefined => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const spec: Partial<AdaptSpec> = {};
  if (str("steps") !== undefined) spec.steps = parseIntArg("steps", str("steps"), 0, 1);
  if (str("lr") !== undefined) spec.lr = parseFloatArg("lr", str("lr"), 0);
  if (str("batch-size") !== undefined) spec.batchSize = parseIntArg("batch-size", str("batch-size"), 16, 1);
  if (str("max-tokens") !== undefined) spec.maxTokens = parseIntArg("max-tokens", str("max-tokens"), 128, 1);
  if (str("test") !== undefined) spec.testFile = str("test");
  const lora = {
    rank: str("rank") === undefined ? undefined : parseIntArg("rank", str("rank"), 4, 1),
    alpha: str("alpha") === undefined ? undefined : parseFloatArg("alpha", str("alpha"), 8),
    dropout: str("lora-dropout") === undefined ? undefined : parseFloatArg("lora-dropout", str("lora-dropout"), 0.05),
    targets: str("targets")?.split(",").map((s) => s.trim()).filter((s) => s !== ""),
  };
  if (Object.values(lora).some((v) => v !== undefined)) spec.lora = lora;
  // setfit tunes every body weight unless a LoRA rank or alpha is given (the same rule as a server job's hyperparameters).
  const setfit = {
    pairs: str("pairs") === undefined ? undefined : parseIntArg("pairs", str("pairs"), 160, 1),
    batchPairs: str("batch-pairs") === undefined ? undefined : parseIntArg("batch-pairs", str("batch-pairs"), 16, 1),
    rank: lora.rank, alpha: lora.alpha,
  };
  if (Object.values(setfit).some((v) => v !== undefined)) spec.setfit = setfit;
  if (str("knn-k") !== undefined) spec.knnK = parseIntArg("knn-k", str("knn-k"), 1, 1);
  return spec;
}

const OPTIONS = {
  base: { type: "string" }, task: { type: "string" }, test: { type: "string" }, method: { type: "string" }, k: { type: "string" },
  out: { type: "string" }, seed: { type: "string" }, steps: { type: "string" }, lr: { type: "string" }, "batch-size": { type: "string" },
  "max-tokens": { type: "string" }, rank: { type: "string" }, alpha: { type: "string" }, "lora-dropout": { type: "string" }, targets: { type: "string" },
  "max-test": { type: "string" }, pairs: { type: "string" }, "batch-pairs": { type: "string" }, "knn-k": { type: "string" }, worker: { type: "boolean" }, help: { type: "boolean", short: "h" },
  objective: { type: "string" }, "role-tokens": { type: "boolean" }, data: { type: "string" }, epochs: { type: "string" }, "val-fraction": { type: "string" }, validation: { type: "string" }, ctx: { type: "string" },
  json: { type: "boolean" },
} as const;

function parseShots(text: string): Shots {
  if (text === "all") return "all";
  const v = Number(text);
  if (!Number.isInteger(v) || v < 0) throw new UsageError(`--k values must be non-negative integers or "all", got "${text}"`);
  return v;
}

function parseMethod(text: string): AdaptMethod {
  if (!(ADAPT_METHODS as readonly string[]).includes(text)) throw new UsageError(`unknown method "${text}"; methods are ${ADAPT_METHODS.join(", ")}`);
  return text as AdaptMethod;
}

const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;

function summary(r: AdaptOutcome): string {
  return [
    `${r.method} on ${r.task}: accuracy ${pct(r.metrics.accuracy)}, macro-F1 ${pct(r.metrics.macroF1)}, ECE ${r.metrics.ece.toFixed(3)} on ${r.testExamples} test examples (${r.trainExamples} labeled)`,
    `trainable parameters ${r.trainableParameters.toLocaleString("en-US")} of ${r.totalParameters.toLocaleString("en-US")} (${pct(r.trainableParameters / r.totalParameters)}), train ${r.trainSeconds.toFixed(1)}s, peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
    r.out === null ? "no adapter written" : `adapter ${r.out} (${(r.adapterBytes / 1024).toFixed(1)} KiB)`,
  ].join("\n");
}

export async function runAdapt(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { ...OPTIONS, procs: { type: "string" } } });
  if (values.help) return void console.log(adaptHelp);
  if (values.base === undefined) throw new UsageError("--base is required (a model folder, e.g. runs/default from npm start)");
  if (values.objective !== undefined) return runGenerativeAdapt(values);
  if (values.task === undefined) throw new UsageError("--task is required (sentiment, spam, sotu-party, or a JSONL/CSV file)");
  if (values.method === undefined) throw new UsageError("--method is required");
  const method = parseMethod(values.method);
  if (method === "scratch") throw new UsageError("scratch is the evaluation baseline, not an adaptation of a base; use it in plinth eval --methods");
  checkModelDir("base", values.base);
  if (values.out !== undefined) checkWritableDir("out", values.out);
  const spec: AdaptSpec = {
    ...common(values), base: values.base, task: values.task, method,
    labelsPerClass: values.k === undefined ? "all" : parseShots(values.k),
    seed: parseIntArg("seed", values.seed, 0),
    maxTest: values["max-test"] === undefined ? undefined : parseIntArg("max-test", values["max-test"], 0, 1),
    out: values.out ?? join("runs", "adapters", `${values.task.replace(/.*[\\/]/, "").replace(/\.\w+$/, "")}-${method}`),
  };
  const procs = optionalInt("procs", values.procs, 1);
  if (procs !== undefined && procs > 1 && launchedRank() === null) {
    if (method !== "full") throw new UsageError(`--procs: only --method full runs data-parallel, not ${method}`);
    if (values.worker) throw new UsageError("--procs and --worker do not go together (each rank is its own process)");
    const batch = parseIntArg("batch-size", values["batch-size"], 16, 1);
    await runRanks(procs, "adapt", argv, { flag: "batch-size", value: batch });
    return;
  }
  const rank = launchedRank();
  if (rank !== null && rank.size > 1 && rank.rank !== 0) {
    await runAdaptation(spec); // a rank other than 0 trains its rows quietly; rank 0 reports and saves
    return;
  }
  const bar = new Progress(`adapt ${method}`);
  const onProgress = (p: { step: number; total: number; loss?: number; elapsedSeconds: number }): void =>
    bar.update(p.step / p.total, { step: `${p.step}/${p.total}`, ...(p.loss !== undefined ? { loss: p.loss.toFixed(4) } : {}), rate: `${(p.step / Math.max(p.elapsedSeconds, 1e-3)).toFixed(1)} steps/s` }, p.step === p.total);
  const outcome = values.worker ? await startAdaptationWorker(spec, { onProgress }).result : await runAdaptation(spec, { onProgress });
  bar.done();
  console.log(summary(outcome));
}

export async function runEval(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...OPTIONS, methods: { type: "string" }, seeds: { type: "string" }, adapter: { type: "string" }, workers: { type: "boolean" }, perplexity: { type: "string" }, suite: { type: "string" }, "auto-candidates": { type: "string" }, weights: { type: "string" }, parse: { type: "string" } },
  });
  if (values.help) return void console.log(evalHelp);
  const parse = values.parse === undefined ? undefined : oneOf("parse", values.parse, PARSERS);
  if (parse !== undefined && values.perplexity === undefined) throw new UsageError("--parse applies to --perplexity on a chat or prompt/completion .jsonl (the parse rate of greedy replies)");
  const weights = oneOf("weights", values.weights ?? "fp32", WEIGHT_FORMATS);
  if (weights !== "fp32" && values.perplexity === undefined) throw new UsageError("--weights applies to --perplexity (the other evaluations train)");
  if (values.base === undefined) throw new UsageError("--base is required (a model folder, e.g. runs/default from npm start)");
  checkModelDir("base", values.base);
  const maxTest = parseIntArg("max-test", values["max-test"], 400, 1);
  if (values.perplexity !== undefined && /\.jsonl$/i.test(values.perplexity) && existsSync(values.perplexity) && isGenerativeJsonl(readFileSync(values.perplexity, "utf8"))) {
    return runGenerativeEval({ base: values.base, adapter: values.adapter, data: values.perplexity, maxTest, json: values.json ?? false, weights, parse });
  }
  if (parse !== undefined) throw new UsageError("--parse needs --perplexity with a chat or prompt/completion .jsonl (greedy replies to parse)");
  if (values.perplexity !== undefined) {
    const source = values.perplexity;
    const texts = existsSync(source) && !/\.(jsonl|csv)$/.test(source) ? [readFileSync(source, "utf8")] : resolveTask(source).test.map((e) => exampleText(e));
    const { model, tok } = values.adapter !== undefined ? (() => { const a = loadAdapted(values.adapter!, values.base!); return { model: a.body, tok: a.tok }; })() : loadBase(values.base);
    if (weights !== "fp32") useInferenceWeights(model, weights);
    const p = perplexity(model, tok, texts);
    console.log(`${values.adapter ?? values.base} on ${source}: loss ${p.loss.toFixed(3)} nats/token, perplexity ${p.perplexity.toFixed(2)}, ${p.bitsPerByte.toFixed(3)} bits/byte over ${p.tokens.toLocaleString("en-US")} tokens`);
    return;
  }
  if (values.adapter !== undefined) {
    const manifest = readAdapterManifest(values.adapter);
    const task = resolveTask(values.task ?? manifest.task, { seed: 0, test: values.test, labels: manifest.labels });
    const adapted = loadAdapted(values.adapter, values.base);
    const test = task.test.slice(0, maxTest);
    const probs = adapted.predict(test.map((e) => exampleText(e)));
    const gold = test.map((e) => labelIndex(task, e.label)), pred = probs.map(argmax);
    console.log(`${values.adapter} (${manifest.method}) on ${task.name}: accuracy ${pct(accuracy(pred, gold))}, macro-F1 ${pct(macroF1(pred, gold, task.labels.length))}, ECE ${expectedCalibrationError(probs, gold).toFixed(3)} on ${test.length} test examples`);
    return;
  }
  if (values.suite !== undefined) return runSuiteEval(values, common(values), maxTest);
  if (values.task === undefined) throw new UsageError("--task is required (sentiment, spam, sotu-party, a suite task, or a JSONL/CSV file); or --suite <name>");
  const { methods, autoCandidates } = parseCurveMethods(values.methods ?? "zero-shot,probe,head,lora,full,scratch", values["auto-candidates"]);
  const ks = (values.k ?? "0,1,2,4,8,16,32,64,all").split(",").map((k) => parseShots(k.trim()));
  const seeds = parseIntArg("seeds", values.seeds, 3, 1);
  const out = values.out ?? join("runs", "eval", values.task.replace(/.*[\\/]/, "").replace(/\.\w+$/, ""));
  const bar = new Progress(`eval ${values.task}`);
  let done = 0, total = 1, current = "";
  const curve = await kShotCurve({
    base: values.base, task: values.task, methods, ks, seeds, maxTest, workers: values.workers ?? false, overrides: common(values), autoCandidates,
    onRun: (d, t, r, label) => {
      done = d;
      total = t;
      bar.update(d / t, { run: `${d}/${t}`, last: `${label}: ${r === null ? "-" : pct(r.metrics.accuracy)}` }, d === t);
    },
    onProgress: (label, p) => {
      current = label;
      bar.update((done + p.step / p.total) / total, { run: `${done + 1}/${total}`, now: current });
    },
  });
  bar.done();
  const paths = writeCurve(out, curve);
  console.log(curveTable(curve));
  console.log(`wrote ${paths.table}, ${paths.svg} and ${paths.json} (${curve.runs.length} runs in ${curve.seconds.toFixed(0)}s)`);
}
