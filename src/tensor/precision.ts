/**
 * The precision of matrix products. "fp32" is the default; "bf16" (mixed precision) runs the
 * GEMMs of `matmul` and `linear`, forward and backward, on bf16 operands (rounded to nearest
 * even as the kernel packs them) with float32 accumulation, while every tensor, gradient,
 * optimizer state, LayerNorm, softmax and loss stays float32 (master weights included). AMX
 * tiles (tdpbf16ps) run them where the CPU has them and the kernel grants their state, else the
 * CPU's bf16 dot-product instruction (vdpbf16ps); elsewhere the same products run on float32
 * FMAs (correct, slower): `backend.lowpPath()` says which.
 *
 *     withPrecision("bf16", () => model.loss(ids, targets).backward());
 *
 * The mode is scoped: set it around synchronous work (a training step), not across awaits.
 */
import { backend } from "../native/index.js";

export type Precision = "fp32" | "bf16";

export const PRECISIONS: readonly Precision[] = ["fp32", "bf16"];

let current: Precision = "fp32";

export function precision(): Precision {
  return current;
}

/** Checks a user-given precision name (a CLI flag, a job option). */
export function parsePrecision(value: string, what = "precision"): Precision {
  if (!(PRECISIONS as readonly string[]).includes(value)) {
    throw new RangeError(`${what} "${value}": expected one of ${PRECISIONS.join(", ")}`);
  }
  return value as Precision;
}

/**
 * The precision trainers use when none is given: PLINTH_PRECISION (fp32 or bf16) if set, else
 * fp32. It reaches every trainer (fine-tuning, adaptation jobs in worker processes, CLIP) without
 * a flag of its own; a bad value is an error naming the variable.
 */
export function defaultPrecision(): Precision {
  const env = process.env.PLINTH_PRECISION;
  return env === undefined || env === "" ? "fp32" : parsePrecision(env, "PLINTH_PRECISION");
}

/** Runs fn with matrix products in precision p, then restores the previous mode. */
export function withPrecision<T>(p: Precision, fn: () => T): T {
  parsePrecision(p);
  const prev = current;
  current = p;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** Which instructions run the low-precision products here, in words (plinth info, run headers). */
export function lowpDescription(): string {
  const path = backend.lowpPath();
  if (path === "amx") return "amx: AMX tiles (tdpbf16ps) for bf16 training GEMMs, vdpbf16ps for bf16 weights, vpdpbusd (avx512_vnni) for int8";
  if (path === "avx512_bf16") {
    const why = !backend.lowpAmxSupported() ? "" : " (AMX turned off: PLINTH_LOWP=vnni)";
    return `avx512_bf16: vdpbf16ps for bf16, vpdpbusd (avx512_vnni) for int8${why}`;
  }
  const why = !backend.lowpNativeSupported() ? "this CPU has no avx512_bf16 + avx512_vnni"
    : backend.isa() !== "avx512" ? `the ${backend.isa()} kernels were chosen (PLINTH_ISA)` : "bf16/VNNI instructions turned off (PLINTH_LOWP=emulated)";
  return `${path}: bf16 widened to float32 FMAs, int8 on int32 multiplies (${why}; correct, slower)`;
}
