/**
 * Gradient buckets: the parameters, in reverse order (the order backward finishes them), are
 * grouped into buckets of about `capBytes` (DDP's bucket_cap_mb). When autograd has completed
 * every gradient of a bucket (tensor/autograd.ts's onLeafGradReady), the bucket is copied into
 * one flat buffer and its sum across ranks starts on MPI's communication thread while backward
 * goes on; finish() waits for all of them. The share of communication time that ran before
 * backward ended is the overlap (hidden) share.
 *
 * Two modes: all-reduce (every rank gets the averaged bucket, copied back into .grad) and
 * reduce-scatter (ZeRO-1: rank r gets only segment r of every averaged bucket, in `shard`).
 *
 * Bucket layout (P = world size): buf[size], size = used rounded up to a multiple of P; param i
 * of the bucket occupies buf[offsets[i], offsets[i] + params[i].size); rank r owns
 * buf[r * size/P, (r + 1) * size/P) when sharded.
 */
import { onLeafGradReady } from "../../tensor/autograd.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { Timing, World } from "./world.js";

export interface Bucket {
  readonly params: Tensor[];
  readonly offsets: number[];
  /** Padded length (a multiple of the world size). */
  readonly size: number;
  readonly buf: Float32Array;
  /** This rank's segment of the averaged bucket (reduce-scatter mode). */
  readonly shard: Float32Array | null;
  pending: number;
  op: number | null;
}

/** Buckets of at most capBytes (a parameter larger than the cap gets a bucket of its own), over `parameters` reversed. */
export function planBuckets(parameters: Tensor[], capBytes: number, world: number, sharded: boolean): Bucket[] {
  if (!(capBytes > 0)) throw new RangeError(`planBuckets: the bucket size must be > 0 bytes, got ${capBytes}`);
  if (!(Number.isInteger(world) && world >= 1)) throw new RangeError(`planBuckets: the world size must be a positive integer, got ${world}`);
  const cap = Math.max(1, Math.floor(capBytes / 4));
  const groups: Tensor[][] = [];
  let current: Tensor[] = [], used = 0;
  for (const p of [...parameters].reverse()) {
    if (current.length > 0 && used + p.size > cap) {
      groups.push(current);
      current = [];
      used = 0;
    }
    current.push(p);
    used += p.size;
  }
  if (current.length > 0) groups.push(current);
  return groups.map((params) => {
    const offsets: number[] = [];
    let at = 0;
    for (const p of params) {
      offsets.push(at);
      at += p.size;
    }
    const size = Math.ceil(at / world) * world;
    return { params, offsets, size, buf: new Float32Array(size), shard: sharded ? new Float32Array(size / world) : null, pending: params.length, op: null };
  });
}

export interface CommStats {
  /** Seconds the communication thread spent on gradient collectives. */
  commSeconds: number;
  /** Of those, seconds that ran while backward was still computing. */
  hiddenSeconds: number;
  steps: number;
}

export class GradReducer {
  readonly buckets: Bucket[];
  readonly stats: CommStats = { commSeconds: 0, hiddenSeconds: 0, steps: 0 };
  private readonly bucketOf = new Map<Tensor, Bucket>();
  private prevHook: ((leaf: Tensor) => void) | null = null;
  private active = false;

  constructor(private readonly world: World, parameters: Tensor[], capBytes: number, readonly sharded: boolean) {
    this.buckets = planBuckets(parameters, capBytes, world.size, sharded);
    for (const b of this.buckets) for (const p of b.params) this.bucketOf.set(p, b);
  }

  /** Before the last backward of a step: launch each bucket once autograd has finished its gradients. */
  begin(): void {
    if (this.active) throw new Error("GradReducer.begin: the previous step's reduction was not finished");
    this.active = true;
    for (const b of this.buckets) {
      b.pending = b.params.length;
      b.op = null;
    }
    this.prevHook = onLeafGradReady((leaf) => {
      const b = this.bucketOf.get(leaf);
      if (b !== undefined && --b.pending === 0) this.launch(b);
    });
  }

  private launch(b: Bucket): void {
    b.params.forEach((p, i) => {
      const at = b.offsets[i];
      if (p.grad === null) b.buf.fill(0, at, at + p.size);
      else b.buf.set(p.grad.data.subarray(0, p.size), at);
    });
    const scale = 1 / this.world.size;
    b.op = b.shard === null ? this.world.mpi.allreduce(b.buf, scale) : this.world.mpi.reduceScatter(b.buf, b.shard, scale);
  }

  /**
   * Waits for every bucket (launching, in bucket order, those whose parameters got no gradient
   * this step) and, in all-reduce mode, writes the averages back into the gradients.
   */
  async finish(): Promise<void> {
    if (!this.active) throw new Error("GradReducer.finish: begin() was not called this step");
    const backwardEnd = this.world.mpi.now();
    onLeafGradReady(this.prevHook);
    this.active = false;
    for (const b of this.buckets) if (b.op === null) this.launch(b);
    const timings: Timing[] = [];
    for (const b of this.buckets) timings.push(await this.world.done(b.op!, `the gradient ${this.sharded ? "reduce-scatter" : "all-reduce"} of ${b.size} floats`));
    for (const t of timings) {
      this.stats.commSeconds += t.end - t.start;
      this.stats.hiddenSeconds += Math.max(0, Math.min(t.end, backwardEnd) - t.start);
    }
    this.stats.steps++;
    if (this.sharded) return;
    for (const b of this.buckets) {
      b.params.forEach((p, i) => {
        if (p.grad !== null) p.grad.data.set(b.buf.subarray(b.offsets[i], b.offsets[i] + p.size));
      });
    }
  }
}
