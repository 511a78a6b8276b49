/**
 * LoRA (low-rank adaptation): a frozen base Linear plus a trainable rank-r update,
 *
 *     y = base(x) + (alpha / r) · dropout(x) @ A @ B,     A [in, r] ~ N(0, 1/r), B [r, out] = 0,
 *
 * so a fresh adapter is an exact no-op. `applyLoRA` freezes every base parameter and swaps the
 * targeted Linear fields of a model (GPT: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) for
 * LoRALinear layers that wrap them; `remove()` puts the original Linears back.
 *
 *     const lora = applyLoRA(gpt, { rank: 4, alpha: 8, dropout: 0.05, seed: 1 });
 *     const opt = new AdamW(lora.trainableParameters(), { lr: 1e-3 });
 *     ... train with gpt.loss(ids, targets) ...
 *     saveAdapter("runs/lora", { method: "lora", task, labels, config: lora.config, base: baseIdentity("runs/gpt") }, lora.tensors());
 *     lora.merge();   // fold (alpha/r)·A@B into the base weights: inference at base cost
 *
 * Note: Module.namedParameters() lists only tensors with requiresGrad, so once a model is
 * adapted, model.namedParameters() / model.stateDict() / model.parameters() list just the
 * lora_A / lora_B tensors (`transformer.h.0.attn.c_attn.lora_A`, ...), the same names as
 * handle.stateDict(). Save the base (saveGPT) before applyLoRA or after remove().
 */
import { Module } from "../nn/module.js";
import { Linear } from "../nn/layers.js";
import { architectureOf, loraTargets } from "../models/registry.js";
import { Rng } from "../tensor/rng.js";
import { fmt, sameShape } from "../tensor/shape.js";
import { Tensor, empty, zeros } from "../tensor/tensor.js";
import { add, dropout, scale } from "../tensor/ops/elementwise.js";
import { linear } from "../tensor/ops/matmul.js";
import { f32, toFloat32, type RawTensor } from "../io/safetensors.js";

export interface LoRAOptions {
  /** Rank r of the update (a positive integer, at most min(in, out)). */
  rank: number;
  /** Scale numerator: the update is multiplied by alpha / r. Default: rank (scale 1). */
  alpha?: number;
  /** Dropout probability on the adapter's input (training only). Default 0. */
  dropout?: number;
  /** Seeds A's initialisation and the adapter's dropout masks. Default 0. */
  seed?: number;
  /** Shared generator instead of seed (applyLoRA passes one to every layer). */
  rng?: Rng;
}

export class LoRAError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LoRAError";
  }
}

function checkOptions(where: string, rank: number, alpha: number, p: number): void {
  if (!Number.isInteger(rank) || rank < 1) throw new LoRAError(`${where}: rank must be a positive integer, got ${rank}`);
  if (!(Number.isFinite(alpha) && alpha > 0)) throw new LoRAError(`${where}: alpha must be a finite number > 0, got ${alpha}`);
  if (!(p >= 0 && p < 1)) throw new LoRAError(`${where}: dropout must be in [0, 1), got ${p}`);
}

/**
 * A Linear with a low-rank trainable update. It extends Linear so that it can stand wherever a
 * Linear field is (blocks and the KV-cache generator call `.forward(x)` on those fields):
 * `weight`, `bias`, `layout`, `inFeatures`, `outFeatures` are the base's own tensors and values,
 * so the field's parameter names (`c_attn.weight`) are unchanged. The wrapped Linear is kept in
 * a private field (not walked by Module, so it adds no names).
 */
export class LoRALinear extends Linear {
  lora_A: Tensor;
  lora_B: Tensor;
  readonly rank: number;
  readonly alpha: number;
  readonly dropoutP: number;
  /** alpha / rank. */
  readonly scaling: number;
  /** True while (alpha/r)·A@B is folded into the base weight (forward then skips the update). */
  merged = false;
  private readonly rng: Rng;
  readonly #base: Linear;

