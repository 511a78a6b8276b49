/** Loads the PyTorch-generated fixtures written by scripts/torch_parity.py. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const fixtureDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test", "fixtures");

export interface Packed {
  shape: number[];
  data: string;
}

export function unpack(p: Packed): { shape: number[]; data: Float32Array } {
  const bytes = Buffer.from(p.data, "base64");
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { shape: p.shape, data };
}

export function loadFixture<T>(name: string): T {
  return JSON.parse(readFileSync(join(fixtureDir, name), "utf8")) as T;
}

/** max |a - b| / (atol + rtol |b|) <= 1, reporting the worst element. */
export function closeTo(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} vs ${b.length}`);
  let worst = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const r = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  if (!(worst <= 1)) throw new Error(`${what}: element ${at} is ${a[at]}, expected ${b[at]} (rtol ${rtol}, atol ${atol})`);
}
