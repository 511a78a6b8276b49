// The raw binding given bad arguments: every wrong type, missing argument, short buffer,
// negative, non-integer, huge or overflowing size, out-of-range id or target, bad op code and
// bad ISA name becomes a TypeError or RangeError that names the binding, never a crash; and
// afterwards the process still computes correctly.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as T from "../src/tensor/index.js";
import { backend, type NativeBackend } from "../src/native/index.js";

type Kind = "int" | "float" | "bool" | "f32" | "f32?" | "i32" | "dims" | "str";

interface Binding {
  name: keyof NativeBackend;
  kinds: Kind[];
  /** A valid call whose buffers are exactly as long as the kernel needs. */
  args: () => unknown[];
}

const F = (n: number, fill = 0.5): Float32Array => new Float32Array(n).fill(fill);
const I = (...v: number[]): Int32Array => Int32Array.from(v);

const bindings: Binding[] = [
  // gemm(ta, tb, M, N, K, batch, alpha, beta, A, lda, strideA, B, ldb, strideB, C, ldc, strideC)
  { name: "gemm", kinds: ["bool", "bool", "int", "int", "int", "int", "float", "float", "f32", "int", "int", "f32", "int", "int", "f32", "int", "int"],
    args: () => [false, true, 3, 5, 4, 2, 1, 0, F(24), 4, 12, F(40), 4, 20, F(30), 5, 15] },
  { name: "binaryForward", kinds: ["int", "dims", "dims", "dims", "f32", "f32", "f32"],
    args: () => [2, [2, 3], [3, 1], [0, 1], F(6), F(3), F(6)] },
  { name: "binaryBackward", kinds: ["int", "dims", "dims", "dims", "f32", "f32", "f32", "f32?", "f32?"],
    args: () => [3, [2, 3], [3, 1], [0, 1], F(6), F(3), F(6), F(6), F(3)] },
  { name: "unaryForward", kinds: ["int", "int", "f32", "f32", "float"], args: () => [0, 5, F(5), F(5), 0] },
  { name: "unaryBackward", kinds: ["int", "int", "f32", "f32", "f32", "f32", "float", "bool"], args: () => [2, 5, F(5), F(5), F(5), F(5), 0, false] },
  { name: "reduceForward", kinds: ["int", "int", "int", "int", "f32", "f32"], args: () => [0, 2, 3, 4, F(24), F(8)] },
  { name: "reduceBackward", kinds: ["int", "int", "int", "int", "f32", "f32", "bool"], args: () => [1, 2, 3, 4, F(8), F(24), true] },
  { name: "softmaxForward", kinds: ["int", "int", "f32", "f32"], args: () => [2, 5, F(10), F(10)] },
  { name: "softmaxBackward", kinds: ["int", "int", "f32", "f32", "f32", "bool"], args: () => [2, 5, F(10), F(10), F(10), false] },
  { name: "layernormForward", kinds: ["int", "int", "f32", "f32", "f32", "float", "f32", "f32?", "f32?"],
    args: () => [2, 5, F(10), F(5), F(5), 1e-5, F(10), F(2), F(2)] },
  { name: "layernormBackward", kinds: ["int", "int", "f32", "f32", "f32", "f32", "f32", "f32", "f32", "f32", "bool"],
    args: () => [2, 5, F(10), F(5), F(2), F(2, 1), F(10), F(10), F(5), F(5), false] },
  { name: "geluForward", kinds: ["int", "f32", "f32"], args: () => [5, F(5), F(5)] },
  { name: "geluBackward", kinds: ["int", "f32", "f32", "f32", "bool"], args: () => [5, F(5), F(5), F(5), true] },
  { name: "embeddingForward", kinds: ["int", "int", "int", "i32", "f32", "f32"], args: () => [3, 4, 5, I(0, 4, 2), F(20), F(12)] },
  { name: "embeddingBackward", kinds: ["int", "int", "int", "i32", "f32", "f32"], args: () => [3, 4, 5, I(0, 4, 4), F(12), F(20)] },
  // dims [B, Tq, Tk, NH, HS]; q/k/v/o [1, 3, 4] with batch stride 12, row stride 4
  { name: "attentionForward", kinds: ["dims", "float", "bool", "f32", "int", "int", "f32", "int", "int", "f32", "int", "int", "f32", "int", "int", "f32?"],
    args: () => [[1, 3, 3, 2, 2], 0.7, true, F(12), 12, 4, F(12), 12, 4, F(12), 12, 4, F(12), 12, 4, F(6)] },
  { name: "attentionBackward",
    kinds: ["dims", "float", "bool", "f32", "int", "int", "f32", "int", "int", "f32", "int", "int", "f32", "int", "int", "f32", "f32", "f32", "f32", "f32", "bool"],
    args: () => [[1, 3, 3, 2, 2], 0.7, true, F(12), 12, 4, F(12), 12, 4, F(12), 12, 4, F(12), 12, 4, F(6), F(12), F(12), F(12), F(12), false] },
  { name: "crossEntropyForward", kinds: ["int", "int", "f32", "i32", "f32", "f32"], args: () => [3, 5, F(15), I(0, -1, 4), F(3), F(3)] },
  { name: "crossEntropyBackward", kinds: ["int", "int", "f32", "i32", "f32", "float", "f32"], args: () => [3, 5, F(15), I(0, -1, 4), F(3), 0.5, F(15)] },
  { name: "adamwStep", kinds: ["int", "f32", "f32", "f32", "f32", "float", "float", "float", "float", "float", "float", "float"],
    args: () => [5, F(5), F(5), F(5), F(5), 1e-3, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001] },
  { name: "sumSquares", kinds: ["int", "f32"], args: () => [5, F(5)] },
  { name: "axpy", kinds: ["int", "float", "f32", "f32"], args: () => [5, 2, F(5), F(5)] },
  { name: "fill", kinds: ["int", "f32", "float"], args: () => [5, F(5), 1] },
  { name: "copyStrided", kinds: ["dims", "dims", "f32", "f32"], args: () => [[2, 3], [1, 2], F(6), F(6)] },
  { name: "dropoutForward", kinds: ["int", "f32", "f32", "float", "int"], args: () => [5, F(5), F(5), 0.5, 123] },
  { name: "dropoutBackward", kinds: ["int", "f32", "f32", "float", "int", "bool"], args: () => [5, F(5), F(5), 0.5, 123, false] },
  { name: "alloc", kinds: ["int"], args: () => [16] },
  { name: "setThreads", kinds: ["int"], args: () => [backend.threads()] },
  { name: "peakFlops", kinds: ["int"], args: () => [10] },
  { name: "isaSupported", kinds: ["str"], args: () => ["portable"] },
  { name: "setIsa", kinds: ["str"], args: () => [backend.isa()] },
];