  constructor(base: Linear, { rank, alpha = rank, dropout: p = 0, seed = 0, rng }: LoRAOptions) {
    checkOptions("LoRALinear", rank, alpha, p);
    if (base instanceof LoRALinear) throw new LoRAError("LoRALinear: the layer already carries a LoRA adapter");
    if (rank > Math.min(base.inFeatures, base.outFeatures)) {
      throw new LoRAError(`LoRALinear: rank ${rank} exceeds min(in, out) = ${Math.min(base.inFeatures, base.outFeatures)} of a [${base.inFeatures} -> ${base.outFeatures}] layer`);
    }
    // Linear's constructor allocates a weight of its own; make it 1x1 and drop it at once
    // (the shape is irrelevant: weight is replaced by the base's tensor below).
    super(1, 1, { bias: false, layout: base.layout, std: 0, rng: new Rng(0) });
    this.weight.release();
    this.weight = base.weight;
    this.bias = base.bias;
    // inFeatures/outFeatures are readonly constructor fields of Linear; set them to the base's.
    Object.defineProperty(this, "inFeatures", { value: base.inFeatures, enumerable: true });
    Object.defineProperty(this, "outFeatures", { value: base.outFeatures, enumerable: true });
    this.#base = base;
    this.rank = rank;
    this.alpha = alpha;
    this.dropoutP = p;
    this.scaling = alpha / rank;
    this.rng = rng ?? new Rng(seed);
    this.training = base.training;
    // The base is frozen: only A and B are trained.
    base.weight.requiresGrad = false;
    if (base.bias !== null) base.bias.requiresGrad = false;
    const A = empty([base.inFeatures, rank]);
    const std = 1 / Math.sqrt(rank); // variance 1/r
    const d = A.data;
    for (let i = 0; i < A.size; i++) d[i] = this.rng.normal() * std;
    A.requiresGrad = true;
    A.name = "lora_A";
    const B = zeros([rank, base.outFeatures]);
    B.requiresGrad = true;
    B.name = "lora_B";
    this.lora_A = A;
    this.lora_B = B;
  }

  /** The wrapped Linear (its weight and bias are this layer's weight and bias). */
  get base(): Linear {
    return this.#base;
  }

  override forward(x: Tensor): Tensor {
    const y = linear(x, this.weight, this.bias, this.layout);
    if (this.merged) return y;
    const xd = dropout(x, this.dropoutP, this.training, this.rng);
    // [..., in] @ A -> [..., r], scaled there (r is the narrowest point), then @ B -> [..., out].
    const h = scale(linear(xd, this.lora_A), this.scaling);
    return add(y, linear(h, this.lora_B));
  }

  /** (alpha/r)·A@B as [in, out], in float64. */
  private delta(): Float64Array {
    const [inF, outF, r] = [this.inFeatures, this.outFeatures, this.rank];
    const A = this.lora_A.data, B = this.lora_B.data, s = this.scaling;
    const out = new Float64Array(inF * outF);
    for (let i = 0; i < inF; i++) {
      for (let k = 0; k < r; k++) {
        const a = A[i * r + k] * s;
        if (a === 0) continue;
        const row = k * outF, o0 = i * outF;
        for (let o = 0; o < outF; o++) out[o0 + o] += a * B[row + o];
      }
    }
    return out;
  }

  private addDelta(sign: 1 | -1): void {
    const D = this.delta();
    const W = this.weight.data;
    const [inF, outF] = [this.inFeatures, this.outFeatures];
    if (this.layout === "in_out") {
      for (let j = 0; j < inF * outF; j++) W[j] += sign * D[j];
    } else {
      for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) W[o * inF + i] += sign * D[i * outF + o];
    }
  }

  /** Folds (alpha/r)·A@B into the base weight in place (transposed for "out_in"); forward then skips the update. */
  merge(): void {
    if (this.merged) return;
    this.addDelta(1);
    this.merged = true;
  }

  /** Subtracts the update back out of the base weight (exact up to float32 rounding). */
  unmerge(): void {
    if (!this.merged) return;
    this.addDelta(-1);
    this.merged = false;
  }

  /** Trainable parameters of the adapter. */
  numAdapterParameters(): number {
    return this.lora_A.size + this.lora_B.size;
  }
}

// ---------------------------------------------------------------- applying to a model

export interface ApplyLoRAOptions {
  rank: number;
  alpha?: number;
  dropout?: number;
  /**
   * Which Linear fields to adapt. A target matches a field by its name (`c_proj`), or by the
   * end of its dotted path (`attn.c_proj`), or by the whole path. Every target must match
   * at least one Linear. Default: the architecture's targets in the model registry
   * (GPT: c_attn, c_proj, c_fc; BERT: query, key, value, output.dense, intermediate.dense).
   */
  targets?: string[];
  seed?: number;
}

export interface LoRAConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: string[];
  seed: number;
  [key: string]: unknown;
}

export interface ParameterCount {
  /** Adapter (A and B) elements. */
  trainable: number;
  /** Elements of the base model's tensors (each shared tensor counted once). */
  base: number;
  /** trainable / base. */
  fraction: number;
  /** e.g. "LoRA: 24.6K trainable parameters, 0.74% of 3.3M". */
  summary: string;
}

export type LoRAStateSource = Tensor | RawTensor | { shape: readonly number[]; data: ArrayLike<number> };

