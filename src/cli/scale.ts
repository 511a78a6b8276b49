/**
 * `plinth scale`: a scaling study. Trains a ladder of GPT sizes on the same data and the
 * same token budget, fits L(N) = a·N^(−α) + c to validation loss against non-embedding
 * parameters, and writes scaling.json and scaling.svg.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { prepareCorpus } from "../data/prepare.js";
import { BPETextTokenizer } from "../data/tokenizer.js";
import { GPT, gptConfig } from "../models/gpt/index.js";
import { BPETokenizer } from "../tokenizer/index.js";
import { existsSync } from "node:fs";
import { clm, languageModeling } from "../train/language.js";
import { formatSeconds } from "../train/progress.js";
import { fitPowerLaw, scalingChartSvg } from "../train/scaling.js";
import { Trainer } from "../train/trainer.js";
import { UsageError, parseIntArg } from "./args.js";
import { trainTokenizer } from "./pretrain.js";

export const scaleHelp = `plinth scale — train a ladder of model sizes and fit a scaling law

Usage: plinth scale [--data <source>...] [--tokens 2000000] [--sizes 32x2,64x2,96x3,128x4,192x4] [--ctx 128] [--out runs/scale]

  --sizes   comma-separated d_model x layers (heads = d_model / 32, at least 1); at least 4
  --tokens  training tokens for every size (the same budget)
Writes <out>/scaling.json (points and fit) and <out>/scaling.svg (points with the fitted curve).

Examples:
  plinth scale --data moby-dick --tokens 1000000
  plinth scale --data default --sizes 64x2,128x2,128x4,256x4 --tokens 4000000`;

export async function runScale(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { data: { type: "string", multiple: true }, tokens: { type: "string" }, sizes: { type: "string" }, ctx: { type: "string" }, out: { type: "string" }, vocab: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(scaleHelp);
    return;
  }
  const sizes = (values.sizes ?? "32x2,64x2,96x3,128x4,192x4").split(",").map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (m === null) throw new UsageError(`--sizes: "${s}" is not <d_model>x<layers>`);
    return { d: Number(m[1]), layers: Number(m[2]) };
  });
  if (sizes.length < 4) throw new UsageError(`--sizes: a scaling study needs at least 4 sizes, got ${sizes.length}`);
  const tokens = parseIntArg("tokens", values.tokens, 2_000_000, 1);
  const ctx = parseIntArg("ctx", values.ctx, 128, 8);
  const data = values.data ?? ["english"];
  const outDir = resolve(values.out ?? "runs/scale");
  mkdirSync(outDir, { recursive: true });
  const tokPath = join(outDir, "tokenizer.json");
  const bpe = existsSync(tokPath) ? BPETokenizer.load(tokPath) : await trainTokenizer(data, parseIntArg("vocab", values.vocab, 2048, 261), 16);
  bpe.save(tokPath);
  const tokenizer = new BPETextTokenizer(bpe);
  const corpus = await prepareCorpus({ specs: data, tokenizer, outDir: join(outDir, "data") });
  const points: { name: string; n: number; params: number; loss: number; seconds: number }[] = [];
  for (const { d, layers } of sizes) {
    const name = `d${d}-l${layers}`;
    const config = gptConfig({ vocab_size: tokenizer.vocabSize, n_embd: d, n_layer: layers, n_head: Math.max(1, Math.round(d / 32)), n_positions: ctx });
    const model = new GPT(config, { seed: 1 });
    const embedding = (config.vocab_size + config.n_positions) * d;
    const n = model.numParameters() - embedding;
    console.log(`\n${name}: ${n.toLocaleString("en-US")} non-embedding parameters`);
    const objective = languageModeling(model, clm, { train: corpus.train, val: corpus.val, batch: 16, ctx, evalWindows: 128, bytesPerToken: corpus.bytesPerToken });
    const trainer = new Trainer({ model, objective, outDir: join(outDir, name), tokens, lr: Math.min(3e-3, 0.2 / d), warmup: 50, evalEvery: 1e9, checkpointEvery: 1e9, label: "pretrain" });
    trainer.resume();
    const r = await trainer.run();
    points.push({ name, n, params: model.numParameters(), loss: r.valLoss, seconds: Math.round(r.seconds) });
    console.log(`${name}: validation loss ${r.valLoss.toFixed(4)} after ${r.seen.toLocaleString("en-US")} tokens in ${formatSeconds(r.seconds)}`);
  }
  const fit = fitPowerLaw(points.map((p) => ({ n: p.n, loss: p.loss })));
  writeFileSync(join(outDir, "scaling.json"), JSON.stringify({ data, tokens, ctx, points, fit }, null, 2) + "\n");
  writeFileSync(join(outDir, "scaling.svg"), scalingChartSvg(points, fit));
  console.log(`\nL(N) = ${fit.a.toPrecision(4)} · N^(-${fit.alpha.toFixed(4)}) + ${fit.c.toFixed(4)}   (rmse ${fit.rmse.toFixed(4)})`);
  for (const p of points) console.log(`  ${p.name.padEnd(10)} N=${String(p.n).padStart(9)}  loss ${p.loss.toFixed(4)}  fit ${(fit.a * p.n ** -fit.alpha + fit.c).toFixed(4)}`);
  console.log(`wrote ${join(outDir, "scaling.json")} and ${join(outDir, "scaling.svg")}`);
}
