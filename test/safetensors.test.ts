import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  decodeSafetensors, encodeSafetensors, f32, i32, loadSafetensors, saveSafetensors, SafetensorsError,
  toFloat32, toInt32, type DType, type RawTensor,
} from "../src/io/safetensors.js";

const SIZES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8, I16: 2, I8: 1, U8: 1, BOOL: 1 };

function rawOf(dtype: DType, shape: number[], seed: number): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1) * SIZES[dtype];
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = (i * 31 + seed * 17) & 0xff;
  if (dtype === "BOOL") data.forEach((_, i) => (data[i] = (i + seed) & 1));
  return { dtype, shape, data };
}

/** Concatenates byte arrays (plain Uint8Array, so it type-checks with any @types/node). */
function cat(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) (out.set(p, pos), (pos += p.length));
  return out;
}

function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
}

/** Builds a file from a literal header text and data bytes, bypassing the encoder. */
function rawFile(header: string | Uint8Array, data: ArrayLike<number> = [], declaredLen?: bigint): Uint8Array {
  const h = typeof header === "string" ? new TextEncoder().encode(header) : header;
  return cat(u64(declaredLen ?? BigInt(h.length)), h, data);
}

const bytesOf = (b: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }): Uint8Array =>
  new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function throwsST(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test("round trip of every dtype, including a scalar and zero-size tensors", () => {
  const tensors: Record<string, RawTensor> = {};
  const dtypes: DType[] = ["F32", "F16", "BF16", "F64", "I32", "I64", "I16", "I8", "U8", "BOOL"];
  const shapes = [[], [0], [2, 3], [3, 0, 2], [5], [1, 1, 7]];
  dtypes.forEach((dt, i) => shapes.forEach((s, j) => (tensors[`${dt}.${j}`] = rawOf(dt, s, i * 10 + j))));
  const buf = encodeSafetensors(tensors);
  const { tensors: back, metadata } = decodeSafetensors(buf);
  assert.deepEqual(metadata, {});
  assert.deepEqual(Object.keys(back).sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    assert.equal(back[name]!.dtype, t.dtype, name);
    assert.deepEqual(back[name]!.shape, t.shape, name);
    assert.deepEqual(Buffer.from(back[name]!.data), Buffer.from(t.data), name);
  }
  assert.deepEqual(back["F32.0"]!.shape, []);
  assert.equal(back["F32.0"]!.data.byteLength, 4);
  assert.equal(back["I64.1"]!.data.byteLength, 0);
});

test("f32/i32 helpers, tensors laid out in insertion order, data views into the buffer", () => {
  const buf = encodeSafetensors({ b: f32([2, 2], new Float32Array([1, 2, 3, 4])), a: i32([3], new Int32Array([-1, 0, 7])) });
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString("utf8"));
  assert.deepEqual(header.b.data_offsets, [0, 16]);
  assert.deepEqual(header.a.data_offsets, [16, 28]);
  const { tensors } = decodeSafetensors(buf);
  assert.deepEqual([...toFloat32(tensors.b!)], [1, 2, 3, 4]);
  assert.deepEqual([...toInt32(tensors.a!)], [-1, 0, 7]);
  assert.equal(tensors.b!.data.buffer, buf.buffer);
  assert.throws(() => f32([3], new Float32Array(2)), SafetensorsError);
  assert.throws(() => i32([-1], new Int32Array(0)), SafetensorsError);
});

test("metadata round trip", () => {
  const metadata = { format: "pt", "model.name": "plinth-tiny", note: "ünïcødé ✓ \"quoted\"", empty: "" };
  const { tensors, metadata: back } = decodeSafetensors(encodeSafetensors({ x: f32([1], new Float32Array([5])) }, metadata));
  assert.deepEqual(back, metadata);
  assert.deepEqual([...toFloat32(tensors.x!)], [5]);
  assert.deepEqual(decodeSafetensors(encodeSafetensors({}, {})), { tensors: {}, metadata: {} });
  assert.deepEqual(decodeSafetensors(encodeSafetensors({}, { k: "v" })), { tensors: {}, metadata: { k: "v" } });
});

test("the data section starts at an 8-byte aligned offset, padded with spaces", () => {
  for (let len = 1; len <= 12; len++) {
    const buf = encodeSafetensors({ ["n".repeat(len)]: f32([1], new Float32Array([1])) }, len % 2 ? { m: "x".repeat(len) } : undefined);
    const n = Number(buf.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0);
    const text = buf.subarray(8, 8 + n).toString("utf8");
    assert.match(text, /^\{.*\} *$/);
    assert.ok(text.length - text.trimEnd().length < 8);
  }
});

