/** Helpers shared by the op files. */
import type { Kernels } from "../../native/index.js";
import { type Device, cpu } from "../device.js";
import { ShapeError, fmt } from "../shape.js";
import { Tensor, copyRaw } from "../tensor.js";

/**
 * The kernel table of the one device all operands live on. `names` labels the operands
 * ("a,b") so a mismatch says which tensor is where.
 */
export function kernelsOf(op: string, names: string, a: Tensor, b?: Tensor | null, c?: Tensor | null, d?: Tensor | null): Kernels {
  const dev = a.device;
  if ((b == null || b.device === dev) && (c == null || c.device === dev) && (d == null || d.device === dev)) return dev.kernels;
  const labels = names.split(",");
  const parts = [a, b, c, d].map((t, i) => (t == null ? "" : `${labels[i] ?? `#${i}`}${fmt(t.shape)} on ${t.device.name}`)).filter((p) => p !== "");
  throw new Error(`${op}: operands are on different devices: ${parts.join(", ")}; move them to one device with .to(device)`);
}

/** Refuses tensors off the CPU in ops that have no device kernels yet (inference-only helpers). */
export function hostOnly(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.device !== cpu) throw new Error(`${op}: runs on the CPU only; tensor${fmt(t.shape)} is on ${t.device.name} (move it with .toHost())`);
  }
}

/** `t` itself if contiguous, else a contiguous copy (added to `saved` so the node releases it). */
export function dense(t: Tensor, saved?: Tensor[]): Tensor {
  if (t.isContiguous()) return t;
  const c = copyRaw(t);
  if (saved) saved.push(c);
  return c;
}

export function expectFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: expected a Tensor, got ${typeof t}`);
    if (t.dtype !== "float32") throw new TypeError(`${op}: expected a float32 tensor, got ${t.dtype}${fmt(t.shape)}`);
  }
}

export function expectInt(op: string, t: Tensor, what: string): void {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: ${what} must be a Tensor, got ${typeof t}`);
  if (t.dtype !== "int32") throw new TypeError(`${op}: ${what} must be int32, got ${t.dtype}${fmt(t.shape)}`);
}

export function expectNdim(op: string, t: Tensor, what: string, min: number, max = Infinity): void {
  if (t.ndim < min || t.ndim > max) {
    const want = max === Infinity ? `at least ${min}` : min === max ? `${min}` : `${min}..${max}`;
    throw new ShapeError(`${op}: ${what}${fmt(t.shape)} has ${t.ndim} dims, expected ${want}`);
  }
}

/**
 * Where a backward can write a leaf's gradient directly: the leaf's `.grad`
 * (allocated as zeros on first use). Null for non-leaves, which need a fresh tensor.
 */
export function gradSink(t: Tensor, zeros: (shape: number[], on: Device) => Tensor): Tensor | null {
  if (!t.requiresGrad || t.node !== null) return null;
  if (t.grad === null) t.grad = zeros([...t.shape], t.device);
  return t.grad;
}