function wrongValues(kind: Kind): [string, unknown][] {
  const common: [string, unknown][] = [["a string", "3"], ["an object", {}], ["a symbol", Symbol("x")], ["a bigint", 3n]];
  const missing: [string, unknown][] = [["undefined", undefined], ["null", null]];
  switch (kind) {
    case "int":
      return [...common, ...missing, ["a plain array", [3]], ["a boolean", true], ["NaN", NaN], ["1.5", 1.5], ["Infinity", Infinity],
        ["-1", -1], ["2^60", 2 ** 60], ["1e300", 1e300], ["a Float32Array", F(1)]];
    case "float":
      return [...common, ...missing, ["a plain array", [1]], ["a boolean", false], ["a Float32Array", F(1)]];
    case "bool":
      return [...common, ...missing, ["0", 0], ["1", 1], ["the string 'true'", "true"]];
    case "f32":
    case "f32?":
      return [...common, ...(kind === "f32" ? missing : []), ["a plain array", [1, 2, 3]], ["an Int32Array", new Int32Array(64)],
        ["a Float64Array", new Float64Array(64)], ["a Uint8Array", new Uint8Array(256)], ["an ArrayBuffer", new ArrayBuffer(256)],
        ["a DataView", new DataView(new ArrayBuffer(256))], ["a number", 1]];
    case "i32":
      return [...common, ...missing, ["a plain array", [0, 1, 2]], ["a Float32Array", F(64)], ["a Uint32Array", new Uint32Array(64)],
        ["a BigInt64Array", new BigInt64Array(64)], ["a number", 1]];
    case "dims":
      return [...common, ...missing, ["a Float64Array", Float64Array.of(2, 3)], ["[1.5]", [1.5]], ["[-1]", [-1]], ["['a']", ["a"]],
        ["[NaN]", [NaN]], ["[Infinity]", [Infinity]], ["[2^60]", [2 ** 60]], ["17 dims", new Array(17).fill(1)], ["a sparse array", [, 2]]];
    case "str":
      return [["a number", 5], ["an object", {}], ["an array", ["avx2"]], ...missing];
  }
}

