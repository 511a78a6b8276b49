/**
 * Matrix products on the packed GEMM kernel (native/src/kernels/gemm.inc).
 * Transposed views are passed to the kernel as transpose flags, never copied:
 * `matmul(x, transpose(wte))` (a tied LM head) reads wte in place.
 *
 *   matmul  a[..., M, K] @ b[..., K, N] -> [..., M, N]   (b may be 2-D and shared by every batch)
 *   linear  x[..., in] @ W + bias, W stored [in, out] (GPT-2 Conv1D) or [out, in] (nn.Linear)
 *
 * Under withPrecision("bf16") every product here, forward and backward, runs on bf16 operands
 * with float32 accumulation (precision.ts); the backward uses the precision of its forward.
 */
import { record } from "../autograd.js";
import { ShapeError, fmt, numel, sameShape } from "../shape.js";
import { Tensor, copyRaw, empty, f32, zeros } from "../tensor.js";
import { expectFloat, gradSink, kernelsOf } from "./util.js";
import { precision } from "../precision.js";
import type { Kernels } from "../../native/index.js";

/** The GEMM of the current precision (precision.ts) in a device's kernel table; bf16 has no fused column sums. */
function gemmKernel(k: Kernels): Kernels["gemm"] {
  return precision() === "bf16" ? k.gemmBf16 : k.gemm;
}

/** How GEMM reads a tensor's last two dims: as stored, or transposed. */
interface MatView {
  t: Tensor; // the tensor whose data is read (x itself, or a contiguous copy)
  trans: boolean;
  ld: number;
  batchStride: number;
  copied: boolean;
}

function matView(x: Tensor, batch: number): MatView {
  const n = x.ndim;
  const rows = x.shape[n - 2], cols = x.shape[n - 1];
  const sr = x.strides[n - 2], sc = x.strides[n - 1];
  // Batch dims must flatten to one stride.
  let batchStride = rows * cols;
  let uniform = true;
  if (n > 2) {
    batchStride = x.strides[n - 3];
    let expect = batchStride;
    for (let d = n - 3; d >= 0; d--) {
      if (x.shape[d] !== 1 && x.strides[d] !== expect) uniform = false;
      expect *= x.shape[d];
    }
    if (batch === 1) batchStride = 0;
  }
  if (uniform && (sc === 1 || cols === 1) && sr >= cols) return { t: x, trans: false, ld: Math.max(sr, cols), batchStride, copied: false };
  if (uniform && (sr === 1 || rows === 1) && sc >= rows) return { t: x, trans: true, ld: Math.max(sc, rows), batchStride, copied: false };
  const c = copyRaw(x);
  return { t: c, trans: false, ld: cols, batchStride: rows * cols, copied: true };
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  expectFloat("matmul", a, b);
  if (a.ndim < 2 || b.ndim < 2) {
    throw new ShapeError(`matmul: a${fmt(a.shape)} @ b${fmt(b.shape)}: expected both to have at least 2 dims`);
  }
  const M = a.shape[a.ndim - 2], K = a.shape[a.ndim - 1];
  const K2 = b.shape[b.ndim - 2], N = b.shape[b.ndim - 1];
  if (K !== K2) throw new ShapeError(`matmul: a${fmt(a.shape)} @ b${fmt(b.shape)}: expected a.shape[-1] == b.shape[-2]`);
  const batchShape = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const shared = b.ndim === 2;
  if (!shared && !sameShape(batchShape, bBatch)) {
    throw new ShapeError(`matmul: a${fmt(a.shape)} @ b${fmt(b.shape)}: batch dims ${fmt(batchShape)} vs ${fmt(bBatch)}, expected equal (or b 2-D)`);
  }
  const k = kernelsOf("matmul", "a,b", a, b);
  const dev = a.device;
  const batch = numel(batchShape);
  const va = matView(a, batch);
  const vb = matView(b, shared ? 1 : batch);
  const sB = shared ? 0 : vb.batchStride;
  const out = empty([...batchShape, M, N], "float32", dev);
  // A 2-D b shared by row-major batches of a is one tall GEMM: fold the batch into M.
  const fold = shared && batch > 1 && !va.trans && va.ld === K && va.batchStride === M * K;
  const [foldM, foldBatch] = fold ? [M * batch, 1] : [M, batch];
  const gemm = gemmKernel(k);
  gemm(va.trans, vb.trans, foldM, N, K, foldBatch, 1, 0, f32(va.t), va.ld, va.batchStride, f32(vb.t), vb.ld, sB, f32(out), N, M * N);
  const saved = [va, vb].filter((v) => v.copied).map((v) => v.t);
  return record("matmul", [a, b], out, (g) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = g @ op(B)^T
      ga = empty([...a.shape], "float32", dev);
      gemm(false, !vb.trans, foldM, K, N, foldBatch, 1, 0, f32(g), N, M * N, f32(vb.t), vb.ld, sB, f32(ga), K, M * K);
    }
    if (b.requiresGrad) {
      // dB = op(A)^T @ g, summed over the batch when b is shared
      const sink = gradSink(b, zeros);
      const target = sink ?? zeros([...b.shape], dev);
      if (shared) {
        if (!va.trans && (batch === 1 || va.batchStride === M * va.ld)) {
          gemm(true, false, K, N, M * batch, 1, 1, 1, f32(va.t), va.ld, 0, f32(g), N, 0, f32(target), N, 0);
        } else {
          for (let i = 0; i < batch; i++) {
            gemm(!va.trans, false, K, N, M, 1, 1, 1, f32(va.t, i * va.batchStride), va.ld, 0,
              f32(g, i * M * N), N, 0, f32(target), N, 0);
          }
        }
      } else {
        gemm(!va.trans, false, K, N, M, batch, 1, 1, f32(va.t), va.ld, va.batchStride, f32(g), N, M * N, f32(target), N, K * N);
      }
      gb = sink === null ? target : null;
    }
    return [ga, gb];
  }, saved);
}