export interface LoRAHandle {
  /** [path, layer] pairs, path like `transformer.h.0.attn.c_attn`. */
  readonly layers: [string, LoRALinear][];
  readonly config: LoRAConfig;
  /** The A and B tensors, in layer order (for the optimizer). */
  trainableParameters(): Tensor[];
  parameterCount(): ParameterCount;
  merge(): void;
  unmerge(): void;
  /** Only the adapter tensors: `${path}.lora_A` [in, r] and `${path}.lora_B` [r, out]. */
  stateDict(): Record<string, Tensor>;
  /** The adapter tensors as float32 RawTensors, for saveAdapter. */
  tensors(): Record<string, RawTensor>;
  /** Shape-checked copy into the adapter tensors; strict: no missing and no unknown names. */
  loadStateDict(dict: Record<string, LoRAStateSource>, options?: { strict?: boolean }): { missing: string[]; unexpected: string[] };
  /**
   * Puts the original Linear fields back and restores every base parameter's requiresGrad.
   * Merged layers are unmerged first, unless keepMerged (the base then keeps the update).
   */
  remove(options?: { keepMerged?: boolean }): void;
}

type Slot = { owner: object; key: string | number; path: string; linear: Linear };

/** Every Linear in the module tree, with where it sits; does not descend into Linears. */
function findLinears(root: Module): Slot[] {
  const out: Slot[] = [];
  const seen = new Set<unknown>();
  const visit = (owner: Module | unknown[], key: string | number, value: unknown, path: string): void => {
    if (value instanceof Linear) {
      out.push({ owner, key, path, linear: value });
      return;
    }
    if (seen.has(value)) return;
    if (value instanceof Module) {
      seen.add(value);
      for (const [k, child] of Object.entries(value)) {
        if (k !== "training") visit(value, k, child, path === "" ? k : `${path}.${k}`);
      }
    } else if (Array.isArray(value)) {
      seen.add(value);
      value.forEach((child, i) => visit(value, i, child, `${path}.${i}`));
    }
  };
  seen.add(root);
  for (const [k, child] of Object.entries(root)) if (k !== "training") visit(root, k, child, k);
  return out;
}

/** Every tensor reachable through Module fields and arrays (frozen or not), each once. */
function allTensors(root: Module): Tensor[] {
  const out = new Set<Tensor>();
  const seen = new Set<unknown>();
  const walk = (value: unknown): void => {
    if (value instanceof Tensor) {
      out.add(value);
      return;
    }
    if (seen.has(value)) return;
    if (value instanceof Module) {
      seen.add(value);
      for (const [k, child] of Object.entries(value)) if (k !== "training") walk(child);
    } else if (Array.isArray(value)) {
      seen.add(value);
      value.forEach(walk);
    }
  };
  walk(root);
  return [...out];
}

function matches(target: string, key: string | number, path: string): boolean {
  return target === String(key) || target === path || path.endsWith(`.${target}`);
}

function setSlot(slot: Slot, value: Linear): void {
  // The owner's field (or array element) was found by reflection over the module tree and held
  // a Linear; LoRALinear extends Linear, so writing one there keeps the field's declared type.
  // TypeScript cannot type a field named by a runtime string, hence Reflect.set (no cast).
  if (!Reflect.set(slot.owner, slot.key, value)) throw new LoRAError(`LoRA: cannot replace the field ${slot.path} (read-only)`);
}

