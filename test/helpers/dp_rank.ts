// One process of the data-parallel tests (test/distributed.test.ts): plain `node` runs it as a
// single process, `mpirun -np N` as N ranks. argv[2] is a JSON job; rank 0 writes the final
// weights to job.weightsOut; every rank prints one JSON line: its losses, a hash of its weights
// (ranks must agree bit for bit) and its communication statistics.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { MemoryTokens } from "../../src/data/tokens.js";
import { BertForMaskedLM, bertConfig } from "../../src/models/bert/index.js";
import { GPT, gptConfig } from "../../src/models/gpt/index.js";
import { launchedRank } from "../../src/native/mpi.js";
import { dataParallel, World, type DataParallel } from "../../src/train/parallel/index.js";
import { clm, languageModeling, mlm } from "../../src/train/language.js";
import { Trainer } from "../../src/train/trainer.js";

interface Job {
  objective: "clm" | "mlm";
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
// Real text as bytes: token ids 0..255, [MASK] = 256.
const text = readFileSync(createRequire(import.meta.url).resolve("typescript/lib/lib.es5.d.ts"));
const tokens = Int32Array.from(text.subarray(0, 60000));
const train = new MemoryTokens(tokens.subarray(0, 50000)), val = new MemoryTokens(tokens.subarray(50000));
const model = job.objective === "clm"
  ? new GPT(gptConfig({ vocab_size: 257, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 }), { seed: 3 })
  : new BertForMaskedLM(bertConfig({ vocab_size: 257, max_position_embeddings: 32, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64 }), { seed: 3 });
const task = job.objective === "clm" ? clm : mlm({ maskToken: 256, vocabSize: 257 });
const single = languageModeling(model, task, { train, val, batch: 8, ctx: 32, evalWindows: 8 });
const launched = launchedRank();
let dp: DataParallel | null = null;
if (launched !== null && launched.size > 1) dp = dataParallel(World.join(), { bucketMb: job.bucketMb ?? 0.02, shardOptimizer: job.shard });
if (job.slow) process.stdout.write(`pid ${process.pid} rank ${dp?.world.rank ?? 0}\n`);
const trainer = new Trainer({
  model, objective: dp === null ? single : dp.objective(single), parallel: dp?.attach, steps: job.steps, lr: 3e-3, warmup: 5, evalEvery: 1_000_000,
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
if (job.weightsOut !== undefined && (dp === null || dp.world.leader)) writeFileSync(job.weightsOut, weights);
process.stdout.write(JSON.stringify({
  rank: dp?.world.rank ?? 0, size: dp?.world.size ?? 1, losses: result.history.map((r) => r.loss), steps: result.steps,
  hash: createHash("sha256").update(weights).digest("hex"), stats: dp?.stats(), optimizerBytes: trainer.opt.stateBytes(),
}) + "\n");