export type WeightLayout = "in_out" | "out_in";

/** x[..., in] -> [..., out] with weight [in, out] ("in_out", GPT-2 Conv1D) or [out, in] ("out_in", nn.Linear). */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, layout: WeightLayout = "in_out"): Tensor {
  expectFloat("linear", x, weight);
  if (layout !== "in_out" && layout !== "out_in") throw new TypeError(`linear: layout "${layout}", expected "in_out" or "out_in"`);
  if (weight.ndim !== 2) throw new ShapeError(`linear: weight${fmt(weight.shape)} must be 2-D`);
  const [inF, outF] = layout === "in_out" ? weight.shape : [weight.shape[1], weight.shape[0]];
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== inF) {
    throw new ShapeError(`linear: x${fmt(x.shape)} @ weight${fmt(weight.shape)} (${layout}): expected x.shape[-1] == ${inF}`);
  }
  if (bias !== null) {
    expectFloat("linear", bias);
    if (bias.ndim !== 1 || bias.shape[0] !== outF) throw new ShapeError(`linear: bias${fmt(bias.shape)}, expected [${outF}]`);
  }
  if (!weight.isContiguous() || (bias !== null && !bias.isContiguous())) {
    throw new ShapeError("linear: weight and bias must be contiguous (parameters are)");
  }
  const k = kernelsOf("linear", "x,weight,bias", x, weight, bias);
  const dev = x.device;
  const saved: Tensor[] = [];
  const cx = x.isContiguous() ? x : copyRaw(x);
  if (cx !== x) saved.push(cx);
  const rows = x.size / inF;
  const tw = layout === "out_in";
  const out = empty([...x.shape.slice(0, -1), outF], "float32", dev);
  // The bias is added in the GEMM's epilogue (no separate broadcast pass over the output).
  const gemm = gemmKernel(k), bf16 = gemm !== k.gemm;
  gemm(false, tw, rows, outF, inF, 1, 1, 0, f32(cx), inF, 0, f32(weight), tw ? inF : outF, 0, f32(out), outF, 0,
    bias === null ? null : f32(bias));
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  return record("linear", inputs, out, (g) => {
    let gx: Tensor | null = null, gw: Tensor | null = null, gbias: Tensor | null = null;
    if (x.requiresGrad) {
      gx = empty([...x.shape], "float32", dev);
      // dx = g @ W^T
      gemm(false, !tw, rows, inF, outF, 1, 1, 0, f32(g), outF, 0, f32(weight), tw ? inF : outF, 0, f32(gx), inF, 0);
    }
    if (weight.requiresGrad) {
      const sink = gradSink(weight, zeros);
      const target = sink ?? zeros([...weight.shape], dev);
      if (tw) gemm(true, false, outF, inF, rows, 1, 1, 1, f32(g), outF, 0, f32(cx), inF, 0, f32(target), inF, 0);
      else {
        // dW = x^T @ g packs g as op(B): the bias gradient (g's column sums) comes out of that pass.
        if (bias !== null && bias.requiresGrad && !bf16) gbias = zeros([outF], dev);
        gemm(true, false, inF, outF, rows, 1, 1, 1, f32(cx), inF, 0, f32(g), outF, 0, f32(target), outF, 0,
          null, gbias === null ? null : f32(gbias));
      }
      gw = sink === null ? target : null;
    }
    if (bias !== null && bias.requiresGrad && gbias === null) {
      const sums = empty([outF], "float32", dev);
      k.reduceForward(0, 1, rows, outF, f32(g), f32(sums));
      gbias = sums;
    }
    return [gx, gw, gbias];
  }, saved);
}
