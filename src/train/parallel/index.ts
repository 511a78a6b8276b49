/**
 * Data-parallel training over MPI. Every rank holds the whole model, trains on its slice of
 * every global batch (shard.ts), averages gradients with bucketed collectives that overlap
 * backward (buckets.ts), and takes the same optimizer step, so a run's trajectory does not
 * depend on how many processes produce it. With `shardOptimizer`, AdamW's moments are split
 * across ranks (ZeRO stage 1, zero.ts). Rank 0 alone prints, validates and writes.
 *
 *     const world = World.join();                          // under mpirun (launch.ts starts it)
 *     const dp = dataParallel(world, { bucketMb: 25, shardOptimizer: true });
 *     const trainer = new Trainer({ model, objective: dp.objective(objective), parallel: dp.attach, ... });
 *     await trainer.run();  dp.stats();                    // communication time, hidden share
 */
import { launchedRank, loadMpi } from "../../native/mpi.js";
import type { AdamW } from "../../optim/adamw.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { Objective, ParallelStep } from "../trainer.js";
import { GradReducer } from "./buckets.js";
import { gatherRows } from "./gather.js";
import { shardRows, type RowBatch } from "./shard.js";
import { World } from "./world.js";
import { ShardedAdamW } from "./zero.js";

export { World } from "./world.js";
export { GradReducer, planBuckets, type Bucket, type CommStats } from "./buckets.js";
export { ShardedAdamW } from "./zero.js";
export { shardRows, type RowBatch } from "./shard.js";
export { gatherRows } from "./gather.js";
export { launchArgs, runUnderMpirun, ranksThreads } from "./launch.js";

export interface DataParallelOptions {
  /** Gradient bucket size, MB (default 25, as PyTorch DDP's bucket_cap_mb). */
  bucketMb?: number;
  /** ZeRO stage 1: split AdamW's moments across ranks. */
  shardOptimizer?: boolean;
}

export interface DataParallelStats {
  rank: number;
  world: number;
  buckets: number;
  steps: number;
  commSeconds: number;
  hiddenSeconds: number;
  /** hiddenSeconds / commSeconds. */
  hiddenShare: number;
  /** Optimizer state this rank holds. */
  optimizerBytes: number;
}

export interface DataParallel {
  readonly world: World;
  /** This rank's view of a token-batch objective. */
  objective<B extends RowBatch>(objective: Objective<B>): Objective<unknown>;
  /**
   * Batch-coupled losses (InfoNCE): this rank's rows [lo, hi) of a global batch of `rows`, and the
   * differentiable all-gather of its features (gather.ts) that gives every rank the whole batch's.
   */
  rows(rows: number, what: string): { lo: number; hi: number };
  gather(x: Tensor): Tensor;
  /** TrainerOptions.parallel. */
  attach: (trainer: { opt: AdamW; parameters: Tensor[] }) => ParallelStep;
  stats(): DataParallelStats;
}

export function dataParallel(world: World, { bucketMb = 25, shardOptimizer = false }: DataParallelOptions = {}): DataParallel {
  if (!(bucketMb > 0)) throw new RangeError(`dataParallel: --bucket-mb must be > 0, got ${bucketMb}`);
  let reducer: GradReducer | null = null;
  let sharded: ShardedAdamW | null = null;
  let opt: AdamW | null = null;
  return {
    world,
    objective: (objective) => shardRows(objective, world.rank, world.size) as Objective<unknown>,
    rows(rows, what) {
      if (rows % world.size !== 0) throw new RangeError(`data parallelism: the ${what} of ${rows} does not split evenly over ${world.size} ranks (choose a --batch that is a multiple of ${world.size})`);
      const lo = (world.rank * rows) / world.size;
      return { lo, hi: lo + rows / world.size };
    },
    gather: (x) => gatherRows(world, x),
    attach(trainer) {
      if (reducer !== null) throw new Error("dataParallel: attach() was already called (one trainer per dataParallel)");
      opt = trainer.opt;
      reducer = new GradReducer(world, trainer.parameters, bucketMb * 1024 * 1024, shardOptimizer);
      sharded = shardOptimizer ? new ShardedAdamW(world, trainer.opt, reducer.buckets) : null;
      const r = reducer, z = sharded;
      const step: ParallelStep = {
        leader: world.leader,
        beginLastBackward: () => r.begin(),
        async finish({ loss, seconds, stop }) {
          await r.finish();
          const [sum, clock, stops] = world.sumSync([loss, world.leader ? seconds : 0, stop ? 1 : 0], "the loss all-reduce");
          return { loss: sum / world.size, seconds: clock, stop: stops > 0 };
        },
      };
      if (z !== null) {
        step.update = (clip) => z.update(clip);
        step.beforeCheckpoint = () => z.gather();
        step.afterCheckpoint = () => z.release();
      }
      return step;
    },
    stats() {
      const s = reducer?.stats ?? { commSeconds: 0, hiddenSeconds: 0, steps: 0 };
      return {
        rank: world.rank, world: world.size, buckets: reducer?.buckets.length ?? 0, steps: s.steps, commSeconds: s.commSeconds, hiddenSeconds: s.hiddenSeconds,
        hiddenShare: s.commSeconds > 0 ? s.hiddenSeconds / s.commSeconds : 0, optimizerBytes: opt?.stateBytes() ?? 0,
      };
    },
  };
}

/**
 * The data-parallel runtime when this process is one rank of several (mpirun, srun, --procs),
 * else null. A clear error names what to install when the MPI binding is missing.
 */
export function joinIfLaunched(options: DataParallelOptions = {}): DataParallel | null {
  const launched = launchedRank();
  if (launched === null || launched.size <= 1) return null;
  loadMpi();
  return dataParallel(World.join(), options);
}
