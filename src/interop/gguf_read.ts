/**
 * Reads a GGUF file back (metadata and tensor table), checking every length and offset
 * against the file's size so a truncated or corrupt file gets an error that names what
 * was wrong and where, instead of a crash or a silent misread.
 */
import { GGMLType, GGUF_MAGIC, GGUFValueType, dequantizeQ8_0, fromHalf } from "./gguf.js";

export interface GGUFTensorInfo {
  name: string;
  dims: number[];
  type: number;
  offset: number;
  /** The tensor's bytes (a view into the file). */
  data: Uint8Array;
}

export interface GGUFContents {
  version: number;
  metadata: Record<string, unknown>;
  tensors: GGUFTensorInfo[];
}

const TYPE_BYTES: Record<number, [number, number]> = { [GGMLType.F32]: [1, 4], [GGMLType.F16]: [1, 2], [GGMLType.Q8_0]: [32, 34] };
const MAX_ITEMS = 1 << 28;

export function decodeGGUF(buf: Uint8Array, source = "<buffer>"): GGUFContents {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const fail = (msg: string): never => {
    throw new Error(`gguf: ${source}: ${msg}`);
  };
  const need = (n: number, what: string): void => {
    if (pos + n > buf.length) fail(`truncated: ${what} needs ${n} bytes at offset ${pos}, the file has ${buf.length}`);
  };
  const u32 = (what: string): number => (need(4, what), (pos += 4), view.getUint32(pos - 4, true));
  const u64 = (what: string): number => {
    need(8, what);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} is ${v}, too large (corrupt file?)`);
    return Number(v);
  };
  const str = (what: string): string => {
    const n = u64(`${what} length`);
    need(n, what);
    pos += n;
    return new TextDecoder("utf-8", { fatal: false }).decode(buf.subarray(pos - n, pos));
  };
  const value = (type: number, what: string): unknown => {
    switch (type) {
      case GGUFValueType.UINT8: return (need(1, what), view.getUint8(pos++));
      case GGUFValueType.INT8: return (need(1, what), view.getInt8(pos++));
      case GGUFValueType.UINT16: return (need(2, what), (pos += 2), view.getUint16(pos - 2, true));
      case GGUFValueType.INT16: return (need(2, what), (pos += 2), view.getInt16(pos - 2, true));
      case GGUFValueType.UINT32: return u32(what);
      case GGUFValueType.INT32: return (need(4, what), (pos += 4), view.getInt32(pos - 4, true));
      case GGUFValueType.FLOAT32: return (need(4, what), (pos += 4), view.getFloat32(pos - 4, true));
      case GGUFValueType.BOOL: return (need(1, what), view.getUint8(pos++) !== 0);
      case GGUFValueType.STRING: return str(what);
      case GGUFValueType.UINT64: return u64(what);
      case GGUFValueType.INT64: return (need(8, what), (pos += 8), Number(view.getBigInt64(pos - 8, true)));
      case GGUFValueType.FLOAT64: return (need(8, what), (pos += 8), view.getFloat64(pos - 8, true));
      case GGUFValueType.ARRAY: {
        const itemType = u32(`${what} item type`);
        const n = u64(`${what} count`);
        if (n > MAX_ITEMS) fail(`${what} claims ${n} items (corrupt file?)`);
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items.push(value(itemType, `${what}[${i}]`));
        return items;
      }
      default: return fail(`${what} has unknown value type ${type}`);
    }
  };

  if (buf.length < 24) fail(`only ${buf.length} bytes; a GGUF file starts with a 24-byte header`);
  const magic = u32("magic");
  if (magic !== GGUF_MAGIC) fail(`bad magic 0x${magic.toString(16).padStart(8, "0")}, expected "GGUF" (0x${GGUF_MAGIC.toString(16)}); not a GGUF file`);
  const version = u32("version");
  if (version !== 2 && version !== 3) fail(`version ${version} is not supported (2 or 3)`);
  const nTensors = u64("tensor count"), nKv = u64("metadata count");
  if (nTensors > MAX_ITEMS || nKv > MAX_ITEMS) fail(`header claims ${nTensors} tensors and ${nKv} metadata entries (corrupt file?)`);
  const metadata: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (let i = 0; i < nKv; i++) {
    const key = str(`metadata key ${i}`);
    metadata[key] = value(u32(`type of ${key}`), key);
  }
  const infos: Omit<GGUFTensorInfo, "data">[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str(`tensor ${i} name`);
    const nd = u32(`${name} n_dims`);
    if (nd > 4) fail(`tensor ${name} has ${nd} dimensions (at most 4)`);
    const dims = Array.from({ length: nd }, (_, d) => u64(`${name} dim ${d}`));
    infos.push({ name, dims, type: u32(`${name} type`), offset: u64(`${name} offset`) });
  }
  const alignment = typeof metadata["general.alignment"] === "number" ? (metadata["general.alignment"] as number) : 32;
  const dataStart = Math.ceil(pos / alignment) * alignment;
  const tensors = infos.map((t) => {
    const size = TYPE_BYTES[t.type];
    if (size === undefined) return { ...t, data: new Uint8Array(0) }; // a type this reader does not decode; its bytes are not checked
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (n % size[0] !== 0) fail(`tensor ${t.name}: ${n} values is not a whole number of blocks of ${size[0]}`);
    const bytes = (n / size[0]) * size[1];
    const start = dataStart + t.offset;
    if (start + bytes > buf.length) fail(`tensor ${t.name} needs bytes [${start}, ${start + bytes}) but the file has ${buf.length} (truncated?)`);
    return { ...t, data: buf.subarray(start, start + bytes) };
  });
  return { version, metadata, tensors };
}

/** A tensor's values as float32 (F32, F16 or Q8_0). */
export function tensorValues(t: GGUFTensorInfo): Float32Array {
  if (t.type === GGMLType.F32) return new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  if (t.type === GGMLType.Q8_0) return dequantizeQ8_0(t.data);
  if (t.type === GGMLType.F16) {
    const v = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    return Float32Array.from({ length: t.data.length / 2 }, (_, i) => fromHalf(v.getUint16(i * 2, true)));
  }
  throw new Error(`gguf: tensor ${t.name} has ggml type ${t.type}; only F32, F16 and Q8_0 are read`);
}
