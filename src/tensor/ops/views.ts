/**
 * Shape ops. reshape, transpose, permute and slice return views that share storage
 * when the layout allows (no copy); their backward maps the gradient back to the
 * input's shape.
 */
import { record } from "../autograd.js";
import { ShapeError, contiguousStrides, fmt, normAxis, numel } from "../shape.js";
import { Tensor, copyElements, copyRaw, empty, f32, zeros } from "../tensor.js";
import { kernelsOf } from "./util.js";

export function reshape(x: Tensor, shape: number[]): Tensor {
  const dims = [...shape];
  const free = dims.indexOf(-1);
  if (free !== dims.lastIndexOf(-1)) throw new ShapeError(`reshape: ${fmt(shape)} has more than one -1`);
  if (free >= 0) {
    const known = numel(dims.filter((_, i) => i !== free));
    if (known === 0 || x.size % known !== 0) {
      throw new ShapeError(`reshape: cannot reshape tensor${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}`);
    }
    dims[free] = x.size / known;
  }
  for (const d of dims) if (!Number.isInteger(d) || d < 0) throw new ShapeError(`reshape: invalid target shape ${fmt(shape)}`);
  if (numel(dims) !== x.size) {
    throw new ShapeError(`reshape: tensor${fmt(x.shape)} has ${x.size} elements, target ${fmt(shape)} has ${numel(dims)}`);
  }
  const base = x.isContiguous() ? x : copyRaw(x);
  const out = base.viewRaw(dims, contiguousStrides(dims), base.offset);
  if (base !== x) base.release();
  return record("reshape", [x], out, (g) => [g.viewRaw([...x.shape], contiguousStrides(x.shape), g.offset)]);
}

export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.size]);
}

export function permute(x: Tensor, dims: number[]): Tensor {
  if (dims.length !== x.ndim) throw new ShapeError(`permute: got ${dims.length} dims ${fmt(dims)} for tensor${fmt(x.shape)}`);
  const axes = dims.map((d) => normAxis("permute", d, x.shape));
  if (new Set(axes).size !== axes.length) throw new ShapeError(`permute: ${fmt(dims)} repeats an axis`);
  const out = x.viewRaw(axes.map((a) => x.shape[a]), axes.map((a) => x.strides[a]), x.offset);
  return record("permute", [x], out, (g) => {
    // g has the permuted shape (contiguous); view it with inverse-permuted strides and copy.
    const gs = contiguousStrides(g.shape);
    const inv = new Array<number>(x.ndim);
    axes.forEach((a, i) => (inv[a] = i));
    const gx = empty([...x.shape], "float32", x.device);
    x.device.kernels.copyStrided(x.shape, inv.map((i) => gs[i]), f32(g), f32(gx));
    return [gx];
  });
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const i = normAxis("transpose", a, x.shape);
  const j = normAxis("transpose", b, x.shape);
  const dims = x.shape.map((_, k) => k);
  dims[i] = j;
  dims[j] = i;
  return permute(x, dims);
}

/** Elements [start, end) along `axis` (a view). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  if (x.ndim === 0) throw new ShapeError(`slice: tensor${fmt(x.shape)} has no axis to slice`);
  const ax = normAxis("slice", axis, x.shape);
  const n = x.shape[ax];
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > n || start > end) {
    throw new ShapeError(`slice: [${start}, ${end}) is out of range for axis ${axis} of tensor${fmt(x.shape)} (size ${n})`);
  }
  const shape = [...x.shape];
  shape[ax] = end - start;
  const out = x.viewRaw(shape, [...x.strides], x.offset + start * x.strides[ax]);
  return record("slice", [x], out, (g) => {
    const gx = zeros([...x.shape], x.device);
    const outer = numel(x.shape.slice(0, ax));
    const inner = numel(x.shape.slice(ax + 1));
    const chunk = (end - start) * inner;
    for (let o = 0; o < outer; o++) copyElements(g, o * chunk, gx, (o * n + start) * inner, chunk);
    return [gx];
  });
}

export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous()) return x;
  const out = copyRaw(x);
  return record("contiguous", [x], out, (g) => [g]);
}

/** Concatenates along `axis`. */
export function cat(xs: Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError("cat: needs at least one tensor");
  if (xs[0].ndim === 0) throw new ShapeError(`cat: tensor${fmt(xs[0].shape)} has no axis to concatenate along`);
  const ax = normAxis("cat", axis, xs[0].shape);
  for (const t of xs) {
    if (t.dtype !== xs[0].dtype) {
      throw new TypeError(`cat: tensor ${t.dtype}${fmt(t.shape)} does not match ${xs[0].dtype}${fmt(xs[0].shape)}: expected one dtype`);
    }
    if (t.ndim !== xs[0].ndim || t.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])) {
      throw new ShapeError(`cat: tensor${fmt(t.shape)} does not match ${fmt(xs[0].shape)} outside axis ${axis}`);
    }
  }
  const shape = [...xs[0].shape];
  shape[ax] = xs.reduce((s, t) => s + t.shape[ax], 0);
  for (const t of xs) if (t.device !== xs[0].device) kernelsOf("cat", "xs[0],tensor", xs[0], t);
  const out = empty(shape, xs[0].dtype, xs[0].device);
  const outer = numel(shape.slice(0, ax));
  const inner = numel(shape.slice(ax + 1));
  const row = shape[ax] * inner;
  let at = 0;
  for (const t of xs) {
    const src = copyRaw(t);
    const chunk = t.shape[ax] * inner;
    for (let o = 0; o < outer; o++) copyElements(src, o * chunk, out, o * row + at, chunk);
    src.release();
    at += chunk;
  }
  return record("cat", xs, out, (g) => {
    let off = 0;
    return xs.map((t) => {
      const chunk = t.shape[ax] * inner;
      const gx = empty([...t.shape], "float32", t.device);
      for (let o = 0; o < outer; o++) copyElements(g, o * row + off, gx, o * chunk, chunk);
      off += chunk;
      return gx;
    });
  });
}
