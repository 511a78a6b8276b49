/**
 * The native compute core, loaded once. Everything above this file talks to the
 * addon through `backend`, whose interface is the seam where another backend (CUDA,
 * a remote worker) would plug in: buffers are ArrayBuffers from `alloc`, kernels take
 * typed-array views positioned at each operand's first element.
 *
 *     import { backend } from "../native/index.js";
 *     backend.isa(); // "avx512" | "avx2" | "portable"
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A kernel operand on a device: a block handle and the element offset of the operand's first
 * element. Kernels accept these wherever they accept a typed array; on the CPU, typed arrays.
 */
export type DeviceRef = readonly [block: unknown, offset: number];
export type F32 = Float32Array | DeviceRef;
export type I32 = Int32Array | DeviceRef;

/** One linear of decodeLayer: format 0 float32 (w, inOut), 1 bf16 (words), 2 int8 (bytes, scales, wsum). */
export interface DecodeLinearArgs {
  format: 0 | 1 | 2;
  w?: Float32Array;
  inOut?: boolean;
  words?: Uint32Array;
  bytes?: Int8Array;
  scales?: Float32Array;
  wsum?: Int32Array;
  bias: Float32Array | null;
}

/** What a device's kernel table offers: the CPU addon's kernels, with operands as typed arrays or device references. */
export type Kernels = Omit<NativeBackend, "alloc" | "release" | "memoryStats" | "emptyCache" | "threads" | "setThreads" | "isa" | "setIsa" |
  "isaSupported" | "peakFlops" | "deviceAlloc" | "deviceFree" | "deviceUpload" | "deviceDownload" | "deviceCopy">;

export interface MemoryStats {
  bytesInUse: number;
  bytesCached: number;
  peakBytesInUse: number;
  freshAllocations: number;
  freshBytes: number;
  reuses: number;
  liveBlocks: number;
  /** Blocks of the opaque test device (storage kept out of JavaScript's reach). */
  deviceBlocks: number;
}

/** Op codes shared with native/src/kernels.h. */
export const BinaryOp = { add: 0, sub: 1, mul: 2, div: 3 } as const;
export const UnaryOp = { exp: 0, log: 1, tanh: 2, relu: 3, neg: 4, scale: 5, addScalar: 6, sqrt: 7, sigmoid: 8 } as const;
export const ReduceOp = { sum: 0, mean: 1, max: 2 } as const;

