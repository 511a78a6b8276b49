/**
 * `plinth pretrain`: tokenizer (trained on the data unless given), corpus shards, model,
 * the trainer; resumes from the newest checkpoint in --out when there is one.
 * `plinth tokenizer train`: just the tokenizer.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { prepareCorpus, type PreparedCorpus } from "../data/prepare.js";
import { loadSources } from "../data/sources.js";
import { BPETextTokenizer, type TextTokenizer } from "../data/tokenizer.js";
import type { TokenSource } from "../data/tokens.js";
import { GPT, GPT_PRESETS, gptConfig, saveGPT } from "../models/gpt/index.js";
import { BPETokenizer, trainBPE } from "../tokenizer/index.js";
import { clm, mlm } from "../train/objectives.js";
import { BertForMaskedLM, BERT_PRESETS, bertConfig, saveBert } from "../models/bert/index.js";
import { formatSeconds } from "../train/progress.js";
import { Trainer, type TrainResult } from "../train/trainer.js";
import { UsageError, parseDuration, parseFloatArg, parseIntArg } from "./args.js";
import { runPretrainContrastive } from "./clip.js";

export const tokenizerHelp = `plinth tokenizer train — train a byte-level BPE tokenizer (Hugging Face tokenizer.json)

Usage: plinth tokenizer train --data <source>... [--vocab 4096] [--sample-mb 16] --out <tokenizer.json>

  --data       built-in source (moby-dick, sotu, spam-ham, wordnet, typescript, english, default),
               a file, a folder, a glob, or file.jsonl[:field]; repeatable
  --vocab      vocabulary size including 5 special tokens and 256 bytes (default 4096)
  --sample-mb  train merges on at most this much text, spread over the documents (default 16)

Examples:
  plinth tokenizer train --data default --vocab 8192 --out runs/tok/tokenizer.json
  plinth tokenizer train --data "src/**/*.ts" --out code-tokenizer.json`;

export const pretrainHelp = `plinth pretrain — self-supervised pretraining from raw text

Usage: plinth pretrain [--objective clm|mlm] [--size tiny|small|S|M] [--data <source>...]
                       [--time 10m | --tokens N | --steps N] [--out runs/<name>] [options]

  --objective   clm: causal LM (GPT, default); mlm: masked LM (BERT);
                contrastive: CLIP image–text (see plinth pretrain --objective contrastive --help)
  --size        model preset (default small)
  --data        sources as for 'plinth tokenizer train' (default: default)
  --time/--tokens/--steps   budget (default --time 10m)
  --out         run folder: tokenizer.json, data/ shards + manifest.json, checkpoints/,
                metrics.jsonl, loss.svg, and the final config.json + model.safetensors
  --tokenizer   an existing tokenizer.json (default: train one into the run folder)
  --vocab       vocabulary size when training the tokenizer (default 4096)
  --batch, --ctx, --lr, --warmup, --grad-accum, --eval-every, --checkpoint-every, --seed
Runs resume from the newest checkpoint in --out; SIGINT/SIGTERM save one and exit.

Examples:
  plinth pretrain --data moby-dick --size tiny --time 2m --out runs/moby
  plinth pretrain --data typescript --size small --tokens 5000000 --out runs/code
  plinth pretrain --objective mlm --data english --time 10m --out runs/bert`;

export function sampleTexts(texts: string[], maxChars: number): string[] {
  const total = texts.reduce((s, t) => s + t.length, 0);
  if (total <= maxChars) return texts;
  const keep = maxChars / total;
  return texts.map((t) => t.slice(0, Math.ceil(t.length * keep)));
}

