// The low-precision dispatch paths this CPU has (avx512 with AMX tiles for the bf16 GEMM, avx512
// with bf16/VNNI instructions, avx512, avx2 and portable) and the small deterministic helpers the kernel tests share.
import { backend } from "../../src/native/index.js";

export const ISAS = (["avx512", "avx2", "portable"] as const).filter((isa) => backend.isaSupported(isa));
export interface Path { isa: string; native: boolean; amx?: boolean }
export const PATHS: Path[] = ISAS.flatMap((isa): Path[] => {
  if (isa !== "avx512" || !backend.lowpNativeSupported()) return [{ isa, native: false }];
  const vnni: Path[] = [{ isa, native: true }, { isa, native: false }];
  return backend.lowpAmxSupported() ? [{ isa, native: true, amx: true }, ...vnni] : vnni;
});
/** The name lowpPath() gives a path. */
export const expectedName = (p: Path): string => (p.amx === true ? "amx" : p.native ? "avx512_bf16" : p.isa);

/** Runs fn with the backend switched to path p, restoring the ISA and the native low-precision switch after. */
export function onPath<R>(p: Path, fn: () => R): R {
  const prevIsa = backend.isa();
  backend.setIsa(p.isa);
  backend.setLowpNative(p.native);
  backend.setLowpAmx(p.amx === true);
  try {
    return fn();
  } finally {
    backend.setIsa(prevIsa);
    backend.setLowpNative(true);
    backend.setLowpAmx(true);
  }
}
export const pathName = (p: Path) => onPath(p, () => backend.lowpPath());

/** A deterministic uniform generator (an LCG) and uniform vectors in [-scale, scale). */
export function lcg(seed: number): { rand: () => number; randn: (n: number, scale?: number) => Float32Array } {
  let s = seed;
  const rand = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const randn = (n: number, scale = 1): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
    return a;
  };
  return { rand, randn };
}

// float32 -> nearest bf16 (ties to even), as a float.
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
export function bf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}
