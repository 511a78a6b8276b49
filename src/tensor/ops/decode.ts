/**
 * Inference-only ops for decoding and multi-adapter batches. They write into caller-owned
 * tensors (a KV cache, a layer's output) and record nothing on the autograd tape, so they
 * refuse inputs that need gradients.
 *
 *   cachedAttention  qkv [..., N, 3C] -> [..., N, C]: each segment of rows appends its keys and
 *                    values to its own cache [cap, C] and attends causally over cache[0, past + count)
 *   lowRankUpdate    y[rows] += scale · (x[rows] @ A) @ B   A [in, r], B [r, out]  (LoRA deltas in place)
 *   decodeBlock(s)   x [N, C] -> [N, C]: one GPT-2 block (or a stack of them) (LN -> QKV -> attention over each segment's
 *                    cache -> projection -> residual -> LN -> MLP -> residual) in one native call,
 *                    the linears' weights float32 (read in place) or packed bf16/int8
 *   streamLinear     x [..., in] @ W (+ bias) with a float32 W read in place, for few rows (LM head)
 *
 * Legend: N packed rows, C channels, NH heads, HS head size, cap cache capacity, r rank.
 * Kernels: native/src/kernels/{attention,gemm,lowp}.inc (decodeBlock, streamLinear: lowp.inc).
 */
import { type DecodeLinearArgs, backend } from "../../native/index.js";
import { needsGrad } from "../autograd.js";
import { ShapeError, fmt } from "../shape.js";
import { Tensor, empty } from "../tensor.js";
import { expectFloat, hostOnly } from "./util.js";
import type { WeightLayout } from "./matmul.js";
import { PackedWeight } from "./packed.js";

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

