/**
 * Tensor: a typed view (shape, strides, offset) over reference-counted native storage.
 *
 * Memory is released deterministically: storage returns to the native caching
 * allocator when its last tensor is released. `backward()` releases the activations
 * of the graph it consumed (see autograd.ts); tensors that nothing releases
 * explicitly are returned by a FinalizationRegistry once garbage-collected.
 */
import { backend } from "../native/index.js";
import { ShapeError, checkShape, contiguousStrides, fmt, numel } from "./shape.js";
import { Rng, defaultRng } from "./rng.js";
import type { Node } from "./autograd.js";
import { track } from "./scope.js";

/** float32 for values, int32 for token ids; bf16/f16 storage would add entries here. */
export type DType = "float32" | "int32";

const BYTES: Record<DType, number> = { float32: 4, int32: 4 };

/**
 * Whole ArrayBuffers are recycled on the JavaScript side before they go back to the native
 * caching allocator: creating an external ArrayBuffer per tensor makes V8 count hundreds of
 * megabytes of "external memory" per training step and run needless full GCs. Buffers are
 * pooled by the native allocator's size classes, up to POOL_LIMIT bytes in all.
 */
const pool = new Map<number, ArrayBuffer[]>();
let pooledBytes = 0;
const POOL_LIMIT = 2 ** 32;