test("a tiny file matches the format byte for byte", () => {
  const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  assert.equal(json.length, 54);
  const expected = cat(
    [56, 0, 0, 0, 0, 0, 0, 0],
    new TextEncoder().encode(json + "  "),
    [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40], // 1.0f, 2.0f little-endian
  );
  assert.deepEqual(bytesOf(encodeSafetensors({ a: f32([2], new Float32Array([1, 2])) })), expected);

  const json2 = '{"__metadata__":{"k":"v"},"s":{"dtype":"I8","shape":[],"data_offsets":[0,1]}}';
  assert.equal(json2.length, 77);
  const withMeta = cat([80, 0, 0, 0, 0, 0, 0, 0], new TextEncoder().encode(json2 + "   "), [0xfe]);
  const got = encodeSafetensors({ s: { dtype: "I8", shape: [], data: new Uint8Array([0xfe]) } }, { k: "v" });
  assert.deepEqual(bytesOf(got), withMeta);
});

test("decodes files from other writers: unpadded header, metadata last, unaligned data", () => {
  const buf = rawFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"a":"b"}}',
    [0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0]);
  const { tensors, metadata } = decodeSafetensors(buf);
  assert.deepEqual(metadata, { a: "b" });
  assert.notEqual(tensors.w!.data.byteOffset % 4, 0);
  assert.deepEqual([...toFloat32(tensors.w!)], [1, -2.5]);
});

test("truncated files are rejected with a helpful message", () => {
  const full = encodeSafetensors({ a: f32([4], new Float32Array([1, 2, 3, 4])), b: i32([2], new Int32Array([5, 6])) });
  const n = Number(full.readBigUInt64LE(0));
  throwsST(() => decodeSafetensors(full.subarray(0, 0), "m.safetensors"), /m\.safetensors/, /0 bytes/, /shorter than/);
  throwsST(() => decodeSafetensors(full.subarray(0, 7), "m.safetensors"), /7 bytes/);
  for (const cut of [8, 8 + 3, 8 + n - 1]) {
    throwsST(() => decodeSafetensors(full.subarray(0, cut), "m.safetensors"),
      /m\.safetensors/, new RegExp(`header length ${n} exceeds the ${cut - 8} bytes`));
  }
  for (const cut of [8 + n, 8 + n + 3, 8 + n + 16, full.length - 1]) {
    const size = cut - 8 - n;
    throwsST(() => decodeSafetensors(full.subarray(0, cut), "m.safetensors"),
      /m\.safetensors/, new RegExp(`outside the data section of ${size} bytes`));
  }
  assert.doesNotThrow(() => decodeSafetensors(full));
});

test("bad header length and garbage headers", () => {
  throwsST(() => decodeSafetensors(rawFile("{}", [], 200_000_000n)), /header length 200000000/, /100000000-byte limit/);
  throwsST(() => decodeSafetensors(rawFile("{}", [], 0xffffffffffffffffn)), /limit/);
  throwsST(() => decodeSafetensors(rawFile(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))), /not valid UTF-8 JSON/);
  throwsST(() => decodeSafetensors(rawFile("{not json")), /not valid UTF-8 JSON/);
  throwsST(() => decodeSafetensors(rawFile("")), /not valid UTF-8 JSON/);
  throwsST(() => decodeSafetensors(rawFile("[1,2]")), /must be a JSON object/, /array/);
  throwsST(() => decodeSafetensors(rawFile("null")), /must be a JSON object/);
  throwsST(() => decodeSafetensors(rawFile('"s"')), /must be a JSON object/);
});

test("malformed tensor entries", () => {
  const one = (entry: unknown, data: number[] = [0, 0, 0, 0]) => () =>
    decodeSafetensors(rawFile(JSON.stringify({ t: entry }), data), "bad.safetensors");
  throwsST(one(5), /bad\.safetensors/, /tensor "t"/, /must be an object/);
  throwsST(one({ shape: [1], data_offsets: [0, 4] }), /tensor "t"/, /missing "dtype"/);
  throwsST(one({ dtype: "F32", data_offsets: [0, 4] }), /missing "shape"/);
  throwsST(one({ dtype: "F32", shape: [1] }), /missing "data_offsets"/);
  throwsST(one({ dtype: "F8", shape: [1], data_offsets: [0, 4] }), /unknown dtype "F8"/, /expected one of F32/);
  throwsST(one({ dtype: 4, shape: [1], data_offsets: [0, 4] }), /unknown dtype 4/);
  throwsST(one({ dtype: "F32", shape: [-1], data_offsets: [0, 4] }), /non-negative integers/, /\[-1\]/);
  throwsST(one({ dtype: "F32", shape: [1.5], data_offsets: [0, 4] }), /non-negative integers/);
  throwsST(one({ dtype: "F32", shape: "1", data_offsets: [0, 4] }), /shape must be an array/);
  throwsST(one({ dtype: "F32", shape: [1], data_offsets: [4, 0] }), /begin <= end/, /\[4,0\]/);
  throwsST(one({ dtype: "F32", shape: [1], data_offsets: [0] }), /data_offsets must be \[begin, end\]/);
  throwsST(one({ dtype: "F32", shape: [1], data_offsets: ["0", "4"] }), /data_offsets must be/);
  throwsST(one({ dtype: "F32", shape: [1], data_offsets: [0, 4.5] }), /data_offsets must be/);
  throwsST(one({ dtype: "F32", shape: [1], data_offsets: [-4, 0] }), /data_offsets must be/);
  throwsST(one({ dtype: "F32", shape: [2], data_offsets: [0, 4] }), /span 4 bytes/, /needs 8 bytes/);
  throwsST(one({ dtype: "F16", shape: [3], data_offsets: [0, 4] }), /span 4 bytes/, /F16 \[3\] needs 6 bytes/);
  throwsST(one({ dtype: "F32", shape: [2], data_offsets: [0, 8] }), /\[0, 8\]/, /outside the data section of 4 bytes/);
});

