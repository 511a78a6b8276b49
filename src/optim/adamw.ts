/**
 * AdamW with decoupled weight decay (native in-place kernel, native/src/kernels/adamw.inc),
 * parameter groups, and a serialisable state for exact resume.
 */
import { Tensor, writeHost, zeros } from "../tensor/tensor.js";
import { adamwStep_, fill_, scale_, sumSquares } from "../tensor/ops/inplace.js";

export interface ParamGroup {
  params: Tensor[];
  weightDecay?: number;
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/**
 * Moments kept outside this object: ZeRO stage 1 (train/parallel/zero.ts) splits them across
 * processes and updates its shard itself; checkpoints still read and restore whole moments here.
 */
export interface ShardedMoments {
  momentsOf(p: Tensor): { m: Float32Array; v: Float32Array };
  setMoments(p: Tensor, m: ArrayLike<number>, v: ArrayLike<number>): void;
  stateBytes(): number;
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly groups: { params: Tensor[]; weightDecay: number }[];
  steps = 0;
  /** Set by a sharded optimizer: momentsOf/setMoments go to it, and step() is its business. */
  sharded: ShardedMoments | null = null;
  private m = new Map<Tensor, Tensor>();
  private v = new Map<Tensor, Tensor>();

  constructor(params: Tensor[] | ParamGroup[], { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01 }: AdamWOptions = {}) {
    if (!(lr >= 0)) throw new RangeError(`AdamW: lr must be >= 0, got ${lr}`);
    if (!(betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1)) throw new RangeError(`AdamW: betas must be in [0, 1), got ${betas}`);
    this.lr = lr;
    this.betas = betas;
    this.eps = eps;
    const list = params.length > 0 && params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    this.groups = list.map((g) => ({ params: g.params, weightDecay: g.weightDecay ?? weightDecay }));
    for (const g of this.groups) {
      for (const p of g.params) {
        if (!p.requiresGrad) throw new Error(`AdamW: parameter ${p.name || p.toString()} does not require grad`);
      }
    }
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    if (this.sharded !== null) throw new Error("AdamW.step: the moments are sharded across processes; the sharded optimizer updates the parameters");
    this.steps++;
    const [b1, b2] = this.betas;
    const bc1 = 1 - Math.pow(b1, this.steps);
    const bc2 = 1 - Math.pow(b2, this.steps);
    for (const g of this.groups) {
      for (const p of g.params) {
        if (p.grad === null) continue;
        let m = this.m.get(p);
        let v = this.v.get(p);
        if (m === undefined || v === undefined) {
          m = zeros([...p.shape], p.device);
          v = zeros([...p.shape], p.device);
          this.m.set(p, m);
          this.v.set(p, v);
        }
        adamwStep_(p, p.grad, m, v, { lr: this.lr, beta1: b1, beta2: b2, eps: this.eps, weightDecay: g.weightDecay, bc1, bc2 });
      }
    }
  }

  /** Bytes of moment buffers this process holds (its shard's, when sharded). */
  stateBytes(): number {
    if (this.sharded !== null) return this.sharded.stateBytes();
    let n = 0;
    for (const t of [...this.m.values(), ...this.v.values()]) n += t.size * 4;
    return n;
  }

  /** Frees the moment buffers (the optimizer cannot step afterwards without starting over). */
  release(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.release();
    this.m.clear();
    this.v.clear();
    this.steps = 0;
  }

  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) if (p.grad !== null) fill_(p.grad, 0);
  }

  /** Copies of one parameter's first and second moments (zeros before its first update). */
  momentsOf(p: Tensor): { m: Float32Array; v: Float32Array } {
    if (this.sharded !== null) return this.sharded.momentsOf(p);
    return {
      m: (this.m.get(p)?.toArray() as Float32Array | undefined) ?? new Float32Array(p.size),
      v: (this.v.get(p)?.toArray() as Float32Array | undefined) ?? new Float32Array(p.size),
    };
  }

  /** Restores one parameter's moments (from a checkpoint). */
  setMoments(p: Tensor, m: ArrayLike<number>, v: ArrayLike<number>): void {
    if (this.sharded !== null) return this.sharded.setMoments(p, m, v);
    if (m.length !== p.size || v.length !== p.size) {
      throw new Error(`AdamW.setMoments: got ${m.length}/${v.length} values for a parameter of ${p.size}`);
    }
    const tm = this.m.get(p) ?? zeros([...p.shape], p.device);
    const tv = this.v.get(p) ?? zeros([...p.shape], p.device);
    writeHost(tm, m);
    writeHost(tv, v);
    this.m.set(p, tm);
    this.v.set(p, tv);
  }

  /** Moments in parameter order, for checkpoints. */
  stateDict(): { step: number; lr: number; m: Float32Array[]; v: Float32Array[] } {
    const all = this.groups.flatMap((g) => g.params);
    return {
      step: this.steps,
      lr: this.lr,
      m: all.map((p) => (this.m.get(p)?.toArray() as Float32Array | undefined) ?? new Float32Array(p.size)),
      v: all.map((p) => (this.v.get(p)?.toArray() as Float32Array | undefined) ?? new Float32Array(p.size)),
    };
  }

  loadStateDict(state: { step: number; lr: number; m: ArrayLike<number>[]; v: ArrayLike<number>[] }): void {
    const all = this.groups.flatMap((g) => g.params);
    if (state.m.length !== all.length || state.v.length !== all.length) {
      throw new Error(`AdamW.loadStateDict: state has ${state.m.length} moments for ${all.length} parameters`);
    }
    this.steps = state.step;
    this.lr = state.lr;
    all.forEach((p, i) => {
      if (state.m[i].length !== p.size || state.v[i].length !== p.size) {
        throw new Error(`AdamW.loadStateDict: moment ${i} has ${state.m[i].length} values, expected ${p.size}`);
      }
      const m = this.m.get(p) ?? zeros([...p.shape], p.device);
      const v = this.v.get(p) ?? zeros([...p.shape], p.device);
      writeHost(m, state.m[i]);
      writeHost(v, state.v[i]);
      this.m.set(p, m);
      this.v.set(p, v);
    });
  }
}

/** Scales all gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) if (p.grad !== null) sq += sumSquares(p.grad);
  const norm = Math.sqrt(sq);
  if (!Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    for (const p of params) if (p.grad !== null) scale_(p.grad, coef);
  }
  return norm;
}

/** Linear warm-up to `lr`, then cosine decay to `minLr` at `totalSteps`. */
export function cosineSchedule(step: number, { lr, warmup, totalSteps, minLr = lr * 0.1 }: { lr: number; warmup: number; totalSteps: number; minLr?: number }): number {
  if (step < warmup) return (lr * (step + 1)) / warmup;
  if (step >= totalSteps) return minLr;
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
