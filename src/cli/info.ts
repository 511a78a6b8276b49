/** `plinth info`: what the native core runs on. */
import { parseArgs } from "node:util";
import { backend } from "../native/index.js";
import { cudaAddon } from "../native/cuda.js";
import { lowpDescription } from "../tensor/precision.js";

export const infoHelp = `plinth info — show the native core's kernels, threads, memory and GPUs

Usage: plinth info

Kernels are picked at start-up (AVX-512, AVX2+FMA or portable); PLINTH_ISA forces a
lower path and PLINTH_THREADS sets the thread count. Low precision (pretrain --precision bf16,
--weights bf16|int8) uses vdpbf16ps and vpdpbusd where the CPU has avx512_bf16 and avx512_vnni,
and AMX tiles (tdpbf16ps) for the bf16 training GEMMs where it also has amx_tile and amx_bf16
(PLINTH_LOWP=vnni turns AMX off); else the same products on float32 FMAs and int32 multiplies
(PLINTH_LOWP=emulated forces that).
GPUs are listed when the optional CUDA backend is built (npm run build:cuda; experimental).

Example:
  PLINTH_ISA=avx2 plinth info`;

export function runInfo(argv: string[]): void {
  const { values } = parseArgs({ args: argv, options: { help: { type: "boolean", short: "h" } } });
  if (values.help) {
    console.log(infoHelp);
    return;
  }
  const supported = ["avx512", "avx2", "portable"].filter((n) => backend.isaSupported(n));
  console.log(`kernels: ${backend.isa()} (this CPU supports: ${supported.join(", ")})`);
  console.log(`low precision: ${lowpDescription()}`);
  console.log(`threads: ${backend.threads()}`);
  const m = backend.memoryStats();
  console.log(`memory: ${(m.bytesInUse / 1e6).toFixed(1)} MB in use, ${(m.bytesCached / 1e6).toFixed(1)} MB cached, peak ${(m.peakBytesInUse / 1e6).toFixed(1)} MB`);
  for (const line of deviceLines()) console.log(line);
}

/** One line per CUDA GPU (name, memory, compute capability), or one saying why there are none. */
export function deviceLines(): string[] {
  const { module: cuda, reason } = cudaAddon();
  if (cuda === null) return [`cuda: none (${reason})`];
  const n = cuda.deviceCount();
  if (n === 0) return ["cuda: the CUDA backend is built, but no GPU is visible (driver missing, or CUDA_VISIBLE_DEVICES empty)"];
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  return Array.from({ length: n }, (_, i) => {
    const d = cuda.deviceInfo(i);
    return `cuda:${i}: ${d.name}, ${gib(d.totalBytes)} GiB (${gib(d.freeBytes)} free), compute capability ${d.major}.${d.minor}, ` +
      `${d.multiprocessors} SMs, GEMM via ${cuda.gemmBackend() === "cublasLt" ? "cuBLASLt" : "the addon's own kernels"} (experimental)`;
  });
}