export function sizeClass(bytes: number): number {
  const b = Math.max(1, bytes);
  if (b <= 65536) return Math.ceil(b / 64) * 64;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

function acquire(bytes: number): ArrayBuffer {
  const c = sizeClass(bytes);
  const list = pool.get(c);
  if (list !== undefined && list.length > 0) {
    pooledBytes -= c;
    pooledCount--;
    return list.pop()!;
  }
  return backend.alloc(c);
}

function recycle(buffer: ArrayBuffer): void {
  const c = buffer.byteLength;
  if (pooledBytes + c > POOL_LIMIT) {
    backend.release(buffer);
    return;
  }
  let list = pool.get(c);
  if (list === undefined) pool.set(c, (list = []));
  list.push(buffer);
  pooledBytes += c;
  pooledCount++;
}

let pooledCount = 0;

/**
 * Memory held by live tensors (native blocks in use, less the pooled buffers waiting for
 * reuse), plus the pool and the native allocator's counters.
 */
export function memoryStats(): { bytesInUse: number; liveBuffers: number; pooledBytes: number; pooledBuffers: number; peakNativeBytes: number; freshAllocations: number } {
  const n = backend.memoryStats();
  return {
    bytesInUse: n.bytesInUse - pooledBytes, liveBuffers: n.liveBlocks - pooledCount, pooledBytes, pooledBuffers: pooledCount,
    peakNativeBytes: n.peakBytesInUse, freshAllocations: n.freshAllocations,
  };
}

/** Returns every pooled buffer to the native allocator and its cache to the system. */
export function emptyCache(): void {
  for (const list of pool.values()) for (const b of list) backend.release(b);
  pool.clear();
  pooledBytes = 0;
  pooledCount = 0;
  backend.emptyCache();
}

export class Storage {
  buffer: ArrayBuffer | null;
  readonly f32: Float32Array;
  readonly i32: Int32Array;
  refs = 0;

  constructor(readonly length: number, readonly dtype: DType) {
    this.buffer = acquire(length * BYTES[dtype]);
    this.f32 = new Float32Array(this.buffer, 0, length);
    this.i32 = new Int32Array(this.buffer, 0, length);
  }

  release(): void {
    if (this.buffer === null) return;
    const b = this.buffer;
    this.buffer = null;
    recycle(b);
  }
}

const finalizer = new FinalizationRegistry<Storage>((storage) => {
  storage.refs--;
  if (storage.refs <= 0) storage.release();
});

let tensorIds = 0;

export class Tensor {
  readonly id = ++tensorIds;
  readonly shape: number[];
  readonly strides: number[];
  readonly offset: number;
  readonly dtype: DType;
  storage: Storage | null;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The autograd node that produced this tensor (null for leaves). */
  node: Node | null = null;
  /** Kept alive through backward(): see retain(). */
  retained = false;
  name = "";
  private dataView: Float32Array | null = null;
  private idView: Int32Array | null = null;

  constructor(storage: Storage, shape: number[], strides?: number[], offset = 0) {
    this.storage = storage;
    this.shape = shape;
    this.strides = strides ?? contiguousStrides(shape);
    this.offset = offset;
    this.dtype = storage.dtype;
    storage.refs++;
    finalizer.register(this, storage, this);
    track(this);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return numel(this.shape);
  }

  get released(): boolean {
    return this.storage === null;
  }

  private live(op: string): Storage {
    if (this.storage === null || this.storage.buffer === null) {
      throw new Error(
        `${op}: tensor${fmt(this.shape)} was released (activations are freed by backward(); call .retain() before backward() to keep one)`,
      );
    }
    return this.storage;
  }

  /** float32 elements from this tensor's first element to the end of its storage. */
  get data(): Float32Array {
    const s = this.live("data");
    if (this.dtype !== "float32") throw new TypeError(`data: tensor is ${this.dtype}; use .ids for int32 tensors`);
    if (this.dataView === null || this.dataView.buffer !== s.buffer)
      this.dataView = this.offset === 0 ? s.f32 : s.f32.subarray(this.offset);
    return this.dataView;
  }

  /** int32 elements from this tensor's first element. */
  get ids(): Int32Array {
    const s = this.live("ids");
    if (this.dtype !== "int32") throw new TypeError(`ids: tensor is ${this.dtype}, expected int32`);
    if (this.idView === null || this.idView.buffer !== s.buffer)
      this.idView = this.offset === 0 ? s.i32 : s.i32.subarray(this.offset);
    return this.idView;
  }

  isContiguous(): boolean {
    let s = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i];
    }
    return true;
  }

  /** Keep this tensor's storage through backward() (e.g. logits you want to read afterwards). */
  retain(): this {
    this.retained = true;
    return this;
  }

  /** Drop this tensor's reference to its storage now. Idempotent. */
  release(): void {
    const s = this.storage;
    if (s === null) return;
    this.storage = null;
    this.dataView = null;
    this.idView = null;
    finalizer.unregister(this);
    s.refs--;
    if (s.refs <= 0) s.release();
    if (this.grad !== null) {
      this.grad.release();
      this.grad = null;
    }
  }

  /** A view sharing storage (no autograd; see ops/views.ts for differentiable views). */
  viewRaw(shape: number[], strides: number[], offset: number): Tensor {
    return new Tensor(this.live("view"), shape, strides, offset);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`item: tensor${fmt(this.shape)} has ${this.size} elements, expected 1`);
    return this.dtype === "int32" ? this.ids[0] : this.data[0];
  }

  /** A contiguous copy of the elements as a plain typed array. */
  toArray(): Float32Array | Int32Array {
    const s = this.live("toArray");
    const n = this.size;
    if (this.isContiguous()) {
      return this.dtype === "int32" ? s.i32.slice(this.offset, this.offset + n) : s.f32.slice(this.offset, this.offset + n);
    }
    const out = this.dtype === "int32" ? new Int32Array(n) : new Float32Array(n);
    const src = this.dtype === "int32" ? s.i32 : s.f32;
    const idx = new Array<number>(this.ndim).fill(0);
    for (let i = 0; i < n; i++) {
      let o = this.offset;
      for (let d = 0; d < this.ndim; d++) o += idx[d] * this.strides[d];
      out[i] = src[o];
      for (let d = this.ndim - 1; d >= 0; d--) {
        if (++idx[d] < this.shape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  toString(): string {
    return `Tensor(${this.dtype}${fmt(this.shape)}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }
}

// ---- creation ------------------------------------------------------------------------

/** Uninitialised float32 (or int32) tensor. */
export function empty(shape: number[], dtype: DType = "float32"): Tensor {
  const s = checkShape("empty", shape);
  return new Tensor(new Storage(numel(s), dtype), s);
}

export function full(shape: number[], value: number): Tensor {
  const t = empty(shape);
  backend.fill(t.size, t.data, value);
  return t;
}

export function zeros(shape: number[]): Tensor {
  return full(shape, 0);
}

export function ones(shape: number[]): Tensor {
  return full(shape, 1);
}

type NestedNumbers = number | NestedNumbers[];

function inferShape(values: NestedNumbers): number[] {
  const shape: number[] = [];
  let v: NestedNumbers = values;
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0] as NestedNumbers;
    if (v === undefined) break;
  }
  return shape;
}

/** From a flat typed array (with shape) or nested arrays. */
export function tensor(values: NestedNumbers | ArrayLike<number>, shape?: number[], dtype: DType = "float32"): Tensor {
  let flat: ArrayLike<number>;
  let s: number[];
  if (typeof values === "number") {
    flat = [values];
    s = shape ?? [];
  } else if (Array.isArray(values) && !shape) {
    s = inferShape(values as NestedNumbers);
    flat = (values as unknown[]).flat(Infinity) as number[];
  } else {
    flat = values as ArrayLike<number>;
    s = shape ?? [flat.length];
  }
  s = checkShape("tensor", s);
  if (flat.length !== numel(s)) {
    throw new ShapeError(`tensor: ${flat.length} values do not fill shape ${fmt(s)} (expected ${numel(s)})`);
  }
  const t = empty(s, dtype);
  if (dtype === "int32") {
    const ids = t.ids;
    for (let i = 0; i < flat.length; i++) {
      const v = flat[i];
      if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
        t.release();
        throw new TypeError(`tensor: int32 value at ${i} is ${v}, expected an integer in int32 range`);
      }
      ids[i] = v;
    }
  } else {
    t.data.set(flat);
  }
  return t;
}

/** int32 tensor of token ids. */
export function ids(values: ArrayLike<number> | number[][], shape?: number[]): Tensor {
  return tensor(values as NestedNumbers, shape, "int32");
}

export function randn(shape: number[], std = 1, rng: Rng = defaultRng): Tensor {
  const t = empty(shape);
  const d = t.data;
  for (let i = 0; i < t.size; i++) d[i] = rng.normal() * std;
  return t;
}

export function rand(shape: number[], lo = 0, hi = 1, rng: Rng = defaultRng): Tensor {
  const t = empty(shape);
  const d = t.data;
  for (let i = 0; i < t.size; i++) d[i] = lo + (hi - lo) * rng.uniform();
  return t;
}

/** A contiguous copy (same dtype), without autograd. */
export function copyRaw(t: Tensor): Tensor {
  const out = empty([...t.shape], t.dtype);
  if (t.dtype === "int32") {
    out.ids.set(t.toArray() as Int32Array);
  } else if (t.isContiguous()) {
    out.data.set(t.data.subarray(0, t.size));
  } else {
    backend.copyStrided(t.shape, t.strides, t.data, out.data);
  }
  return out;
}
