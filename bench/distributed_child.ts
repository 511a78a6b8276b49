// A rank of bench/distributed.ts (and scripts/two-hosts.sh). argv[2] is a JSON job:
//   {"mode":"train","config":"S","steps":8}  GPT training steps on random tokens; rank 0 prints tokens/s
//   {"mode":"allreduce","sizes":[...bytes]}  timed in-place all-reduces; rank 0 prints the median seconds per size
// Plain `node` runs one process; under mpirun every rank joins the data-parallel world.
import { MemoryTokens } from "../src/data/tokens.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { backend } from "../src/native/index.js";
import { launchedRank } from "../src/native/mpi.js";
import { dataParallel, World, type DataParallel } from "../src/train/parallel/index.js";
import { clm, languageModeling } from "../src/train/language.js";
import { Rng } from "../src/tensor/index.js";
import { Trainer } from "../src/train/trainer.js";

export const CONFIGS: Record<string, { vocab: number; d: number; layers: number; heads: number; ctx: number; batch: number }> = {
  S: { vocab: 4096, d: 256, layers: 4, heads: 4, ctx: 128, batch: 16 },
  M: { vocab: 8192, d: 512, layers: 8, heads: 8, ctx: 256, batch: 8 },
};

const job = JSON.parse(process.argv[2] ?? "{}") as { mode: string; config?: string; steps?: number; sizes?: number[]; bucketMb?: number; shard?: boolean };
const launched = launchedRank();
const world = launched !== null && launched.size > 1 ? World.join() : null;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];

if (job.mode === "allreduce") {
  if (world === null) throw new Error("allreduce mode needs mpirun");
  const rows: { bytes: number; seconds: number }[] = [];
  for (const bytes of job.sizes ?? []) {
    const buf = new Float32Array(bytes / 4).fill(1);
    const reps = bytes <= 1 << 20 ? 30 : 8;
    const times: number[] = [];
    for (let i = -2; i < reps; i++) {
      await world.done(world.mpi.barrier(), "barrier");
      const t = world.mpi.now();
      await world.done(world.mpi.allreduce(buf), "allreduce");
      if (i >= 0) times.push(world.mpi.now() - t);
    }
    rows.push({ bytes, seconds: median(times) });
  }
  if (world.leader) process.stdout.write(JSON.stringify({ mode: "allreduce", ranks: world.size, rows }) + "\n");
} else {
  const c = CONFIGS[job.config ?? "S"];
  const rng = new Rng(5);
  const tokens = Int32Array.from({ length: 200_000 }, () => rng.int(c.vocab));
  const model = new GPT(gptConfig({ vocab_size: c.vocab, n_positions: c.ctx, n_embd: c.d, n_layer: c.layers, n_head: c.heads }), { seed: 1 });
  const single = languageModeling(model, clm, { train: new MemoryTokens(tokens.subarray(0, 180_000)), val: new MemoryTokens(tokens.subarray(180_000)), batch: c.batch, ctx: c.ctx, evalWindows: 1 });
  const dp: DataParallel | null = world === null ? null : dataParallel(world, { bucketMb: job.bucketMb ?? 25, shardOptimizer: job.shard });
  const stamps: number[] = [];
  const steps = job.steps ?? 8, warm = 2;
  const trainer = new Trainer({
    model, objective: dp === null ? single : dp.objective(single), parallel: dp?.attach, steps: steps + warm, lr: 1e-3, warmup: 2, evalEvery: 1e9, quiet: true,
    onStep: () => stamps.push(performance.now()),
  });
  await trainer.run();
  const seconds = (stamps.at(-1)! - stamps[warm - 1]) / 1000;
  const s = dp?.stats();
  if (world === null || world.leader) {
    process.stdout.write(JSON.stringify({
      mode: "train", config: job.config ?? "S", ranks: world?.size ?? 1, threads: backend.threads(), params: model.numParameters(),
      tokensPerSecond: Math.round((c.batch * c.ctx * steps) / seconds), stepSeconds: seconds / steps,
      commSecondsPerStep: s === undefined ? 0 : s.commSeconds / s.steps, hiddenShare: s?.hiddenShare ?? null, buckets: s?.buckets ?? 0,
    }) + "\n");
  }
}
