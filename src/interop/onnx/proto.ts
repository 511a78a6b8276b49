/**
 * A small Protocol Buffers wire-format writer (and a reader for checking files), enough
 * for ONNX: varints, 64-bit little-endian integers, floats, length-delimited strings,
 * bytes and nested messages, and packed repeated scalars.
 *
 * Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. A field's key is
 * (field_number << 3) | wire_type, itself a varint.
 */

/** Appends protobuf fields to a growing buffer. */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private rawVarint(v: bigint): void {
    // Negative int32/int64 values are written as their 64-bit two's complement (10 bytes).
    let x = BigInt.asUintN(64, v);
    this.reserve(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }

  private smallVarint(v: number): void {
    if (v >= 0 && v < 0x80000000) {
      this.reserve(5);
      while (v >= 0x80) {
        this.buf[this.len++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.buf[this.len++] = v;
    } else this.rawVarint(BigInt(v));
  }

  private key(field: number, wire: number): void {
    this.smallVarint((field << 3) | wire);
  }

  /** int32, int64, uint64, bool and enum fields. */
  varint(field: number, value: number | bigint | boolean): this {
    this.key(field, 0);
    if (typeof value === "bigint") this.rawVarint(value);
    else {
      const n = typeof value === "boolean" ? (value ? 1 : 0) : value;
      if (!Number.isSafeInteger(n)) throw new RangeError(`protobuf: field ${field}: ${n} is not a safe integer`);
      this.smallVarint(n);
    }
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, 5);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, value, true);
    this.len += 4;
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.key(field, 2);
    this.smallVarint(data.length);
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  string(field: number, text: string): this {
    return this.bytes(field, new TextEncoder().encode(text));
  }

  message(field: number, body: ProtoWriter): this {
    return this.bytes(field, body.finish());
  }

  /** Packed repeated int64/int32 (one length-delimited field holding the varints). */
  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoWriter();
    for (const v of values) {
      if (typeof v === "bigint") inner.rawVarint(v);
      else if (!Number.isSafeInteger(v)) throw new RangeError(`protobuf: field ${field}: ${v} is not a safe integer`);
      else inner.smallVarint(v);
    }
    return this.bytes(field, inner.finish());
  }

  /** Packed repeated float. */
  packedFloats(field: number, values: readonly number[]): this {
    return this.bytes(field, new Uint8Array(Float32Array.from(values).buffer));
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

export interface ProtoField {
  field: number;
  wire: 0 | 1 | 2 | 5;
  /** varint value (wire 0) or the raw bytes (wire 1, 2, 5). */
  value: bigint | Uint8Array;
}

/**
 * Splits one message into its fields, checking that every length stays inside the buffer;
 * throws an error naming the byte offset at fault.
 */
export function readFields(data: Uint8Array, what = "message"): ProtoField[] {
  const out: ProtoField[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n, shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= data.length) throw new Error(`protobuf: ${what}: truncated varint at byte ${pos} of ${data.length}`);
      const b = data[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new Error(`protobuf: ${what}: varint longer than 10 bytes at byte ${pos}`);
  };
  while (pos < data.length) {
    const start = pos;
    const k = varint();
    const field = Number(k >> 3n), wire = Number(k & 7n);
    if (field === 0) throw new Error(`protobuf: ${what}: field number 0 at byte ${start} (not a protobuf message?)`);
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (pos + n > data.length) throw new Error(`protobuf: ${what}: field ${field} needs ${n} bytes at byte ${pos}, only ${data.length - pos} left`);
      out.push({ field, wire, value: data.subarray(pos, pos + n) });
      pos += n;
    } else if (wire === 2) {
      const n = Number(varint());
      if (pos + n > data.length) throw new Error(`protobuf: ${what}: field ${field} says ${n} bytes at byte ${pos}, only ${data.length - pos} left (truncated file?)`);
      out.push({ field, wire, value: data.subarray(pos, pos + n) });
      pos += n;
    } else throw new Error(`protobuf: ${what}: unsupported wire type ${wire} for field ${field} at byte ${start} (corrupt data?)`);
  }
  return out;
}