function call(name: keyof NativeBackend, args: unknown[]): unknown {
  return (backend[name] as (...a: unknown[]) => unknown)(...args);
}

function throwsClearly(name: string, args: unknown[], what: string): void {
  assert.throws(() => call(name as keyof NativeBackend, args), (e: unknown) => {
    assert.ok(e instanceof TypeError || e instanceof RangeError, `${name} with ${what}: threw ${String(e)}, expected a TypeError or RangeError`);
    assert.ok(e.message.startsWith(`${name}: `), `${name} with ${what}: message "${e.message}" does not name the binding`);
    return true;
  }, `${name} with ${what} did not throw`);
}

test("every binding accepts its valid call (the baseline for the bad ones)", () => {
  const isa = backend.isa();
  for (const b of bindings) call(b.name, b.args());
  assert.equal(backend.isa(), isa);
});

test("every binding rejects wrong argument types, missing arguments and bad integers", () => {
  for (const b of bindings) {
    b.kinds.forEach((kind, i) => {
      for (const [what, bad] of wrongValues(kind)) {
        const args = b.args();
        args[i] = bad;
        throwsClearly(b.name, args, `argument ${i} (${kind}) = ${what}`);
      }
    });
    for (let n = 0; n < b.kinds.length; n++) {
      if (b.kinds.slice(n).every((k) => k === "f32?")) continue; // trailing optionals may be left out
      throwsClearly(b.name, b.args().slice(0, n), `only ${n} arguments`);
    }
  }
});

test("every binding rejects a buffer one element too short", () => {
  for (const b of bindings) {
    b.kinds.forEach((kind, i) => {
      if (kind !== "f32" && kind !== "f32?" && kind !== "i32") return;
      const args = b.args();
      const buf = args[i] as Float32Array | Int32Array;
      args[i] = buf.subarray(0, buf.length - 1);
      throwsClearly(b.name, args, `argument ${i} one element short`);
    });
  }
});

test("sizes whose products overflow 64 bits are refused, not wrapped around", () => {
  const a = F(4);
  // 274177 * 67280421310721 = 2^64 + 1: a wrapping product would claim that one element suffices,
  // and the kernel would then walk 2^64 elements. (Buffer-bounded sizes such as ids, targets or
  // LayerNorm's C cannot take part in such products: their own checks stop them first.)
  const [p, q] = [274177, 67280421310721];
  throwsClearly("binaryForward", [0, [p, q], [0, 0], [0, 0], a, a, a], "a shape of 2^64+1 elements");
  throwsClearly("binaryBackward", [0, [p, q], [0, 0], [0, 0], a, a, a, a, a], "a shape of 2^64+1 elements");
  throwsClearly("copyStrided", [[p, q], [0, 0], a, a], "a shape of 2^64+1 elements");
  throwsClearly("copyStrided", [[p, q], [q, 1], a, a], "strides whose extent wraps to 1");
  // (2^32 + 1 - 1) * 2^32 = 2^64: an extent that wraps to one element.
  throwsClearly("gemm", [false, false, 2 ** 32 + 1, 1, 1, 1, 1, 0, a, 2 ** 32, 0, a, 1, 0, a, 2 ** 32, 0], "M * lda = 2^64");
  throwsClearly("gemm", [false, false, 1, 1, 1, 2 ** 32 + 1, 1, 0, a, 1, 2 ** 32, a, 1, 0, a, 1, 0], "batch * strideA = 2^64");
  throwsClearly("gemm", [true, true, 2 ** 40, 2 ** 40, 2 ** 40, 1, 1, 0, a, 2 ** 40, 0, a, 2 ** 40, 0, a, 2 ** 40, 0], "a 2^40-sized GEMM");
  throwsClearly("softmaxForward", [p, q, a, a], "rows * n = 2^64+1");
  throwsClearly("softmaxBackward", [p, q, a, a, a, false], "rows * n = 2^64+1");
  throwsClearly("reduceForward", [0, p, 1, q, a, a], "outer * inner = 2^64+1");
  throwsClearly("reduceBackward", [1, p, 1, q, a, a, false], "outer * inner = 2^64+1");
  throwsClearly("reduceForward", [0, 1, p, q, a, a], "n * inner = 2^64+1 with a short out");
  throwsClearly("attentionForward", [[1, 1, 1, p, q], 1, true, a, 0, 0, a, 0, 0, a, 0, 0, a, 0, 0, null], "NH * HS = 2^64+1");
  throwsClearly("attentionForward", [[p, 1, 1, q, 0], 1, true, a, 0, 0, a, 0, 0, a, 0, 0, a, 0, 0, F(1)], "B * NH * Tq = 2^64+1");
  throwsClearly("attentionForward", [[2 ** 32 + 1, 1, 1, 1, 1], 1, true, a, 2 ** 32, 0, a, 0, 0, a, 0, 0, a, 0, 0, null], "B * q_bs = 2^64");
  throwsClearly("attentionBackward", [[p, 1, 1, q, 0], 1, true, a, 0, 0, a, 0, 0, a, 0, 0, a, 0, 0, F(1), a, a, a, a, false],
    "B * NH * Tq = 2^64+1");
});

