/**
 * Weights packed once for inference: a linear layer's matrix as bf16 (half the bytes of
 * float32) or int8 (a quarter; symmetric per output channel, the scheme of the ONNX and GGUF
 * exports), in the kernel's 16-column strips (native/src/lowp.h). Decoding reads every weight
 * once per token, so its speed follows these bytes.
 *
 *   PackedWeight.pack(W, layout, "int8")       W [in, out] ("in_out") or [out, in] ("out_in")
 *   packedLinear(x[..., in], packed, bias)     -> [..., out] = x @ W (+ bias)
 *
 * int8 quantizes each row of x on the fly (per-row scale, u8 with a +128 offset for
 * vpdpbusd), so an int8 product differs from float32 by about 1% of its scale; bf16 rounds x
 * to bf16 and sums in float32. Inference only: packedLinear records nothing on the tape.
 */
import { backend } from "../../native/index.js";
import { needsGrad } from "../autograd.js";
import { ShapeError, fmt } from "../shape.js";
import { Tensor, copyRaw, empty } from "../tensor.js";
import { expectFloat } from "./util.js";
import type { WeightLayout } from "./matmul.js";

/** How a model's linear weights are held for inference. */
export type WeightFormat = "fp32" | "bf16" | "int8";
export const WEIGHT_FORMATS: readonly WeightFormat[] = ["fp32", "bf16", "int8"];

export function parseWeightFormat(value: string, what = "weights"): WeightFormat {
  if (!(WEIGHT_FORMATS as readonly string[]).includes(value)) throw new RangeError(`${what} "${value}": expected one of ${WEIGHT_FORMATS.join(", ")}`);
  return value as WeightFormat;
}

export class PackedWeight {
  private constructor(
    readonly format: "bf16" | "int8",
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly words: Uint32Array | null,
    readonly bytes: Int8Array | null,
    readonly scales: Float32Array | null,
    readonly wsum: Int32Array | null,
  ) {}

  /** Packs a float32 weight (read once; later changes to it are not seen). */
  static pack(weight: Tensor, layout: WeightLayout, format: "bf16" | "int8"): PackedWeight {
    expectFloat("PackedWeight.pack", weight);
    if (weight.ndim !== 2) throw new ShapeError(`PackedWeight.pack: weight${fmt(weight.shape)} must be 2-D`);
    if (layout !== "in_out" && layout !== "out_in") throw new TypeError(`PackedWeight.pack: layout "${layout}", expected "in_out" or "out_in"`);
    if (format !== "bf16" && format !== "int8") throw new TypeError(`PackedWeight.pack: format "${format}", expected "bf16" or "int8"`);
    const [K, N] = layout === "in_out" ? weight.shape : [weight.shape[1], weight.shape[0]];
    const w = weight.isContiguous() ? weight : copyRaw(weight);
    const sizes = backend.packedSizes(N, K);
    try {
      if (format === "bf16") {
        const words = new Uint32Array(sizes.bf16Words);
        backend.packBf16(N, K, w.data, layout === "in_out", words);
        return new PackedWeight(format, K, N, words, null, null, null);
      }
      const bytes = new Int8Array(sizes.int8Bytes), scales = new Float32Array(N), wsum = new Int32Array(N);
      backend.packInt8(N, K, w.data, layout === "in_out", bytes, scales, wsum);
      return new PackedWeight(format, K, N, null, bytes, scales, wsum);
    } finally {
      if (w !== weight) w.release();
    }
  }

  /** Bytes read per product (the packed matrix and its scales). */
  get byteLength(): number {
    return this.words !== null ? this.words.byteLength : this.bytes!.byteLength + this.scales!.byteLength + this.wsum!.byteLength;
  }
}

/** x[..., in] @ W (+ bias) -> [..., out] with W packed; inference only (nothing on the tape). */
export function packedLinear(x: Tensor, w: PackedWeight, bias: Tensor | null = null): Tensor {
  const op = "packedLinear";
  expectFloat(op, x);
  if (!(w instanceof PackedWeight)) throw new TypeError(`${op}: expected a PackedWeight`);
  if (needsGrad(x, bias)) throw new Error(`${op}: inference-only op got a tensor that requires grad; run it under noGrad`);
  const K = w.inFeatures, N = w.outFeatures;
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== K) throw new ShapeError(`${op}: x${fmt(x.shape)}: expected [..., ${K}]`);
  if (bias !== null) {
    expectFloat(op, bias);
    if (bias.ndim !== 1 || bias.shape[0] !== N || !bias.isContiguous()) throw new ShapeError(`${op}: bias${fmt(bias.shape)}, expected a contiguous [${N}]`);
  }
  const cx = x.isContiguous() ? x : copyRaw(x);
  const rows = x.size / K;
  const out = empty([...x.shape.slice(0, -1), N]);
  const b = bias === null ? null : bias.data;
  if (w.format === "bf16") backend.linearBf16(rows, N, K, cx.data, K, w.words!, b, out.data, N);
  else backend.linearInt8(rows, N, K, cx.data, K, w.bytes!, w.scales!, w.wsum!, b, out.data, N);
  if (cx !== x) cx.release();
  return out;
}
