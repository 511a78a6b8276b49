/**
 * Reader and writer for the safetensors format, independent of any tensor class.
 *
 * Layout of a file:
 *   - 8 bytes: N, the header length, as a little-endian unsigned 64-bit integer;
 *   - N bytes: a UTF-8 JSON object mapping each tensor name to
 *     {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, plus an optional
 *     "__metadata__" entry holding a string-to-string map. We pad the header with spaces
 *     so that the data section starts at an 8-byte aligned offset;
 *   - the data section: each tensor's raw little-endian bytes, row-major, at
 *     [8 + N + begin, 8 + N + end). The tensors must cover the data section exactly,
 *     with no overlaps and no holes.
 */
import { writeFileAtomic } from "./atomic.js";
import { readFileSync } from "node:fs";

export type DType = "F32" | "F16" | "BF16" | "F64" | "I32" | "I64" | "I16" | "I8" | "U8" | "BOOL";

/** A tensor as stored on disk: dtype, shape and raw little-endian bytes. */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** The decoded contents of a safetensors file. */
export interface SafetensorsContents {
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SafetensorsError";
  }
}

const DTYPE_SIZE: Record<DType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8, I16: 2, I8: 1, U8: 1, BOOL: 1 };
const MAX_HEADER = 100_000_000;
const METADATA_KEY = "__metadata__";
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(x: unknown): x is DType {
  return typeof x === "string" && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, x);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Sets an own property, so that a name such as "__proto__" from a file is stored, not interpreted. */
function put<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function wrapTyped(dtype: DType, shape: number[], arr: Float32Array | Int32Array): RawTensor {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || numel(shape) !== arr.length) {
    throw new SafetensorsError(
      `${dtype} tensor of shape [${shape.join(", ")}] needs ${numel(shape)} elements, got ${arr.length}`);
  }
  let data = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  if (!LITTLE_ENDIAN) {
    const dv = new DataView((data = new Uint8Array(arr.byteLength)).buffer);
    arr.forEach((v, i) => (dtype === "F32" ? dv.setFloat32(i * 4, v, true) : dv.setInt32(i * 4, v, true)));
  }
  return { dtype, shape: [...shape], data };
}

/** Wraps a Float32Array as an F32 tensor (a view of its bytes on little-endian hosts). */
export function f32(shape: number[], values: Float32Array): RawTensor {
  return wrapTyped("F32", shape, values);
}

/** Wraps an Int32Array as an I32 tensor (a view of its bytes on little-endian hosts). */
export function i32(shape: number[], values: Int32Array): RawTensor {
  return wrapTyped("I32", shape, values);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);
function bf16ToFloat(h: number): number {
  scratchBits[0] = h << 16; // bfloat16 is the upper half of a float32
  return scratch[0]!;
}

type Reader = (dv: DataView, i: number) => number;
const FLOAT_READERS: Partial<Record<DType, Reader>> = {
  F32: (dv, i) => dv.getFloat32(i * 4, true),
  F16: (dv, i) => halfToFloat(dv.getUint16(i * 2, true)),
  BF16: (dv, i) => bf16ToFloat(dv.getUint16(i * 2, true)),
  F64: (dv, i) => dv.getFloat64(i * 8, true),
};
const INT_READERS: Partial<Record<DType, Reader>> = {
  I32: (dv, i) => dv.getInt32(i * 4, true),
  I64: (dv, i) => {
    const v = dv.getBigInt64(i * 8, true);
    if (v < -2147483648n || v > 2147483647n) {
      throw new SafetensorsError(`cannot convert I64 tensor to int32: element ${i} is ${v}, outside the int32 range`);
    }
    return Number(v);
  },
  I16: (dv, i) => dv.getInt16(i * 2, true),
  I8: (dv, i) => dv.getInt8(i),
  U8: (dv, i) => dv.getUint8(i),
};

function convert<T extends Float32Array | Int32Array>(
  t: RawTensor, readers: Partial<Record<DType, Reader>>, make: (n: number) => T, target: string,
): T {
  const read = readers[t.dtype];
  if (read === undefined) {
    throw new SafetensorsError(`cannot convert a ${t.dtype} tensor to ${target}: expected ${Object.keys(readers).join(", ")}`);
  }
  const n = t.data.byteLength / DTYPE_SIZE[t.dtype];
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = make(n);
  for (let i = 0; i < n; i++) out[i] = read(dv, i);
  return out;
}

/**
 * Converts an F32, F16, BF16 or F64 tensor to float32 values. An F32 tensor whose bytes are
 * 4-byte aligned is returned as a view of them (no copy); everything else is a new array.
 */
export function toFloat32(t: RawTensor): Float32Array {
  if (t.dtype === "F32" && LITTLE_ENDIAN && t.data.byteOffset % 4 === 0) {
    return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
  }
  return convert(t, FLOAT_READERS, (n) => new Float32Array(n), "float32");
}

/**
 * Converts an I32, I64 (values within the int32 range), I16, I8 or U8 tensor to int32 values.
 * An aligned I32 tensor is returned as a view of its bytes (no copy).
 */
