/** `plinth info`: what the native core runs on. */
import { parseArgs } from "node:util";
import { backend } from "../native/index.js";
import { lowpDescription } from "../tensor/precision.js";

export const infoHelp = `plinth info — show the native core's kernels, threads and memory

Usage: plinth info

Kernels are picked at start-up (AVX-512, AVX2+FMA or portable); PLINTH_ISA forces a
lower path and PLINTH_THREADS sets the thread count. Low precision (pretrain --precision bf16,
--weights bf16|int8) uses vdpbf16ps and vpdpbusd where the CPU has avx512_bf16 and avx512_vnni,
else the same products on float32 FMAs and int32 multiplies (PLINTH_LOWP=emulated forces that).

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
}