test("huge but representable sizes are refused by the buffer checks", () => {
  const a = F(4);
  throwsClearly("unaryForward", [0, 2 ** 52, a, a, 0], "n = 2^52");
  throwsClearly("fill", [8e15, a, 0], "n = 8e15");
  throwsClearly("gemm", [false, false, 2 ** 20, 2 ** 20, 2 ** 20, 1, 1, 0, a, 2 ** 20, 0, a, 2 ** 20, 0, a, 2 ** 20, 0], "a 2^20-sized GEMM");
  throwsClearly("alloc", [2 ** 41], "2^41 bytes");
  throwsClearly("alloc", [-8], "-8 bytes");
  // 1 TiB is under the hard limit: the allocation itself fails (unless this machine has the memory).
  try {
    const huge = backend.alloc(2 ** 40);
    backend.release(huge);
  } catch (e) {
    assert.ok(e instanceof RangeError && /^alloc: /.test(e.message), `alloc(2^40) threw ${String(e)}`);
  }
});

test("out-of-range embedding ids and cross-entropy targets are refused before any write", () => {
  const table = F(20), out = F(12, 7);
  throwsClearly("embeddingForward", [3, 4, 5, I(0, 5, 1), table, out], "id == V");
  throwsClearly("embeddingForward", [3, 4, 5, I(0, 1, -1), table, out], "a negative id");
  throwsClearly("embeddingForward", [3, 4, 5, I(0, 1, 2 ** 31 - 1), table, out], "id 2^31-1");
  throwsClearly("embeddingBackward", [3, 4, 5, I(-2, 1, 1), out, table], "a negative id");
  throwsClearly("embeddingBackward", [3, 4, 5, I(0, 1, 6), out, table], "id > V");
  assert.ok(out.every((v) => v === 7) && table.every((v) => v === 0.5), "nothing was written");
  const logits = F(15), lse = F(3), losses = F(3);
  throwsClearly("crossEntropyForward", [3, 5, logits, I(0, 5, 1), lse, losses], "target == V");
  throwsClearly("crossEntropyForward", [3, 5, logits, I(0, 1, 2 ** 31 - 1), lse, losses], "target 2^31-1");
  throwsClearly("crossEntropyBackward", [3, 5, logits, I(9, 1, 1), lse, 1, F(15)], "target > V");
  throwsClearly("crossEntropyForward", [3, 0, F(0), I(0, 0, 0), lse, losses], "V = 0");
  // A negative target means "ignored": valid.
  assert.equal(backend.crossEntropyForward(3, 5, logits, I(-1, -1, -7), lse, losses), 0);
});

