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

/**
 * Every parameter gradient against a fixture's. Gradients span exact zeros to O(1), so the
 * absolute tolerance is relative to each tensor's largest gradient.
 */
export function gradsMatch(named: [string, { grad: { toArray(): ArrayLike<number> } | null }][], grads: Record<string, Packed>): void {
  const byName = new Map(named);
  const have = [...byName.keys()].sort(), want = Object.keys(grads).sort();
  if (have.join() !== want.join()) throw new Error(`parameters ${have.join(", ")} vs fixture ${want.join(", ")}`);
  for (const [name, packed] of Object.entries(grads)) {
    const expected = unpack(packed).data;
    const got = byName.get(name)!.grad;
    if (got === null) throw new Error(`grad ${name}: no gradient`);
    const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    closeTo(got.toArray(), expected, 1e-4, Math.max(1e-5 * scale, 1e-9), `grad ${name}`);
  }
}

/** AdamW with the fixture's two groups: decay on the listed names, none elsewhere. */
export function fixtureGroups<P>(named: [string, P][], decay: string[], weightDecay: number): { params: P[]; weightDecay: number }[] {
  const d = new Set(decay);
  return [
    { params: named.filter(([n]) => d.has(n)).map(([, p]) => p), weightDecay },
    { params: named.filter(([n]) => !d.has(n)).map(([, p]) => p), weightDecay: 0 },
  ];
}