test("overlaps, holes and uncovered bytes in the data section", () => {
  const file = (h: object, n: number) => () => decodeSafetensors(rawFile(JSON.stringify(h), new Array(n).fill(0)), "x");
  throwsST(file({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, 12),
    /x: /, /overlaps tensor "a"/);
  throwsST(file({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 4),
    /overlaps/);
  throwsST(file({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, z: { dtype: "F32", shape: [0], data_offsets: [4, 4] } }, 8),
    /overlaps/);
  throwsST(file({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "F32", shape: [1], data_offsets: [8, 12] } }, 12),
    /bytes \[4, 8\) of the data section belong to no tensor/, /cover it exactly/);
  throwsST(file({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 8), /cover 4 bytes but the data section is 8 bytes/);
  throwsST(file({}, 3), /cover 0 bytes but the data section is 3 bytes/);
  // Zero-size tensors at a boundary are fine.
  const ok = decodeSafetensors(rawFile(JSON.stringify({
    a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, z: { dtype: "I8", shape: [0, 3], data_offsets: [4, 4] },
    z0: { dtype: "U8", shape: [0], data_offsets: [0, 0] },
  }), [0, 0, 0, 0]));
  assert.equal(ok.tensors.z!.data.byteLength, 0);
});

test("a tensor named __proto__ is stored as an ordinary entry", () => {
  const file = rawFile('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"__proto__":"x"}}', [9]);
  const { tensors, metadata } = decodeSafetensors(file);
  assert.deepEqual(Object.keys(tensors), ["__proto__"]);
  assert.equal(Object.getPrototypeOf(tensors), Object.prototype);
  assert.deepEqual([...toInt32(Object.getOwnPropertyDescriptor(tensors, "__proto__")!.value as RawTensor)], [9]);
  assert.equal(Object.getOwnPropertyDescriptor(metadata, "__proto__")!.value, "x");
});

test("bad metadata", () => {
  throwsST(() => decodeSafetensors(rawFile('{"__metadata__":{"k":1}}'), "m"), /m: metadata "k" must be a string/);
  throwsST(() => decodeSafetensors(rawFile('{"__metadata__":[]}')), /__metadata__ must be an object/);
  throwsST(() => encodeSafetensors({}, { k: 1 } as unknown as Record<string, string>), /metadata "k"/);
});

test("the encoder rejects invalid tensors", () => {
  throwsST(() => encodeSafetensors({ t: { dtype: "F32", shape: [2], data: new Uint8Array(4) } }), /tensor "t"/, /needs 8 bytes, got 4/);
  throwsST(() => encodeSafetensors({ t: { dtype: "X" as DType, shape: [1], data: new Uint8Array(1) } }), /unknown dtype/);
  throwsST(() => encodeSafetensors({ t: { dtype: "U8", shape: [-1], data: new Uint8Array(0) } }), /shape/);
  throwsST(() => encodeSafetensors({ __metadata__: { dtype: "U8", shape: [], data: new Uint8Array(1) } }), /reserved/);
});

test("F16, BF16 and F64 to float32 on known values", () => {
  const u16 = (dtype: DType, bits: number[]): RawTensor => {
    const data = new Uint8Array(bits.length * 2);
    bits.forEach((b, i) => ((data[2 * i] = b & 0xff), (data[2 * i + 1] = b >> 8)));
    return { dtype, shape: [bits.length], data };
  };
  const h = toFloat32(u16("F16", [0x3c00, 0xc100, 0x7bff, 0x0001, 0x0200, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x0000]));
  assert.deepEqual([...h.slice(0, 8)], [1, -2.5, 65504, 2 ** -24, 2 ** -15, Infinity, -Infinity, NaN]);
  assert.ok(Object.is(h[8], -0) && Object.is(h[9], 0));
  const b = toFloat32(u16("BF16", [0x3f80, 0xc020, 0x477f, 0x7f7f, 0x0001, 0x7f80, 0xff80, 0x7fc0]));
  assert.deepEqual([...b.slice(0, 3)], [1, -2.5, 65280]);
  assert.equal(b[3], new Float32Array([3.3895313892515355e38])[0]);
  assert.equal(b[4], 2 ** -133);
  assert.deepEqual([...b.slice(5)], [Infinity, -Infinity, NaN]);
  const d = new Float64Array([1, -2.5, 65504, 1e-300, Infinity, NaN]);
  const f = toFloat32({ dtype: "F64", shape: [6], data: new Uint8Array(d.buffer) });
  assert.deepEqual([...f], [1, -2.5, 65504, 0, Infinity, NaN]);
  throwsST(() => toFloat32(rawOf("BOOL", [2], 0)), /BOOL/, /float32/);
  throwsST(() => toFloat32(rawOf("I32", [2], 0)), /I32/);
});

test("integer conversions", () => {
  const big = new BigInt64Array([0n, -5n, 2147483647n, -2147483648n]);
  assert.deepEqual([...toInt32({ dtype: "I64", shape: [4], data: new Uint8Array(big.buffer) })], [0, -5, 2147483647, -2147483648]);
  throwsST(() => toInt32({ dtype: "I64", shape: [1], data: new Uint8Array(new BigInt64Array([2n ** 40n]).buffer) }),
    /element 0 is 1099511627776/, /int32 range/);
  assert.deepEqual([...toInt32({ dtype: "I16", shape: [2], data: new Uint8Array(new Int16Array([-300, 300]).buffer) })], [-300, 300]);
  assert.deepEqual([...toInt32({ dtype: "I8", shape: [2], data: new Uint8Array([0xff, 0x7f]) })], [-1, 127]);
  assert.deepEqual([...toInt32({ dtype: "U8", shape: [2], data: new Uint8Array([0xff, 0x7f]) })], [255, 127]);
  // An I32 tensor at an unaligned offset is copied.
  const bytes = new Uint8Array(9);
  bytes.set(new Uint8Array(new Int32Array([-7, 9]).buffer), 1);
  assert.deepEqual([...toInt32({ dtype: "I32", shape: [2], data: bytes.subarray(1) })], [-7, 9]);
  throwsST(() => toInt32(rawOf("F32", [1], 0)), /F32/, /int32/);
});

test("atomic save and load", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-st-"));
  try {
    const path = join(dir, "model.safetensors");
    const tensors = { w: f32([2], new Float32Array([1.5, -3])), step: i32([], new Int32Array([42])) };
    saveSafetensors(path, tensors, { epoch: "1" });
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
    const loaded = loadSafetensors(path);
    assert.deepEqual(loaded.metadata, { epoch: "1" });
    assert.deepEqual([...toFloat32(loaded.tensors.w!)], [1.5, -3]);
    assert.deepEqual([...toInt32(loaded.tensors.step!)], [42]);

    // Overwrite works and still leaves no temp file.
    saveSafetensors(path, { w: f32([1], new Float32Array([7])) });
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
    const before = readFileSync(path);
    assert.deepEqual([...toFloat32(decodeSafetensors(before).tensors.w!)], [7]);

    // A failed encode leaves the previous file intact.
    throwsST(() => saveSafetensors(path, { w: { dtype: "F32", shape: [3], data: new Uint8Array(4) } }), /needs 12 bytes/);
    assert.deepEqual(readFileSync(path), before);
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);

    // A failed rename (the target is a non-empty directory) removes the temp file.
    const blocker = join(dir, "blocked");
    mkdirSync(blocker);
    writeFileSync(join(blocker, "keep"), "x");
    assert.throws(() => saveSafetensors(blocker, tensors));
    assert.deepEqual(readdirSync(dir).sort(), ["blocked", "model.safetensors"]);

    // A missing directory fails without creating anything.
    assert.throws(() => saveSafetensors(join(dir, "missing", "m.safetensors"), tensors), /ENOENT/);
    assert.equal(existsSync(join(dir, "missing")), false);

    // Loading a missing file names the path.
    const gone = join(dir, "nope.safetensors");
    throwsST(() => loadSafetensors(gone), new RegExp(gone.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), /no such file/);
    // Loading a corrupt file names the path too.
    writeFileSync(join(dir, "short.safetensors"), bytesOf(before).subarray(0, before.length - 2));
    throwsST(() => loadSafetensors(join(dir, "short.safetensors")), /short\.safetensors: /, /outside the data section/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