test("bad op codes, shapes and scalars are refused", () => {
  const a = F(6);
  for (const op of [4, 99, -1]) throwsClearly("binaryForward", [op, [6], [1], [1], a, a, a], `op ${op}`);
  throwsClearly("binaryForward", [1.5, [6], [1], [1], a, a, a], "op 1.5");
  throwsClearly("binaryBackward", [4, [6], [1], [1], a, a, a, a, a], "op 4");
  throwsClearly("binaryForward", [0, [2, 3], [3], [3, 1], a, a, a], "strides of the wrong rank");
  for (const op of [9, 100, -1]) throwsClearly("unaryForward", [op, 6, a, a, 0], `op ${op}`);
  throwsClearly("unaryBackward", [9, 6, a, a, a, a, 0, false], "op 9");
  throwsClearly("reduceForward", [3, 1, 6, 1, a, a], "op 3");
  throwsClearly("reduceBackward", [2, 1, 6, 1, a, a, false], "max (no backward)");
  throwsClearly("reduceForward", [2, 2, 0, 3, a, a], "max over an empty axis");
  throwsClearly("layernormForward", [2, 0, a, a, a, 1e-5, a, null, null], "C = 0");
  throwsClearly("attentionForward", [[1, 3, 3, 2], 1, true, a, 0, 0, a, 0, 0, a, 0, 0, a, 0, 0, null], "4 dims");
  throwsClearly("attentionForward", [[1, 4, 3, 1, 1], 1, true, F(4), 4, 1, F(3), 3, 1, F(3), 3, 1, F(4), 4, 1, null], "Tq > Tk");
  throwsClearly("attentionBackward", [[1, 3, 3, 2, 2], 0.7, true, F(12), 12, 4, F(12), 12, 4, F(12), 12, 4, F(12), 12, 4, null,
    F(12), F(12), F(12), F(12), false], "no lse");
  // Rows that no buffer bounds: a head size of 0, or keys that all alias one row.
  const e = new Float32Array(0);
  throwsClearly("attentionForward", [[1, 1, 2 ** 40, 1, 0], 1, false, e, 0, 0, e, 0, 0, e, 0, 0, e, 0, 0, null], "HS = 0, Tk = 2^40");
  throwsClearly("attentionBackward", [[1, 1, 2 ** 40, 1, 0], 1, false, e, 0, 0, e, 0, 0, e, 0, 0, e, 0, 0, F(1), e, e, e, e, false],
    "HS = 0, Tk = 2^40");
  throwsClearly("attentionForward", [[1, 1, 2 ** 40, 1, 2], 1, false, a, 0, 0, a, 0, 0, a, 0, 0, a, 0, 0, null], "k row stride 0, Tk = 2^40");
  throwsClearly("attentionForward", [[1, 2 ** 40, 2 ** 40, 1, 2], 1, true, a, 0, 1, a, 0, 1, a, 0, 1, a, 0, 0, null], "o row stride 0");
  throwsClearly("copyStrided", [[2, 3], [1], a, a], "strides of the wrong rank");
  for (const p of [1, -0.5, NaN, 2]) {
    throwsClearly("dropoutForward", [6, a, a, p, 1], `p = ${p}`);
    throwsClearly("dropoutBackward", [6, a, a, p, 1, false], `p = ${p}`);
  }
  throwsClearly("dropoutForward", [6, a, a, 0.5, -1], "a negative seed");
  throwsClearly("adamwStep", [5, a, a, a, a, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 1], "bias correction 0");
  throwsClearly("adamwStep", [5, a, a, a, a, 1e-3, 0.9, 0.999, 1e-8, 0, 1, NaN], "bias correction NaN");
  throwsClearly("setThreads", [-1], "-1 threads");
  throwsClearly("setThreads", [1025], "1025 threads");
  throwsClearly("peakFlops", [0], "0 iterations");
});

test("bad ISA names are refused and leave the active ISA alone", () => {
  const isa = backend.isa();
  for (const name of ["avx1024", "", "AVX2", "avx512 ", "sse", "portable\0avx2"]) {
    throwsClearly("setIsa", [name], `ISA name ${JSON.stringify(name)}`);
    assert.equal(backend.isaSupported(name), false, `isaSupported(${JSON.stringify(name)})`);
  }
  assert.equal(backend.isa(), isa);
  assert.equal(backend.isaSupported("portable"), true);
});

test("memory calls: foreign, released and detached buffers", () => {
  throwsClearly("release", ["x"], "a string");
  throwsClearly("release", [F(4)], "a typed array");
  throwsClearly("release", [], "no arguments");
  assert.equal(backend.release(new ArrayBuffer(16)), false, "a buffer the allocator does not own");
  const buf = backend.alloc(64);
  const view = new Float32Array(buf);
  assert.equal(backend.release(buf), true);
  assert.equal(backend.release(buf), false, "a second release");
  assert.equal(view.length, 0, "stale views of a released buffer are detached");
  throwsClearly("fill", [16, view, 1], "a detached buffer");
  throwsClearly("gemm", [false, false, 2, 2, 2, 1, 1, 0, view, 2, 0, F(4), 2, 0, F(4), 2, 0], "a detached A");
  // Sub-views at an offset are used at their offset.
  const whole = F(8, 0);
  backend.fill(3, whole.subarray(4), 2);
  assert.deepEqual([...whole], [0, 0, 0, 0, 2, 2, 2, 0]);
});

