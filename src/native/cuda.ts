/**
 * The optional CUDA addon (native/cuda, built by `npm install` when nvcc is found and
 * PLINTH_CUDA=1; see scripts/build-cuda.mjs). Loaded on first use; without it, or without a
 * GPU, `cudaAddon()` says why in one sentence and the CPU path is unaffected.
 *
 *     const { module, reason } = cudaAddon();
 *     if (module !== null) module.deviceCount();
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Kernels } from "./index.js";

export interface CudaDeviceInfo {
  index: number;
  name: string;
  totalBytes: number;
  freeBytes: number;
  major: number;
  minor: number;
  multiprocessors: number;
}

export interface CudaMemoryStats {
  bytesInUse: number;
  bytesCached: number;
  peakBytesInUse: number;
  /** cudaMalloc calls so far: flat after warm-up when the caching allocator serves every request. */
  deviceMallocs: number;
}

export interface CudaAddon {
  deviceCount(): number;
  deviceInfo(index: number): CudaDeviceInfo;
  memoryStats(index: number): CudaMemoryStats;
  /** "cublasLt" when libcublasLt was found at run time, else "own" (the addon's tensor-core GEMM). */
  gemmBackend(): string;
  kernels(index: number): Kernels;
  alloc(index: number, bytes: number): unknown;
  free(block: unknown): void;
  upload(block: unknown, byteOffset: number, src: Float32Array | Int32Array): void;
  download(block: unknown, byteOffset: number, dst: Float32Array | Int32Array): void;
  copy(src: unknown, srcByteOffset: number, dst: unknown, dstByteOffset: number, bytes: number): void;
  synchronize(index: number): void;
}

let loaded: { module: CudaAddon | null; reason: string } | null = null;

function findAddon(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "native", "cuda", "build", "Release", "plinth_cuda.node");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}

/** The CUDA addon, or null with the reason it is not available. */
export function cudaAddon(): { module: CudaAddon | null; reason: string } {
  if (loaded !== null) return loaded;
  const path = findAddon();
  if (path === null) {
    loaded = { module: null, reason: "the CUDA backend is not built; on a machine with nvcc run npm run build:cuda (or PLINTH_CUDA=1 npm install)" };
    return loaded;
  }
  try {
    const require = createRequire(import.meta.url);
    loaded = { module: require(path) as CudaAddon, reason: "" };
  } catch (e) {
    loaded = { module: null, reason: `the CUDA addon ${path} did not load (${(e as Error).message.split("\n")[0]})` };
  }
  return loaded;
}
