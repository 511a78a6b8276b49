/**
 * ZeRO stage 1: AdamW's moments split across ranks. Gradients arrive reduce-scattered (each rank
 * holds the averaged segment r of every bucket, buckets.ts); the global gradient norm is the
 * sum of every rank's segment norms (one tiny all-reduce), so clipping is that of one process;
 * each rank updates the parameter elements of its segments with its moments, and an all-gather
 * per bucket gives every rank the whole updated model. Optimizer memory per rank: 2 floats per
 * owned element, about 1/P of AdamW's.
 *
 * Checkpoints keep one format whatever the world size: beforeCheckpoint() all-gathers the
 * moments, so AdamW.momentsOf (what saveCheckpoint reads) returns whole moments; resume gives
 * each rank the part of the saved moments it owns.
 */
import { backend } from "../../native/index.js";
import type { AdamW, ShardedMoments } from "../../optim/adamw.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { Bucket } from "./buckets.js";
import type { World } from "./world.js";

/** Elements of parameter `p` from `from` (within p), at `at` within the bucket's rank segment. */
interface Piece {
  p: Tensor;
  from: number;
  at: number;
  n: number;
  /** null: clipped with the others but not optimized. */
  weightDecay: number | null;
}

export class ShardedAdamW implements ShardedMoments {
  private readonly pieces: Piece[][];
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private readonly where = new Map<Tensor, { bucket: number; offset: number }>();
  private gathered: { m: Float32Array; v: Float32Array }[] | null = null;

  constructor(private readonly world: World, private readonly opt: AdamW, private readonly buckets: Bucket[]) {
    const decay = new Map<Tensor, number>();
    for (const g of opt.groups) for (const p of g.params) decay.set(p, g.weightDecay);
    const P = world.size, r = world.rank;
    this.pieces = buckets.map((b, bi) => {
      const seg = b.size / P, lo = r * seg, hi = lo + seg;
      const out: Piece[] = [];
      b.params.forEach((p, i) => {
        this.where.set(p, { bucket: bi, offset: b.offsets[i] });
        const wd = decay.get(p) ?? null;
        const s = Math.max(lo, b.offsets[i]), e = Math.min(hi, b.offsets[i] + p.size);
        if (s < e) out.push({ p, from: s - b.offsets[i], at: s - lo, n: e - s, weightDecay: wd });
      });
      return out;
    });
    this.m = buckets.map((b) => new Float32Array(b.size / P));
    this.v = buckets.map((b) => new Float32Array(b.size / P));
    opt.sharded = this;
  }

  /** Bytes of optimizer state this rank holds. */
  stateBytes(): number {
    return this.m.reduce((s, a) => s + a.byteLength, 0) + this.v.reduce((s, a) => s + a.byteLength, 0);
  }

  /** Clip to the global norm, update this rank's segments, all-gather the parameters. */
  update(clip: number): void {
    let sq = 0;
    for (const b of this.buckets) sq += backend.sumSquares(b.shard!.length, b.shard!);
    const norm = Math.sqrt(this.world.sumSync([sq], "the gradient-norm all-reduce")[0]);
    const coef = clip / (norm + 1e-6);
    if (Number.isFinite(norm) && coef < 1) for (const b of this.buckets) backend.unaryForward(5, b.shard!.length, b.shard!, b.shard!, coef);
    const opt = this.opt;
    opt.steps++;
    const [b1, b2] = opt.betas;
    const bc1 = 1 - Math.pow(b1, opt.steps), bc2 = 1 - Math.pow(b2, opt.steps);
    const ops: number[] = [];
    this.buckets.forEach((b, bi) => {
      const send = new Float32Array(b.size / this.world.size);
      for (const { p, from, at, n, weightDecay } of this.pieces[bi]) {
        const data = p.data.subarray(from, from + n);
        // A parameter without a gradient this step is left alone, as AdamW.step does.
        if (p.grad !== null && weightDecay !== null) {
          backend.adamwStep(n, data, b.shard!.subarray(at, at + n), this.m[bi].subarray(at, at + n), this.v[bi].subarray(at, at + n),
            opt.lr, b1, b2, opt.eps, weightDecay, bc1, bc2);
        }
        send.set(data, at);
      }
      ops.push(this.world.mpi.allgather(send, b.buf));
    });
    this.buckets.forEach((b, bi) => {
      this.world.doneSync(ops[bi], `the parameter all-gather of ${b.size} floats`);
      b.params.forEach((p, i) => p.data.set(b.buf.subarray(b.offsets[i], b.offsets[i] + p.size)));
    });
  }

  /** Collective: every rank gathers the whole moments (for a checkpoint). */
  gather(): void {
    this.gathered = this.buckets.map((b, bi) => {
      const m = new Float32Array(b.size), v = new Float32Array(b.size);
      const om = this.world.mpi.allgather(this.m[bi], m), ov = this.world.mpi.allgather(this.v[bi], v);
      this.world.doneSync(om, "the optimizer-state all-gather");
      this.world.doneSync(ov, "the optimizer-state all-gather");
      return { m, v };
    });
  }

  release(): void {
    this.gathered = null;
  }

  momentsOf(p: Tensor): { m: Float32Array; v: Float32Array } {
    const w = this.where.get(p);
    if (w === undefined) throw new Error(`ShardedAdamW.momentsOf: ${p.name || "a tensor"} is not one of the sharded parameters`);
    if (this.gathered === null) throw new Error("ShardedAdamW.momentsOf: the moments are sharded; gather() them first (every rank)");
    const g = this.gathered[w.bucket];
    return { m: g.m.slice(w.offset, w.offset + p.size), v: g.v.slice(w.offset, w.offset + p.size) };
  }

  /** Keeps the part of whole moments (from a checkpoint of any world size) that this rank owns. */
  setMoments(p: Tensor, m: ArrayLike<number>, v: ArrayLike<number>): void {
    const w = this.where.get(p);
    if (w === undefined) throw new Error(`ShardedAdamW.setMoments: ${p.name || "a tensor"} is not one of the sharded parameters`);
    if (m.length !== p.size || v.length !== p.size) throw new Error(`ShardedAdamW.setMoments: got ${m.length}/${v.length} values for a parameter of ${p.size}`);
    const seg = this.buckets[w.bucket].size / this.world.size, lo = this.world.rank * seg;
    const s = Math.max(lo, w.offset), e = Math.min(lo + seg, w.offset + p.size);
    for (let i = s; i < e; i++) {
      this.m[w.bucket][i - lo] = m[i - w.offset];
      this.v[w.bucket][i - lo] = v[i - w.offset];
    }
  }
}