test("zero sizes are valid no-ops on every binding", () => {
  const e = new Float32Array(0), ei = new Int32Array(0), one = F(1, 3);
  backend.gemm(false, false, 0, 0, 0, 1, 1, 0, e, 0, 0, e, 0, 0, e, 0, 0);
  backend.gemm(true, true, 0, 5, 3, 2, 1, 0, e, 0, 0, e, 3, 0, e, 5, 0);
  const c = F(6, 2);
  backend.gemm(false, false, 2, 3, 0, 1, 1, 0.5, e, 0, 0, e, 3, 0, c, 3, 0); // K = 0: C = beta * C
  assert.deepEqual([...c], [1, 1, 1, 1, 1, 1]);
  backend.gemm(false, false, 2, 3, 4, 0, 1, 0, e, 4, 0, e, 3, 0, e, 3, 0); // batch 0
  backend.binaryForward(0, [0, 3], [3, 1], [0, 1], e, e, e);
  backend.binaryBackward(3, [2, 0], [0, 1], [0, 1], e, e, e, e, null);
  backend.unaryForward(1, 0, e, e, 0);
  backend.unaryBackward(1, 0, e, e, e, e, 0, true);
  backend.reduceForward(0, 0, 5, 3, e, e);
  backend.reduceForward(1, 2, 0, 0, e, e);
  backend.reduceBackward(1, 0, 3, 3, e, e, false);
  backend.softmaxForward(0, 7, e, e);
  backend.softmaxForward(3, 0, e, e);
  backend.softmaxBackward(0, 7, e, e, e, false);
  backend.layernormForward(0, 1, e, one, one, 1e-5, e, e, e);
  backend.layernormBackward(0, 1, e, one, e, e, e, e, one, one, false);
  backend.geluForward(0, e, e);
  backend.geluBackward(0, e, e, e, false);
  backend.embeddingForward(0, 4, 0, ei, e, e);
  backend.embeddingBackward(0, 4, 5, ei, e, F(20));
  backend.attentionForward([0, 3, 3, 2, 2], 1, true, e, 0, 0, e, 0, 0, e, 0, 0, e, 0, 0, null);
  backend.attentionForward([1, 0, 0, 2, 2], 1, true, e, 0, 0, e, 0, 0, e, 0, 0, e, 0, 0, null);
  backend.attentionBackward([0, 2, 2, 1, 4], 1, true, e, 0, 0, e, 0, 0, e, 0, 0, e, 0, 0, e, e, e, e, e, false);
  assert.equal(backend.crossEntropyForward(0, 5, e, ei, e, e), 0);
  backend.crossEntropyBackward(0, 5, e, ei, e, 1, e);
  backend.adamwStep(0, e, e, e, e, 1e-3, 0.9, 0.999, 1e-8, 0, 1, 1);
  assert.equal(backend.sumSquares(0, e), 0);
  backend.axpy(0, 1, e, e);
  backend.fill(0, e, 1);
  backend.copyStrided([0, 5], [5, 1], e, e);
  backend.copyStrided([], [], one, F(1)); // a 0-d copy is one element
  backend.dropoutForward(0, e, e, 0.5, 1);
  backend.dropoutBackward(0, e, e, 0.5, 1, true);
});

test("after all of that the process is healthy", () => {
  const a = T.tensor([[1, 2], [3, 4], [5, 6]]);
  const b = T.tensor([[1, 0, -1], [2, 1, 0]]);
  assert.deepEqual([...T.matmul(a, b).toArray()], [5, 2, -1, 11, 4, -3, 17, 6, -5]);
  const x = T.randn([33, 17]);
  x.requiresGrad = true;
  T.sum(T.softmax(T.gelu(x))).backward();
  assert.ok(x.grad!.toArray().every((v) => Number.isFinite(v) && Math.abs(v) < 1e-5), "softmax rows sum to 1: zero gradient");
  const stats = backend.memoryStats();
  assert.ok(stats.bytesInUse >= 0 && stats.liveBlocks >= 0);
  assert.ok(["avx512", "avx2", "portable"].includes(backend.isa()));
});