export function toInt32(t: RawTensor): Int32Array {
  if (t.dtype === "I32" && LITTLE_ENDIAN && t.data.byteOffset % 4 === 0) {
    return new Int32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
  }
  return convert(t, INT_READERS, (n) => new Int32Array(n), "int32");
}

/** Serializes tensors (laid out in the record's iteration order) and optional string metadata. */
export function encodeSafetensors(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Buffer {
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(`cannot encode metadata "${k}": values must be strings, got ${typeof v}`);
      }
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    const what = `cannot encode tensor "${name}"`;
    if (name === METADATA_KEY) throw new SafetensorsError(`${what}: the name ${METADATA_KEY} is reserved`);
    if (!isDType(t.dtype)) throw new SafetensorsError(`${what}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`${what}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    const expected = numel(t.shape) * DTYPE_SIZE[t.dtype];
    if (!(t.data instanceof Uint8Array) || t.data.byteLength !== expected) {
      throw new SafetensorsError(`${what}: ${t.dtype} [${t.shape.join(", ")}] needs ${expected} bytes, ` +
        `got ${t.data instanceof Uint8Array ? t.data.byteLength : "no Uint8Array"}`);
    }
    const entry = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset += expected;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + headerLen + offset);
  out.writeBigUInt64LE(BigInt(headerLen), 0);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const [, t] of entries) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}

/**
 * Parses and validates a safetensors buffer. The returned tensors' data are views into `buf`.
 * (Buffer is listed because some @types/node versions do not make it assignable to Uint8Array.)
 */
export function decodeSafetensors(input: Uint8Array | Buffer, source = "<buffer>"): SafetensorsContents {
  const buf = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (buf.byteLength < 8) fail(`file is ${buf.byteLength} bytes, shorter than the 8-byte header length prefix`);
  const n64 = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) fail(`header length ${n64} exceeds the ${MAX_HEADER}-byte limit`);
  if (n64 > BigInt(buf.byteLength - 8)) {
    fail(`header length ${n64} exceeds the ${buf.byteLength - 8} bytes that follow the length prefix (truncated file?)`);
  }
  const headerLen = Number(n64);
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(8, 8 + headerLen));
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) fail(`header must be a JSON object, got ${Array.isArray(header) ? "an array" : String(header)}`);
  const dataStart = 8 + headerLen;
  const dataSize = buf.byteLength - dataStart;
  const tensors: Record<string, RawTensor> = {};
  const metadata: Record<string, string> = {};
  const regions: { name: string; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(entry)) fail(`${METADATA_KEY} must be an object of strings`);
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`metadata "${k}" must be a string, got ${JSON.stringify(v)}`);
        put(metadata, k, v as string);
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (!isPlainObject(entry)) fail(`${where}: entry must be an object with dtype, shape and data_offsets`);
    const e = entry as Record<string, unknown>;
    for (const key of ["dtype", "shape", "data_offsets"]) {
      if (!(key in e)) fail(`${where}: missing "${key}" (expected dtype, shape and data_offsets)`);
    }
    const { dtype, shape, data_offsets: offs } = e;
    if (!isDType(dtype)) {
      fail(`${where}: unknown dtype ${JSON.stringify(dtype)}, expected one of ${Object.keys(DTYPE_SIZE).join(", ")}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) ||
        offs[0] > offs[1]) {
      fail(`${where}: data_offsets must be [begin, end] non-negative integers with begin <= end, got ${JSON.stringify(offs)}`);
    }
    const dims = shape as number[];
    const [begin, end] = offs as [number, number];
    const expected = numel(dims) * DTYPE_SIZE[dtype as DType];
    if (end - begin !== expected) {
      fail(`${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} [${dims.join(", ")}] ` +
        `needs ${expected} bytes`);
    }
    if (end > dataSize) {
      fail(`${where}: data_offsets [${begin}, ${end}] lie outside the data section of ${dataSize} bytes (truncated file?)`);
    }
    regions.push({ name, begin, end });
    put(tensors, name, { dtype: dtype as DType, shape: [...dims], data: buf.subarray(dataStart + begin, dataStart + end) });
  }
  regions.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prev = "";
  for (const r of regions) {
    if (r.begin < covered) {
      fail(`tensor "${r.name}" at [${r.begin}, ${r.end}] overlaps tensor "${prev}" which ends at ${covered}`);
    }
    if (r.begin > covered) {
      fail(`bytes [${covered}, ${r.begin}) of the data section belong to no tensor; tensors must cover it exactly`);
    }
    covered = r.end;
    prev = r.name;
  }
  if (covered !== dataSize) {
    fail(`tensors cover ${covered} bytes but the data section is ${dataSize} bytes; tensors must cover it exactly`);
  }
  return { tensors, metadata };
}

/**
 * Writes a safetensors file atomically: the bytes go to a temporary file in the same
 * directory, which is fsynced and renamed over `path`; then the directory is fsynced.
 */
export function saveSafetensors(path: string, tensors: Record<string, RawTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Reads and decodes a safetensors file. */
export function loadSafetensors(path: string): SafetensorsContents {
  let buf: Uint8Array | Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : (e as Error).message;
    throw new SafetensorsError(`cannot read safetensors file ${path}: ${why}`, { cause: e });
  }
  return decodeSafetensors(buf, path);
}