export interface NativeBackend {
  alloc(bytes: number): ArrayBuffer;
  release(buffer: ArrayBuffer): boolean;
  memoryStats(): MemoryStats;
  emptyCache(): void;
  threads(): number;
  setThreads(n: number): number;
  isa(): string;
  setIsa(name: string): string;
  isaSupported(name: string): boolean;
  peakFlops(iterations: number): number;
  gemm(ta: boolean, tb: boolean, M: number, N: number, K: number, batch: number, alpha: number, beta: number,
    A: F32, lda: number, strideA: number, B: F32, ldb: number, strideB: number, C: F32, ldc: number, strideC: number,
    bias?: F32 | null, colsum?: F32 | null): void;
  binaryForward(op: number, shape: number[], sa: number[], sb: number[], a: F32, b: F32, out: F32): void;
  binaryBackward(op: number, shape: number[], sa: number[], sb: number[], a: F32, b: F32, gout: F32,
    ga: F32 | null, gb: F32 | null): void;
  unaryForward(op: number, n: number, x: F32, y: F32, alpha: number): void;
  unaryBackward(op: number, n: number, x: F32, y: F32, gy: F32, gx: F32, alpha: number, acc: boolean): void;
  reduceForward(op: number, outer: number, n: number, inner: number, x: F32, out: F32): void;
  reduceBackward(op: number, outer: number, n: number, inner: number, gout: F32, gx: F32, acc: boolean): void;
  softmaxForward(rows: number, n: number, x: F32, y: F32): void;
  softmaxBackward(rows: number, n: number, y: F32, gy: F32, gx: F32, acc: boolean): void;
  layernormForward(rows: number, C: number, x: F32, w: F32, b: F32, eps: number, y: F32, mean: F32 | null, rstd: F32 | null): void;
  layernormBackward(rows: number, C: number, x: F32, w: F32, mean: F32, rstd: F32, gy: F32, gx: F32, gw: F32, gb: F32, acc: boolean): void;
  geluForward(n: number, x: F32, y: F32): void;
  geluBackward(n: number, x: F32, gy: F32, gx: F32, acc: boolean): void;
  embeddingForward(n: number, C: number, V: number, ids: I32, table: F32, out: F32): void;
  embeddingBackward(n: number, C: number, V: number, ids: I32, gout: F32, gtable: F32): void;
  attentionForward(dims: number[], scale: number, causal: boolean, q: F32, qBs: number, qTs: number, k: F32, kBs: number,
    kTs: number, v: F32, vBs: number, vTs: number, o: F32, oBs: number, oTs: number, lse: F32 | null,
    /** bf16 products (native/src/kernels/lowp.inc; tested, not yet faster than float32, so unused by training) */
    bf16?: boolean): void;
  attentionBackward(dims: number[], scale: number, causal: boolean, q: F32, qBs: number, qTs: number, k: F32, kBs: number,
    kTs: number, v: F32, vBs: number, vTs: number, o: F32, oBs: number, oTs: number, lse: F32,
    go: F32, gq: F32, gk: F32, gv: F32, acc: boolean, bf16?: boolean): void;
  crossEntropyForward(N: number, V: number, logits: F32, targets: I32, lse: F32, losses: F32): number;
  crossEntropyBackward(N: number, V: number, logits: F32, targets: I32, lse: F32, scale: number, glogits: F32): void;
  adamwStep(n: number, p: F32, g: F32, m: F32, v: F32, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, bc1: number, bc2: number): void;
  sumSquares(n: number, x: F32): number;
  axpy(n: number, alpha: number, x: F32, y: F32): void;
  fill(n: number, x: F32, value: number): void;
  copyStrided(shape: number[], strides: number[], src: F32, dst: F32): void;
  dropoutForward(n: number, x: F32, y: F32, p: number, seed: number): void;
  dropoutBackward(n: number, gy: F32, gx: F32, p: number, seed: number, acc: boolean): void;
  // Low precision (native/src/lowp.h): bf16 GEMM for training, packed bf16/int8 weights for inference.
  gemmBf16(ta: boolean, tb: boolean, M: number, N: number, K: number, batch: number, alpha: number, beta: number,
    A: F32, lda: number, strideA: number, B: F32, ldb: number, strideB: number, C: F32, ldc: number, strideC: number,
    bias?: F32 | null): void;
  packedSizes(N: number, K: number): { bf16Words: number; int8Bytes: number };
  packBf16(N: number, K: number, W: F32, inOut: boolean, dst: Uint32Array): void;
  packInt8(N: number, K: number, W: F32, inOut: boolean, dst: Int8Array, scales: F32, wsum: I32): void;
  linearBf16(M: number, N: number, K: number, x: F32, ldx: number, w: Uint32Array, bias: F32 | null, y: F32, ldy: number): void;
  linearInt8(M: number, N: number, K: number, x: F32, ldx: number, w: Int8Array, scales: F32, wsum: I32, bias: F32 | null,
    y: F32, ldy: number): void;
  /** y = x @ W (+ bias), float32 W [K, N] (inOut) or [N, K] read in place: the decode product (a GEMM above 8 rows). */
  linearF32(M: number, N: number, K: number, x: F32, ldx: number, w: F32, inOut: boolean, bias: F32 | null, y: F32, ldy: number): void;
  /** One GPT-2 block for M packed decoding rows, x [M, C] in place (native/src/lowp.h DecodeLayerArgs). */
  decodeLayer(M: number, C: number, NH: number, F: number, eps: number, x: F32, ln1w: F32, ln1b: F32, ln2w: F32, ln2b: F32,
    weights: DecodeLinearArgs[], counts: number[], pasts: number[], keys: F32[], values: F32[]): void;
  /** "amx" (the bf16 training GEMM on AMX tiles, the rest as avx512_bf16), "avx512_bf16" (vdpbf16ps/vpdpbusd), "avx512", "avx2" or "portable" (float32 FMAs, int32 multiplies). */
  lowpPath(): string;
  lowpNativeSupported(): boolean;
  setLowpNative(on: boolean): string;
  /** The CPU has amx_tile + amx_bf16 (and the bf16/VNNI instructions) and the kernel granted the tile state. */
  lowpAmxSupported(): boolean;
  /** Allow (the default) or forbid AMX for the bf16 training GEMM; returns the active path. */
  setLowpAmx(on: boolean): string;
  peakBf16(iterations: number): number;
  peakInt8(iterations: number): number;
  memoryBandwidth(megabytes: number, passes: number): number;
  /** The opaque test device's memory: native blocks never exposed as ArrayBuffers. */
  deviceAlloc(bytes: number): unknown;
  deviceFree(block: unknown): boolean;
  deviceUpload(block: unknown, byteOffset: number, src: Float32Array | Int32Array): void;
  deviceDownload(block: unknown, byteOffset: number, dst: Float32Array | Int32Array): void;
  deviceCopy(src: unknown, srcByteOffset: number, dst: unknown, dstByteOffset: number, bytes: number): void;
}

function findAddon(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "build", "Release", "plinth_native.node");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(
    "plinth: the native addon build/Release/plinth_native.node was not found; run `npm install` (or `npm run install`) to build it with node-gyp",
  );
}

const require = createRequire(import.meta.url);
export const backend = require(findAddon()) as NativeBackend;