export function runTokenizer(argv: string[]): void {
  const [sub, ...rest] = argv;
  if (sub === "--help" || sub === "-h" || sub === undefined) {
    console.log(tokenizerHelp);
    return;
  }
  if (sub !== "train") throw new UsageError(`unknown tokenizer command "${sub}" (expected: train)`);
  const { values } = parseArgs({ args: rest, options: { data: { type: "string", multiple: true }, vocab: { type: "string" }, "sample-mb": { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    console.log(tokenizerHelp);
    return;
  }
  if (values.out === undefined) throw new UsageError("--out is required");
  const t0 = performance.now();
  const tok = trainTokenizer(values.data ?? ["default"], parseIntArg("vocab", values.vocab, 4096, 1), parseFloatArg("sample-mb", values["sample-mb"], 16));
  const path = tok.save(values.out);
  console.log(`trained a ${tok.vocabSize}-token BPE vocabulary in ${formatSeconds((performance.now() - t0) / 1000)}; saved ${path}`);
}

export function trainTokenizer(specs: string[], vocab: number, sampleMb: number): BPETokenizer {
  const { docs } = loadSources(specs);
  return trainBPE(sampleTexts(docs.map((d) => d.text), sampleMb * 1e6), { vocabSize: vocab });
}

/** Unigram cross-entropy (nats/token) of val under train's add-one-smoothed token frequencies. */
export function unigramBaseline(train: TokenSource, val: TokenSource, vocab: number): number {
  const counts = new Float64Array(vocab).fill(1);
  const chunk = new Int32Array(1 << 20);
  const scan = (src: TokenSource, fn: (t: number) => void) => {
    for (let at = 0; at < src.length; at += chunk.length) {
      const n = Math.min(chunk.length, src.length - at);
      const view = chunk.subarray(0, n);
      src.read(at, view);
      for (const t of view) fn(t);
    }
  };
  scan(train, (t) => counts[t]++);
  const total = train.length + vocab;
  let nll = 0;
  scan(val, (t) => (nll -= Math.log(counts[t] / total)));
  return nll / val.length;
}

export interface PretrainRun {
  outDir: string;
  tokenizer: TextTokenizer;
  corpus: PreparedCorpus;
  model: GPT | BertForMaskedLM;
  result: TrainResult;
  unigram: number;
}

export interface PretrainOptions {
  objective: "clm" | "mlm";
  size: string;
  data: string[];
  outDir: string;
  seconds?: number;
  tokens?: number;
  steps?: number;
  tokenizerPath?: string;
  vocab: number;
  batch: number;
  ctx?: number;
  lr: number;
  warmup: number;
  gradAccum: number;
  evalEvery: number;
  checkpointEvery: number;
  seed: number;
  quiet?: boolean;
}

export async function pretrain(o: PretrainOptions): Promise<PretrainRun> {
  const outDir = resolve(o.outDir);
  mkdirSync(outDir, { recursive: true });
  const tokPath = o.tokenizerPath ?? join(outDir, "tokenizer.json");
  let bpe: BPETokenizer;
  if (existsSync(tokPath)) {
    bpe = BPETokenizer.load(tokPath);
    if (!o.quiet) console.log(`tokenizer: ${tokPath} (${bpe.vocabSize} tokens)`);
  } else {
    const t0 = performance.now();
    bpe = trainTokenizer(o.data, o.vocab, 16);
    bpe.save(tokPath);
    if (!o.quiet) console.log(`tokenizer: trained ${bpe.vocabSize} tokens in ${formatSeconds((performance.now() - t0) / 1000)} -> ${tokPath}`);
  }
  if (o.tokenizerPath !== undefined && resolve(o.tokenizerPath) !== join(outDir, "tokenizer.json")) bpe.save(join(outDir, "tokenizer.json"));
  const tokenizer = new BPETextTokenizer(bpe);
  const t1 = performance.now();
  const corpus = prepareCorpus({ specs: o.data, tokenizer, outDir: join(outDir, "data") });
  const m = corpus.manifest;
  if (!o.quiet) {
    console.log(`corpus: ${m.documents.toLocaleString("en-US")} documents (${m.duplicatesDropped} duplicates dropped) -> ${m.train.tokens.toLocaleString("en-US")} train / ${m.val.tokens.toLocaleString("en-US")} validation tokens, ${corpus.bytesPerToken.toFixed(2)} bytes/token${corpus.reused ? " (reused)" : ` in ${formatSeconds((performance.now() - t1) / 1000)}`}`);
  }
  const presets: Record<string, unknown> = o.objective === "clm" ? GPT_PRESETS : BERT_PRESETS;
  if (presets[o.size] === undefined) throw new UsageError(`unknown --size "${o.size}" for ${o.objective} (expected ${Object.keys(presets).join(", ")})`);
  let model: GPT | BertForMaskedLM;
  let ctx: number;
  let describe: string;
  const specials = bpe.addedTokens.map((t) => t.id);
  if (o.objective === "clm") {
    const preset = GPT_PRESETS[o.size];
    ctx = o.ctx ?? preset.n_positions!;
    const config = gptConfig({ vocab_size: tokenizer.vocabSize, bos_token_id: tokenizer.eot, eos_token_id: tokenizer.eot, ...preset, n_positions: Math.max(ctx, preset.n_positions ?? ctx) });
    model = new GPT(config, { seed: o.seed });
    describe = `GPT ${o.size}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters (${config.n_layer} layers, d=${config.n_embd}, ${config.n_head} heads, context ${ctx})`;
  } else {
    const preset = BERT_PRESETS[o.size];
    ctx = o.ctx ?? preset.max_position_embeddings!;
    const pad = tokenizer.special("[PAD]");
    const config = bertConfig({ vocab_size: tokenizer.vocabSize, ...preset, max_position_embeddings: Math.max(ctx, preset.max_position_embeddings ?? ctx), ...(pad !== undefined ? { pad_token_id: pad } : {}) });
    model = new BertForMaskedLM(config, { seed: o.seed });
    describe = `BERT ${o.size}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters (${config.num_hidden_layers} layers, d=${config.hidden_size}, ${config.num_attention_heads} heads, context ${ctx})`;
  }
  const maskToken = tokenizer.special("[MASK]");
  if (o.objective === "mlm" && maskToken === undefined) throw new Error("--objective mlm: the tokenizer has no [MASK] token");
  const objective = o.objective === "clm" ? clm : mlm({ maskToken: maskToken!, vocabSize: tokenizer.vocabSize, specialIds: specials });
  const trainer = new Trainer({
    model, objective, train: corpus.train, val: corpus.val, outDir, batch: o.batch, ctx, gradAccum: o.gradAccum, lr: o.lr, warmup: o.warmup,
    seconds: o.seconds, tokens: o.tokens, steps: o.steps, evalEvery: o.evalEvery, checkpointEvery: o.checkpointEvery, seed: o.seed,
    bytesPerToken: o.objective === "clm" ? corpus.bytesPerToken : undefined, quiet: o.quiet, evalWindows: 64,
  });
  const resumed = trainer.resume();
  if (!o.quiet) {
    console.log(`model: ${describe}, batch ${o.batch}x${o.gradAccum}`);
    if (resumed !== null) console.log(`resuming from the checkpoint at step ${resumed}`);
  }
  const result = await trainer.run();
  if (model instanceof GPT) saveGPT(outDir, model, { objective: "clm", tokenizer: m.tokenizer.fingerprint });
  else saveBert(outDir, model, { objective: "mlm", tokenizer: m.tokenizer.fingerprint });
  const unigram = unigramBaseline(corpus.train, corpus.val, tokenizer.vocabSize);
  writeFileSync(join(outDir, "summary.json"), JSON.stringify({
    objective: o.objective, size: o.size, params: model.numParameters(), steps: result.steps, tokens: result.tokens, seconds: Math.round(result.seconds),
    valLoss: result.valLoss, valPerplexity: Math.exp(result.valLoss), valBitsPerByte: result.valLoss / Math.LN2 / corpus.bytesPerToken,
    unigramLoss: unigram, unigramPerplexity: Math.exp(unigram), unigramBitsPerByte: unigram / Math.LN2 / corpus.bytesPerToken, data: o.data,
  }, null, 2) + "\n");
  return { outDir, tokenizer, corpus, model, result, unigram };
}

export function printReport(run: PretrainRun): void {
  const { result, unigram, corpus } = run;
  const bpt = corpus.bytesPerToken;
  console.log("");
  console.log(`trained on ${result.tokens.toLocaleString("en-US")} tokens in ${formatSeconds(result.seconds)} (${result.steps} steps${result.stoppedBy === "signal" ? ", interrupted" : ""})`);
  if (run.model instanceof BertForMaskedLM) {
    console.log(`validation  masked-token loss ${result.valLoss.toFixed(3)} nats · perplexity ${Math.exp(result.valLoss).toFixed(1)}`);
    console.log(`unigram     loss ${unigram.toFixed(3)} nats/token · perplexity ${Math.exp(unigram).toFixed(1)}`);
    return;
  }
  console.log(`validation  loss ${result.valLoss.toFixed(3)} nats/token · perplexity ${Math.exp(result.valLoss).toFixed(1)} · ${(result.valLoss / Math.LN2 / bpt).toFixed(3)} bits/byte`);
  console.log(`unigram     loss ${unigram.toFixed(3)} nats/token · perplexity ${Math.exp(unigram).toFixed(1)} · ${(unigram / Math.LN2 / bpt).toFixed(3)} bits/byte`);
}

export async function runPretrain(argv: string[]): Promise<void> {
  const at = argv.findIndex((a) => a === "--objective" || a.startsWith("--objective="));
  const objectiveArg = at < 0 ? undefined : argv[at].includes("=") ? argv[at].split("=")[1] : argv[at + 1];
  if (objectiveArg === "contrastive") return runPretrainContrastive(argv);
  const { values } = parseArgs({
    args: argv,
    options: {
      objective: { type: "string" }, size: { type: "string" }, data: { type: "string", multiple: true }, time: { type: "string" }, tokens: { type: "string" },
      steps: { type: "string" }, out: { type: "string" }, tokenizer: { type: "string" }, vocab: { type: "string" }, batch: { type: "string" }, ctx: { type: "string" },
      lr: { type: "string" }, warmup: { type: "string" }, "grad-accum": { type: "string" }, "eval-every": { type: "string" }, "checkpoint-every": { type: "string" },
      seed: { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(pretrainHelp);
    return;
  }
  const objective = values.objective ?? "clm";
  if (objective !== "clm" && objective !== "mlm") throw new UsageError(`--objective must be clm, mlm or contrastive, got "${objective}"`);
  const budget = { seconds: values.time ? parseDuration(values.time) : undefined, tokens: values.tokens ? parseIntArg("tokens", values.tokens, 0, 1) : undefined, steps: values.steps ? parseIntArg("steps", values.steps, 0, 1) : undefined };
  if (budget.seconds === undefined && budget.tokens === undefined && budget.steps === undefined) budget.seconds = 600;
  const run = await pretrain({
    objective, size: values.size ?? "small", data: values.data ?? ["default"], outDir: values.out ?? `runs/${objective}`, ...budget,
    tokenizerPath: values.tokenizer, vocab: parseIntArg("vocab", values.vocab, 4096, 261), batch: parseIntArg("batch", values.batch, 16, 1),
    ctx: values.ctx ? parseIntArg("ctx", values.ctx, 0, 1) : undefined, lr: parseFloatArg("lr", values.lr, 1e-3), warmup: parseIntArg("warmup", values.warmup, 100),
    gradAccum: parseIntArg("grad-accum", values["grad-accum"], 1, 1), evalEvery: parseIntArg("eval-every", values["eval-every"], 200, 1),
    checkpointEvery: parseIntArg("checkpoint-every", values["checkpoint-every"], 200, 1), seed: parseIntArg("seed", values.seed, 1234),
  });
  printReport(run);
  console.log(`saved ${run.outDir}: config.json, model.safetensors, tokenizer.json, checkpoints/, metrics.jsonl, loss.svg`);
}
