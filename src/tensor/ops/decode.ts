/**
 * Inference-only ops for decoding and multi-adapter batches. They write into caller-owned
 * tensors (a KV cache, a layer's output) and record nothing on the autograd tape, so they
 * refuse inputs that need gradients.
 *
 *   cachedAttention  qkv [..., N, 3C] -> [..., N, C]: each segment of rows appends its keys and
 *                    values to its own cache [cap, C] and attends causally over cache[0, past + count)
 *   lowRankUpdate    y[rows] += scale · (x[rows] @ A) @ B   A [in, r], B [r, out]  (LoRA deltas in place)
 *
 * Legend: N packed rows, C channels, NH heads, HS head size, cap cache capacity, r rank.
 * Kernels: native/src/kernels/{attention,gemm}.inc.
 */
import { backend } from "../../native/index.js";
import { needsGrad } from "../autograd.js";
import { ShapeError, fmt } from "../shape.js";
import { Tensor, empty } from "../tensor.js";
import { expectFloat, hostOnly } from "./util.js";

/** One sequence's rows in a packed batch and its key/value cache for the layer being run. */
export interface CacheSegment {
  /** Rows [start, start + count) of the packed qkv. */
  start: number;
  count: number;
  /** Positions already in the cache: the rows sit at positions [past, past + count). */
  past: number;
  /** [cap, C] or [1, cap, C], contiguous float32. */
  keys: Tensor;
  values: Tensor;
}

function rowsOf(op: string, x: Tensor, width: number, what: string): number {
  if (x.ndim < 2 || x.shape[x.ndim - 1] !== width) {
    throw new ShapeError(`${op}: ${what}${fmt(x.shape)}: expected [..., rows, ${width}]`);
  }
  if (!x.isContiguous()) throw new ShapeError(`${op}: ${what}${fmt(x.shape)} must be contiguous`);
  return x.size / width;
}

function noTape(op: string, ...ts: Tensor[]): void {
  if (needsGrad(...ts)) throw new Error(`${op}: inference-only op got a tensor that requires grad; run it under noGrad`);
}

function cacheRows(op: string, t: Tensor, C: number, what: string): number {
  const ok = (t.ndim === 2 || (t.ndim === 3 && t.shape[0] === 1)) && t.shape[t.ndim - 1] === C && t.isContiguous();
  if (!ok) throw new ShapeError(`${op}: ${what}${fmt(t.shape)}: expected a contiguous [cap, ${C}] (or [1, cap, ${C}]) cache`);
  return t.shape[t.ndim - 2];
}

/** Causal attention of packed rows, each segment over its own KV cache (which it extends). */
export function cachedAttention(qkv: Tensor, nHead: number, segments: readonly CacheSegment[]): Tensor {
  const op = "cachedAttention";
  expectFloat(op, qkv);
  hostOnly(op, qkv);
  noTape(op, qkv);
  if (qkv.ndim < 2 || qkv.shape[qkv.ndim - 1] % 3 !== 0) throw new ShapeError(`${op}: qkv${fmt(qkv.shape)}: expected [..., N, 3*C]`);
  const C = qkv.shape[qkv.ndim - 1] / 3;
  if (!Number.isInteger(nHead) || nHead < 1 || C % nHead !== 0) throw new ShapeError(`${op}: C=${C} is not divisible by nHead=${nHead}`);
  const N = rowsOf(op, qkv, 3 * C, "qkv");
  const HS = C / nHead;
  let next = 0;
  for (const s of segments) {
    if (!(Number.isInteger(s.start) && Number.isInteger(s.count) && Number.isInteger(s.past)) || s.count < 1 || s.past < 0 || s.start !== next) {
      throw new RangeError(`${op}: segment {start ${s.start}, count ${s.count}, past ${s.past}}: segments must cover rows 0..${N - 1} in order, each with count >= 1 and past >= 0`);
    }
    next += s.count;
    expectFloat(op, s.keys, s.values);
    const cap = cacheRows(op, s.keys, C, "keys");
    if (cacheRows(op, s.values, C, "values") !== cap) throw new ShapeError(`${op}: keys${fmt(s.keys.shape)} and values${fmt(s.values.shape)} differ`);
    if (s.past + s.count > cap) throw new RangeError(`${op}: ${s.past + s.count} positions exceed the cache capacity ${cap}`);
  }
  if (next !== N) throw new RangeError(`${op}: segments cover ${next} rows, qkv has ${N}`);
  const out = empty([...qkv.shape.slice(0, -1), C]);
  const qd = qkv.data, od = out.data;
  const scale = 1 / Math.sqrt(HS);
  for (const s of segments) {
    const kc = s.keys.data, vc = s.values.data;
    for (let j = 0; j < s.count; j++) {
      const row = (s.start + j) * 3 * C;
      kc.set(qd.subarray(row + C, row + 2 * C), (s.past + j) * C);
      vc.set(qd.subarray(row + 2 * C, row + 3 * C), (s.past + j) * C);
    }
    const cap = s.keys.shape[s.keys.ndim - 2] * C;
    backend.attentionForward([1, s.count, s.past + s.count, nHead, HS], scale, true, qd.subarray(s.start * 3 * C), s.count * 3 * C, 3 * C,
      kc, cap, C, vc, cap, C, od.subarray(s.start * C), s.count * C, C, null);
  }
  return out;
}

/** y[start, start + count) += scale · (x[same rows] @ A) @ B, in place; returns y. */
export function lowRankUpdate(y: Tensor, x: Tensor, A: Tensor, B: Tensor, scale: number, start: number, count: number): Tensor {
  const op = "lowRankUpdate";
  expectFloat(op, y, x, A, B);
  hostOnly(op, y, x, A, B);
  noTape(op, y, x, A, B);
  if (A.ndim !== 2 || B.ndim !== 2 || A.shape[1] !== B.shape[0] || !A.isContiguous() || !B.isContiguous()) {
    throw new ShapeError(`${op}: A${fmt(A.shape)}, B${fmt(B.shape)}: expected contiguous A [in, r] and B [r, out]`);
  }
  const [inF, r] = A.shape, outF = B.shape[1];
  const n = rowsOf(op, x, inF, "x"), m = rowsOf(op, y, outF, "y");
  if (n !== m) throw new ShapeError(`${op}: x${fmt(x.shape)} has ${n} rows, y${fmt(y.shape)} has ${m}`);
  if (!(Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= n)) {
    throw new RangeError(`${op}: rows [${start}, ${start + count}) outside [0, ${n})`);
  }
  if (!Number.isFinite(scale)) throw new RangeError(`${op}: scale must be finite, got ${scale}`);
  if (count === 0) return y;
  const h = new Float32Array(count * r);
  backend.gemm(false, false, count, r, inF, 1, scale, 0, x.data.subarray(start * inF), inF, 0, A.data, r, 0, h, r, 0);
  backend.gemm(false, false, count, outF, r, 1, 1, 1, h, r, 0, B.data, outF, 0, y.data.subarray(start * outF), outF, 0);
  return y;
}