/** Segments must cover rows 0..N-1 in order, each within its [cap, C] cache. */
function checkSegments(op: string, N: number, C: number, segments: readonly CacheSegment[]): void {
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
  checkSegments(op, N, C, segments);
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

/** A linear layer as a decode step reads it: its float32 weight (in place) unless packed. */
export interface DecodeLinear {
  weight: Tensor;
  layout: WeightLayout;
  bias: Tensor | null;
  packed: PackedWeight | null;
  inFeatures: number;
  outFeatures: number;
}

/** One GPT-2 (pre-LayerNorm) block's parameters for decodeBlock. */
export interface DecodeBlockWeights {
  nHead: number;
  eps: number;
  ln1: { weight: Tensor; bias: Tensor };
  ln2: { weight: Tensor; bias: Tensor };
  attn: DecodeLinear;
  proj: DecodeLinear;
  fc: DecodeLinear;
  mlpProj: DecodeLinear;
}

// The binding's view of each linear, kept while its weight, bias and packing stay the same
// objects (decoding calls every block once per token).
const argsCache = new WeakMap<DecodeLinear, { weight: Float32Array; bias: Float32Array | null; packed: PackedWeight | null; layout: WeightLayout; args: DecodeLinearArgs }>();

function linearArgs(op: string, what: string, l: DecodeLinear, inF: number, outF: number): DecodeLinearArgs {
  const c = argsCache.get(l);
  const weight = l.weight.data, bias = l.bias === null ? null : l.bias.data;
  if (c !== undefined && c.weight === weight && c.bias === bias && c.packed === l.packed && c.layout === l.layout) return c.args;
  const args = buildLinearArgs(op, what, l, inF, outF);
  argsCache.set(l, { weight, bias, packed: l.packed, layout: l.layout, args });
  return args;
}

function buildLinearArgs(op: string, what: string, l: DecodeLinear, inF: number, outF: number): DecodeLinearArgs {
  if (l.inFeatures !== inF || l.outFeatures !== outF) throw new ShapeError(`${op}: ${what} maps ${l.inFeatures} -> ${l.outFeatures}, expected ${inF} -> ${outF}`);
  expectFloat(op, l.weight);
  const bias = l.bias === null ? null : l.bias.data;
  if (l.bias !== null && (l.bias.size !== outF || !l.bias.isContiguous())) throw new ShapeError(`${op}: ${what} bias${fmt(l.bias.shape)}, expected a contiguous [${outF}]`);
  const p = l.packed;
  if (p !== null) {
    if (!(p instanceof PackedWeight) || p.inFeatures !== inF || p.outFeatures !== outF) throw new ShapeError(`${op}: ${what}'s packed weight does not match ${inF} -> ${outF}`);
    return p.format === "bf16" ? { format: 1, words: p.words!, bias } : { format: 2, bytes: p.bytes!, scales: p.scales!, wsum: p.wsum!, bias };
  }
  const want = l.layout === "in_out" ? [inF, outF] : [outF, inF];
  if (l.weight.ndim !== 2 || l.weight.shape[0] !== want[0] || l.weight.shape[1] !== want[1] || !l.weight.isContiguous()) {
    throw new ShapeError(`${op}: ${what} weight${fmt(l.weight.shape)}, expected a contiguous ${fmt(want)} (${l.layout})`);
  }
  return { format: 0, w: l.weight.data, inOut: l.layout === "in_out", bias };
}

/** One sequence's rows in decodeBlocks: its caches at every layer. */
export interface LayeredSegment {
  start: number;
  count: number;
  past: number;
  keys: readonly Tensor[];
  values: readonly Tensor[];
}

/**
 * A stack of GPT-2 blocks for the packed rows of a decoding step, one native call per block on
 * one copy of x: x [N, C] (or [1, N, C]) -> the last block's output (as decodeBlock, block by
 * block; segments give each sequence's cache at every layer).
 */
export function decodeBlocks(x: Tensor, blocks: readonly DecodeBlockWeights[], segments: readonly LayeredSegment[]): Tensor {
  const op = "decodeBlocks";
  expectFloat(op, x);
  hostOnly(op, x);
  noTape(op, x);
  if (blocks.length === 0) throw new RangeError(`${op}: no blocks`);
  const C = blocks[0].ln1.weight.size;
  const N = rowsOf(op, x, C, "x");
  const calls = blocks.map((w, l) => {
    const segs = segments.map((s) => {
      if (s.keys.length !== blocks.length || s.values.length !== blocks.length) throw new RangeError(`${op}: a segment has caches for ${s.keys.length} layers, the stack has ${blocks.length}`);
      return { start: s.start, count: s.count, past: s.past, keys: s.keys[l], values: s.values[l] };
    });
    return blockCall(op, N, w, segs, C);
  });
  const out = empty(x.shape);
  out.data.set(x.data.subarray(0, x.size));
  for (const c of calls) c(out.data);
  return out;
}

// Validates one block's weights and segments; returns the native call on a given x.
function blockCall(op: string, N: number, w: DecodeBlockWeights, segments: readonly CacheSegment[], C0: number): (x: Float32Array) => void {
  expectFloat(op, w.ln1.weight, w.ln1.bias, w.ln2.weight, w.ln2.bias);
  hostOnly(op, w.ln1.weight, w.attn.weight, w.proj.weight, w.fc.weight, w.mlpProj.weight);
  noTape(op, w.ln1.weight, w.ln1.bias, w.ln2.weight, w.ln2.bias, w.attn.weight, w.proj.weight, w.fc.weight, w.mlpProj.weight);
  const C = w.ln1.weight.size, F = w.fc.outFeatures;
  if (C !== C0) throw new ShapeError(`${op}: a block of width ${C} in a stack of width ${C0}`);
  if (!Number.isInteger(w.nHead) || w.nHead < 1 || C % w.nHead !== 0) throw new ShapeError(`${op}: C=${C} is not divisible by nHead=${w.nHead}`);
  if (!(w.eps > 0) || !Number.isFinite(w.eps)) throw new RangeError(`${op}: eps must be a positive number, got ${w.eps}`);
  for (const [name, t] of [["ln1 weight", w.ln1.weight], ["ln1 bias", w.ln1.bias], ["ln2 weight", w.ln2.weight], ["ln2 bias", w.ln2.bias]] as const) {
    if (t.size !== C || !t.isContiguous()) throw new ShapeError(`${op}: ${name}${fmt(t.shape)}, expected a contiguous [${C}]`);
  }
  checkSegments(op, N, C, segments);
  const weights = [linearArgs(op, "attn", w.attn, C, 3 * C), linearArgs(op, "proj", w.proj, C, C), linearArgs(op, "fc", w.fc, C, F), linearArgs(op, "mlpProj", w.mlpProj, F, C)];
  const counts = segments.map((s) => s.count), pasts = segments.map((s) => s.past);
  const keys = segments.map((s) => s.keys.data), values = segments.map((s) => s.values.data);
  const l1w = w.ln1.weight.data, l1b = w.ln1.bias.data, l2w = w.ln2.weight.data, l2b = w.ln2.bias.data;
  return (x) => backend.decodeLayer(N, C, w.nHead, F, w.eps, x, l1w, l1b, l2w, l2b, weights, counts, pasts, keys, values);
}

/**
 * One GPT-2 block for the packed rows of a decoding step: x [N, C] (or [1, N, C]) -> a new
 * tensor of x's shape, each segment's rows appending their keys and values to its cache and
 * attending over it (as cachedAttention). Inference only; the caches' lengths are the caller's.
 */
export function decodeBlock(x: Tensor, w: DecodeBlockWeights, segments: readonly CacheSegment[]): Tensor {
  const op = "decodeBlock";
  expectFloat(op, x, w.ln1.weight);
  hostOnly(op, x);
  noTape(op, x);
  const C = w.ln1.weight.size;
  const call = blockCall(op, rowsOf(op, x, C, "x"), w, segments, C);
  const out = empty(x.shape);
  out.data.set(x.data.subarray(0, x.size));
  call(out.data);
  return out;
}

/** x[..., in] @ W (+ bias) -> [..., out], W float32 [in, out] ("in_out") or [out, in] read in place; inference only. */
export function streamLinear(x: Tensor, weight: Tensor, bias: Tensor | null, layout: WeightLayout): Tensor {
  const op = "streamLinear";
  expectFloat(op, x, weight);
  hostOnly(op, x, weight);
  noTape(op, x, weight, ...(bias === null ? [] : [bias]));
  if (weight.ndim !== 2 || !weight.isContiguous()) throw new ShapeError(`${op}: weight${fmt(weight.shape)} must be a contiguous 2-D tensor`);
  if (layout !== "in_out" && layout !== "out_in") throw new TypeError(`${op}: layout "${layout}", expected "in_out" or "out_in"`);
  const [K, N] = layout === "in_out" ? weight.shape : [weight.shape[1], weight.shape[0]];
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== K || !x.isContiguous()) throw new ShapeError(`${op}: x${fmt(x.shape)}: expected a contiguous [..., ${K}]`);
  if (bias !== null) {
    expectFloat(op, bias);
    hostOnly(op, bias);
    if (bias.size !== N || !bias.isContiguous()) throw new ShapeError(`${op}: bias${fmt(bias.shape)}, expected a contiguous [${N}]`);
  }
  const out = empty([...x.shape.slice(0, -1), N]);
  backend.linearF32(x.size / K, N, K, x.data, K, weight.data, layout === "in_out", bias === null ? null : bias.data, out.data, N);
  return out;
}