const human = (n: number): string =>
  n >= 1e9 ? `${(n / 1e9).toFixed(1)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);

function defaultTargets(model: Module): string[] {
  try {
    return loraTargets(architectureOf(model).modelType);
  } catch {
    throw new LoRAError(`applyLoRA: a ${model.constructor.name} is not a registered architecture; give targets (Linear field names) explicitly`);
  }
}

/** Freezes the model's parameters and wraps its targeted Linear fields with LoRA adapters. */
export function applyLoRA(model: Module, options: ApplyLoRAOptions): LoRAHandle {
  const { rank, alpha = rank, dropout: p = 0, seed = 0 } = options;
  const targets = options.targets ?? defaultTargets(model);
  checkOptions("applyLoRA", rank, alpha, p);
  if (!Array.isArray(targets) || targets.length === 0) throw new LoRAError("applyLoRA: targets must be a non-empty list of field names");
  const slots = findLinears(model);
  if (slots.some((s) => s.linear instanceof LoRALinear)) {
    throw new LoRAError("applyLoRA: the model already carries LoRA adapters; remove() them first");
  }
  const chosen = slots.filter((s) => targets.some((t) => matches(t, s.key, s.path)));
  const available = [...new Set(slots.map((s) => String(s.key)))];
  for (const t of targets) {
    if (!slots.some((s) => matches(t, s.key, s.path))) {
      throw new LoRAError(`applyLoRA: target "${t}" matches no Linear layer in the model; Linear fields are [${available.join(", ")}]`);
    }
  }
  for (const s of chosen) {
    if (rank > Math.min(s.linear.inFeatures, s.linear.outFeatures)) {
      throw new LoRAError(`applyLoRA: rank ${rank} exceeds min(in, out) = ${Math.min(s.linear.inFeatures, s.linear.outFeatures)} of ${s.path} [${s.linear.inFeatures} -> ${s.linear.outFeatures}]`);
    }
  }

  // Freeze the base, remembering each tensor's flag for remove().
  const baseTensors = allTensors(model);
  const wasTrainable = new Map(baseTensors.map((t) => [t, t.requiresGrad]));
  for (const t of baseTensors) t.requiresGrad = false;
  const baseCount = baseTensors.reduce((s, t) => s + t.size, 0);

  const rng = new Rng(seed);
  const layers: [string, LoRALinear][] = chosen.map((s) => {
    const layer = new LoRALinear(s.linear, { rank, alpha, dropout: p, rng });
    setSlot(s, layer);
    return [s.path, layer];
  });
  let removed = false;
  const live = (what: string): void => {
    if (removed) throw new LoRAError(`LoRA ${what}: the adapter was removed from the model`);
  };

  const stateDict = (): Record<string, Tensor> => {
    const out: Record<string, Tensor> = {};
    for (const [path, l] of layers) {
      out[`${path}.lora_A`] = l.lora_A;
      out[`${path}.lora_B`] = l.lora_B;
    }
    return out;
  };

  return {
    layers,
    config: { rank, alpha, dropout: p, targets: [...targets], seed },
    trainableParameters: () => layers.flatMap(([, l]) => [l.lora_A, l.lora_B]),
    parameterCount(): ParameterCount {
      const trainable = layers.reduce((s, [, l]) => s + l.numAdapterParameters(), 0);
      const fraction = trainable / baseCount;
      const pct = fraction * 100;
      return {
        trainable, base: baseCount, fraction,
        summary: `LoRA: ${human(trainable)} trainable parameters, ${pct < 0.1 ? pct.toPrecision(2) : pct.toFixed(2)}% of ${human(baseCount)}`,
      };
    },
    merge(): void {
      live("merge");
      for (const [, l] of layers) l.merge();
    },
    unmerge(): void {
      live("unmerge");
      for (const [, l] of layers) l.unmerge();
    },
    stateDict,
    tensors(): Record<string, RawTensor> {
      const out: Record<string, RawTensor> = {};
      for (const [name, t] of Object.entries(stateDict())) out[name] = f32([...t.shape], t.toArray() as Float32Array);
      return out;
    },
    loadStateDict(dict, { strict = true } = {}) {
      live("loadStateDict");
      const own = stateDict();
      const missing = Object.keys(own).filter((k) => dict[k] === undefined);
      const unexpected = Object.keys(dict).filter((k) => own[k] === undefined);
      if (strict && (missing.length > 0 || unexpected.length > 0)) {
        throw new LoRAError(`LoRA loadStateDict: adapter tensors do not match the model: missing [${missing.join(", ")}], unexpected [${unexpected.join(", ")}]`);
      }
      const values: [Tensor, ArrayLike<number>][] = [];
      for (const [name, t] of Object.entries(own)) {
        const src = dict[name];
        if (src === undefined) continue;
        if (!sameShape(src.shape, t.shape)) {
          throw new LoRAError(`LoRA loadStateDict: ${name} has shape ${fmt([...src.shape])}, expected ${fmt(t.shape)} (was the adapter made with another rank?)`);
        }
        const data = src instanceof Tensor ? src.toArray() : "dtype" in src && typeof src.dtype === "string" && src.data instanceof Uint8Array ? toFloat32(src as RawTensor) : src.data;
        values.push([t, data]);
      }
      // Shapes all checked before any write: a failed load changes nothing.
      const mergedLayers = layers.filter(([, l]) => l.merged).map(([, l]) => l);
      for (const l of mergedLayers) l.unmerge();
      for (const [t, data] of values) t.data.set(data);
      for (const l of mergedLayers) l.merge();
      return { missing, unexpected };
    },
    remove({ keepMerged = false } = {}): void {
      live("remove");
      for (const [, l] of layers) if (!keepMerged) l.unmerge();
      for (const s of chosen) setSlot(s, s.linear);
      for (const [t, flag] of wasTrainable) t.requiresGrad = flag;
      removed = true;
    },
  };
}
