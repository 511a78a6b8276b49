// One process of the data-parallel tests (test/distributed.test.ts): plain `node` runs it as a
// single process, `mpirun -np N` as N ranks. argv[2] is a JSON job; rank 0 writes the final
// weights to job.weightsOut; every rank prints one JSON line: its losses, a hash of its weights
// (ranks must agree bit for bit) and its communication statistics. "contrastive" trains a tiny
// CLIP on synthetic picture-caption pairs (coloured shapes), its InfoNCE over the global batch.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { MemoryTokens } from "../../src/data/tokens.js";
import { CaptionEncoder, trainCaptionTokenizer } from "../../src/data/captions.js";
import type { PairDataset } from "../../src/data/pairs.js";
import { BertForMaskedLM, bertConfig } from "../../src/models/bert/index.js";
import { ClipModel, clipConfig } from "../../src/models/clip/index.js";
import { GPT, gptConfig } from "../../src/models/gpt/index.js";
import { launchedRank } from "../../src/native/mpi.js";
import { dataParallel, World, type DataParallel } from "../../src/train/parallel/index.js";
import { contrastive } from "../../src/train/contrastive.js";
import { sentenceEmbedding } from "../../src/train/embed.js";
import { clm, languageModeling, mlm } from "../../src/train/language.js";
import { Trainer, type Objective } from "../../src/train/trainer.js";
import { Rng } from "../../src/tensor/rng.js";

interface Job {
  objective: "clm" | "mlm" | "contrastive" | "embed";
  steps: number;
  shard?: boolean;
  bucketMb?: number;
  outDir?: string;
  checkpointEvery?: number;
  weightsOut?: string;
  /** Print the pid and slow each step down (the kill test). */
  slow?: boolean;
}

const job = JSON.parse(process.argv[2]) as Job;
const launched = launchedRank();
let dp: DataParallel | null = null;
if (launched !== null && launched.size > 1) dp = dataParallel(World.join(), { bucketMb: job.bucketMb ?? 0.02, shardOptimizer: job.shard });
if (job.slow) process.stdout.write(`pid ${process.pid} rank ${dp?.world.rank ?? 0}\n`);

/** 48 pictures of 16x16: a shape (square, bar, cross) in one of four colours on a noisy background, captioned by both. */
function shapes(): PairDataset {
  const S = 16, n = 3 * S * S, rng = new Rng(7);
  const colours: [string, number[]][] = [["red", [220, 30, 30]], ["green", [30, 200, 40]], ["blue", [30, 40, 220]], ["yellow", [230, 220, 30]]];
  const kinds = ["square", "bar", "cross"];
  const items: PairDataset["items"] = [], images = new Uint8Array(48 * n);
  for (let i = 0; i < 48; i++) {
    const [name, rgb] = colours[i % 4], kind = kinds[Math.floor(i / 4) % 3];
    const img = images.subarray(i * n, (i + 1) * n);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      const on = kind === "square" ? x > 3 && x < 12 && y > 3 && y < 12 : kind === "bar" ? y > 6 && y < 10 : x === 8 || y === 8 || x === 7 || y === 7;
      for (let c = 0; c < 3; c++) img[c * S * S + y * S + x] = on ? rgb[c] : Math.floor(rng.uniform() * 80);
    }
    items.push({ id: `shape-${i}`, captions: [`a ${name} ${kind}`, `${kind}, ${name}`], label: name });
  }
  return { name: "shapes", size: S, pixelsPer: n, items, images, labels: colours.map(([c]) => c), skipped: [] };
}

let model: GPT | BertForMaskedLM | ClipModel;
let objective: Objective<unknown>;
if (job.objective === "contrastive") {
  const train = shapes();
  const enc = new CaptionEncoder(trainCaptionTokenizer(train.items.flatMap((it) => it.captions), 300), 8);
  const clip = new ClipModel(clipConfig({
    projection_dim: 16,
    text_config: { vocab_size: enc.tokenizer.vocabSize, eos_token_id: enc.eos, pad_token_id: enc.pad, hidden_size: 32, intermediate_size: 64, max_position_embeddings: 8, num_hidden_layers: 2, num_attention_heads: 2 },
    vision_config: { hidden_size: 32, intermediate_size: 64, image_size: 16, patch_size: 8, num_hidden_layers: 2, num_attention_heads: 2 },
  }), { seed: 3 });
  model = clip;
  objective = contrastive(clip, { captions: enc, train, batch: 8, parallel: dp ?? undefined }) as Objective<unknown>;
} else {
  // Real text as bytes: token ids 0..255, [MASK] = 256.
  const text = readFileSync(createRequire(import.meta.url).resolve("typescript/lib/lib.es5.d.ts"));
  const tokens = Int32Array.from(text.subarray(0, 60000));
  const train = new MemoryTokens(tokens.subarray(0, 50000)), val = new MemoryTokens(tokens.subarray(50000));
  model = job.objective !== "mlm"
    ? new GPT(gptConfig({ vocab_size: 257, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 }), { seed: 3 })
    : new BertForMaskedLM(bertConfig({ vocab_size: 257, max_position_embeddings: 32, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64 }), { seed: 3 });
  const task = job.objective === "mlm" ? mlm({ maskToken: 256, vocabSize: 257 }) : clm;
  const single = languageModeling(model, task, { train, val, batch: 8, ctx: 32, evalWindows: 8 });
  objective = dp === null ? single as Objective<unknown> : dp.objective(single);
  // Sentence embeddings: InfoNCE between each span and the span after it (noiseless views), over the global batch.
  if (job.objective === "embed") objective = sentenceEmbedding(model as GPT, { train, val, batch: 8, span: 16, pooling: "mean", causal: true, padId: 0, views: "neighbours", parallel: dp ?? undefined }) as Objective<unknown>;
}
const trainer = new Trainer({
  model, objective, parallel: dp?.attach, steps: job.steps, lr: job.objective === "contrastive" || job.objective === "embed" ? 1e-3 : 3e-3, warmup: 5, evalEvery: 1_000_000,
  outDir: job.outDir, checkpointEvery: job.checkpointEvery ?? 1_000_000, keepLast: 100, quiet: true, seed: 11,
  onStep: job.slow ? () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100) : undefined,
});
trainer.resume();
const result = await trainer.run();
const weights = new Float32Array(model.parameters().reduce((n, p) => n + p.size, 0));
let at = 0;
for (const p of model.parameters()) {
  weights.set(p.data.subarray(0, p.size), at);
  at += p.size;
}
if (job.weightsOut !== undefined && (dp === null || dp.world.leader)) {
  writeFileSync(job.weightsOut, weights);
  // The parameters' names and sizes, in the weights' order (beside them: a line on stdout must stay short, or ranks' lines interleave).
  writeFileSync(`${job.weightsOut}.json`, JSON.stringify(model.namedParameters().map(([name, p]) => [name, p.size])));
}
process.stdout.write(JSON.stringify({
  rank: dp?.world.rank ?? 0, size: dp?.world.size ?? 1, losses: result.history.map((r) => r.loss), steps: result.steps,
  hash: createHash("sha256").update(weights).digest("hex"), stats: dp?.stats(), optimizerBytes: trainer.opt.stateBytes(),
}) + "\n");
