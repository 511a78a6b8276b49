/**
 * GGUF v3, the file format of llama.cpp (ggml): a writer and a validating reader.
 *
 *   header       "GGUF" magic, version u32 = 3, tensor count u64, metadata count u64
 *   metadata     key (string), value type u32, value
 *   tensor info  name (string), n_dims u32, dims u64 × n_dims (innermost first), ggml type u32, data offset u64
 *   padding      to `general.alignment` (32)
 *   data         each tensor at its offset from the data start, each offset aligned
 *
 * Strings are a u64 byte length + UTF-8 bytes; arrays are an element type u32, a count u64
 * and the elements. Tensors are F32, F16 or Q8_0 (blocks of 32: an f16 scale d and 32
 * int8 q, value = d·q).
 */
import { writeFileAtomic } from "../io/atomic.js";

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const ALIGNMENT = 32;

export enum GGUFValueType { UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12 }
export enum GGMLType { F32 = 0, F16 = 1, Q8_0 = 8 }

export type GGUFValue =
  | { type: GGUFValueType.UINT32 | GGUFValueType.INT32 | GGUFValueType.FLOAT32 | GGUFValueType.UINT64 | GGUFValueType.UINT8; value: number }
  | { type: GGUFValueType.BOOL; value: boolean }
  | { type: GGUFValueType.STRING; value: string }
  | { type: GGUFValueType.ARRAY; itemType: GGUFValueType.STRING; value: string[] }
  | { type: GGUFValueType.ARRAY; itemType: GGUFValueType.INT32 | GGUFValueType.UINT32 | GGUFValueType.FLOAT32; value: number[] };

export const u32 = (value: number): GGUFValue => ({ type: GGUFValueType.UINT32, value });
export const f32v = (value: number): GGUFValue => ({ type: GGUFValueType.FLOAT32, value });
export const str = (value: string): GGUFValue => ({ type: GGUFValueType.STRING, value });
export const bool = (value: boolean): GGUFValue => ({ type: GGUFValueType.BOOL, value });
export const strings = (value: string[]): GGUFValue => ({ type: GGUFValueType.ARRAY, itemType: GGUFValueType.STRING, value });
export const int32s = (value: number[]): GGUFValue => ({ type: GGUFValueType.ARRAY, itemType: GGUFValueType.INT32, value });

export interface GGUFTensor {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  type: GGMLType;
  /** Encoded bytes (see encodeTensor). */
  data: Uint8Array;
}

/** Float32 → IEEE half (round to nearest even), as a u16. */
export function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >>> 10) & 0x1f, mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Q8_0 blocks of a row-major matrix whose rows have a length divisible by 32. */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % 32 !== 0) throw new RangeError(`quantizeQ8_0: ${values.length} values is not a multiple of the block size 32`);
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i]));
    const d = amax / 127;
    const half = toHalf(d);
    view.setUint16(b * 34, half, true);
    const inv = d > 0 ? 1 / d : 0;
    for (let i = 0; i < 32; i++) view.setInt8(b * 34 + 2 + i, Math.round(values[b * 32 + i] * inv));
  }
  return out;
}

export function dequantizeQ8_0(data: Uint8Array): Float32Array {
  const blocks = data.length / 34;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Float32Array(blocks * 32);
  for (let b = 0; b < blocks; b++) {
    const d = fromHalf(view.getUint16(b * 34, true));
    for (let i = 0; i < 32; i++) out[b * 32 + i] = d * view.getInt8(b * 34 + 2 + i);
  }
  return out;
}

/** A tensor of `type` from float32 values (row-major, innermost dimension dims[0]). */
export function encodeTensor(name: string, dims: number[], values: Float32Array, type: GGMLType): GGUFTensor {
  const n = dims.reduce((a, b) => a * b, 1);
  if (values.length !== n) throw new Error(`gguf: tensor ${name}: ${values.length} values for dims [${dims.join(", ")}]`);
  if (type === GGMLType.Q8_0) {
    if (dims[0] % 32 !== 0) throw new RangeError(`gguf: tensor ${name}: Q8_0 needs rows of a multiple of 32 values, got ${dims[0]}`);
    return { name, dims, type, data: quantizeQ8_0(values) };
  }
  if (type === GGMLType.F16) {
    const h = new Uint16Array(n);
    for (let i = 0; i < n; i++) h[i] = toHalf(values[i]);
    return { name, dims, type, data: new Uint8Array(h.buffer) };
  }
  return { name, dims, type, data: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + n * 4)) };
}

class Out {
  parts: Uint8Array[] = [];
  size = 0;
  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }
  private num(bytes: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(bytes);
    set(new DataView(b.buffer));
    this.push(b);
  }
  u32(v: number): void { this.num(4, (d) => d.setUint32(0, v, true)); }
  i32(v: number): void { this.num(4, (d) => d.setInt32(0, v, true)); }
  u64(v: number): void { this.num(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  f32(v: number): void { this.num(4, (d) => d.setFloat32(0, v, true)); }
  u8(v: number): void { this.num(1, (d) => d.setUint8(0, v)); }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.push(b);
  }
  bytes(b: Uint8Array): void { this.push(b); }
  pad(): void {
    const n = (ALIGNMENT - (this.size % ALIGNMENT)) % ALIGNMENT;
    if (n) this.push(new Uint8Array(n));
  }
}

function writeValue(o: Out, v: GGUFValue): void {
  switch (v.type) {
    case GGUFValueType.UINT32: return o.u32(v.value);
    case GGUFValueType.INT32: return o.i32(v.value);
    case GGUFValueType.FLOAT32: return o.f32(v.value);
    case GGUFValueType.UINT64: return o.u64(v.value);
    case GGUFValueType.UINT8: return o.u8(v.value);
    case GGUFValueType.BOOL: return o.u8(v.value ? 1 : 0);
    case GGUFValueType.STRING: return o.str(v.value);
    case GGUFValueType.ARRAY:
      o.u32(v.itemType);
      o.u64(v.value.length);
      for (const item of v.value) {
        if (v.itemType === GGUFValueType.STRING) o.str(item as string);
        else if (v.itemType === GGUFValueType.INT32) o.i32(item as number);
        else if (v.itemType === GGUFValueType.UINT32) o.u32(item as number);
        else o.f32(item as number);
      }
  }
}

export function encodeGGUF(metadata: Record<string, GGUFValue>, tensors: GGUFTensor[]): Buffer {
  const o = new Out();
  o.u32(GGUF_MAGIC);
  o.u32(3);
  o.u64(tensors.length);
  const kv = { ...metadata, "general.alignment": u32(ALIGNMENT) };
  o.u64(Object.keys(kv).length);
  for (const [k, v] of Object.entries(kv)) {
    o.str(k);
    o.u32(v.type);
    writeValue(o, v);
  }
  let offset = 0;
  for (const t of tensors) {
    o.str(t.name);
    o.u32(t.dims.length);
    for (const d of t.dims) o.u64(d);
    o.u32(t.type);
    o.u64(offset);
    offset += Math.ceil(t.data.length / ALIGNMENT) * ALIGNMENT;
  }
  o.pad();
  for (const t of tensors) {
    o.bytes(t.data);
    o.pad();
  }
  return Buffer.concat(o.parts, o.size);
}

export function saveGGUF(path: string, metadata: Record<string, GGUFValue>, tensors: GGUFTensor[]): void {
  writeFileAtomic(path, encodeGGUF(metadata, tensors));
}
