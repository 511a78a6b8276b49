/** Shape arithmetic and the error type every op throws on bad input. */

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShapeError";
  }
}

export const fmt = (shape: readonly number[]): string => `[${shape.join(",")}]`;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function checkShape(op: string, shape: readonly number[]): number[] {
  if (!Array.isArray(shape)) throw new ShapeError(`${op}: shape must be an array of integers, got ${String(shape)}`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${op}: invalid shape ${fmt(shape)}: dims must be non-negative integers`);
  }
  return [...shape];
}

/** Broadcast two shapes NumPy-style; throws naming the op and both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: a${fmt(a)} and b${fmt(b)} do not broadcast: dim ${i - n} is ${da} vs ${db}, expected equal or 1`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of a contiguous tensor of `shape` viewed in the broadcast space `out` (0 on broadcast dims). */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own = contiguousStrides(shape);
  const strides = new Array<number>(out.length).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const j = out.length - shape.length + i;
    strides[j] = shape[i] === 1 ? 0 : own[i];
  }
  return strides;
}

/**
 * Resolves a possibly negative axis of a tensor of `shape` (or of `ndim` dims). As in
 * PyTorch, a 0-d tensor has one axis to reduce over: 0 or -1.
 */
export function normAxis(op: string, axis: number, shape: number | readonly number[]): number {
  const ndim = typeof shape === "number" ? shape : shape.length;
  const n = Math.max(ndim, 1);
  if (!Number.isInteger(axis) || axis < -n || axis >= n) {
    const what = typeof shape === "number" ? `a tensor of ${ndim} dims` : `tensor${fmt(shape)}`;
    throw new ShapeError(`${op}: axis ${axis} is out of range for ${what}`);
  }
  return axis < 0 ? axis + n : axis;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
