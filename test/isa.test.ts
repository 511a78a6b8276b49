// Runtime CPU dispatch: every ISA path this machine has (AVX-512, AVX2+FMA, portable) runs
// every kernel on the same inputs and agrees within float32 tolerance; ops gradcheck under
// each; PLINTH_ISA and PLINTH_THREADS are honoured, and one thread gives the same results.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { backend } from "../src/native/index.js";
import * as T from "../src/tensor/index.js";
import { assertClose, gradcheck, type InputSpec } from "./helpers/gradcheck.js";
import { decode, kernelCases, runAll, type Outputs } from "./helpers/kernels.js";
import {
  attentionRef, binaryRef, crossEntropyRef, geluRef, layerNormRef, matmulRef, reduceRef, softmaxRef, type Reference,
} from "./helpers/reference.js";

const ALL = ["avx512", "avx2", "portable"] as const;
const supported = ALL.filter((isa) => backend.isaSupported(isa));
const original = backend.isa();

function onIsa<R>(isa: string, fn: () => R): R {
  const prev = backend.isa();
  assert.equal(backend.setIsa(isa), isa);
  try {
    return fn();
  } finally {
    backend.setIsa(prev);
  }
}

// Paths differ in vector width, summation order and FMA contraction: float32 rounding
// differences of a few ulp, growing ~ sqrt(terms) in the longest sums (K = 300 GEMMs,
// 70,000-element reductions), stay below 1e-5 of each output's scale. Dropout masks are
// integer hashes and must agree exactly (the same elements dropped).
const ATOL = 1e-5, RTOL = 1e-5;

function assertAgree(what: string, got: Outputs, want: Outputs): void {
  assert.deepEqual(Object.keys(got), Object.keys(want), `${what}: outputs`);
  for (const k of Object.keys(want)) {
    if (k === "dropout y" || k === "dropout gx") {
      const differ = got[k].findIndex((v, i) => (v === 0) !== (want[k][i] === 0));
      assert.equal(differ, -1, `${what} ${k}: element ${differ} is ${got[k][differ]} vs ${want[k][differ]}: the masks differ`);
    }
    assertClose(`${what} ${k}`, got[k], want[k], ATOL, RTOL);
  }
}

test(`this machine's ISAs: ${supported.join(", ")}; active: ${original}`, () => {
  assert.ok(supported.includes("portable"), "the portable path is always there");
  assert.ok((supported as readonly string[]).includes(original));
  if (!process.env.PLINTH_ISA) assert.equal(original, supported[0], "the widest supported path is the default");
  for (const isa of supported) onIsa(isa, () => assert.equal(backend.isa(), isa));
  assert.equal(backend.isa(), original);
  for (const isa of ALL) {
    if (supported.includes(isa)) continue;
    assert.throws(() => backend.setIsa(isa), /^RangeError: setIsa: ISA '.*' is unknown or not supported by this CPU/);
    assert.equal(backend.isa(), original);
  }
});

for (const c of kernelCases) {
  test(`${c.name}: ${supported.join(", ")} agree`, () => {
    const base = onIsa("portable", c.run);
    const ref = c.reference?.();
    for (const isa of supported) {
      const outs = isa === "portable" ? base : onIsa(isa, c.run);
      for (const v of Object.values(outs)) assert.ok(v.every((x) => !Number.isNaN(x)), `${c.name} on ${isa}: NaN in the output`);
      if (isa !== "portable") assertAgree(`${c.name}: ${isa} vs portable`, outs, base);
      if (ref) for (const [k, want] of Object.entries(ref)) assertClose(`${c.name} ${k}: ${isa} vs float64`, outs[k], want, ATOL, RTOL);
    }
  });
}

// ---- ops under each ISA --------------------------------------------------------------------

const TR: InputSpec["view"] = { transpose: [-2, -1] };
const opChecks: [string, InputSpec[], (xs: T.Tensor[]) => T.Tensor, Reference][] = [
  ["matmul [3,33]ᵀ @ [33,65]", [{ shape: [3, 33], view: TR }, { shape: [33, 65] }], ([a, b]) => T.matmul(a, b), matmulRef],
  ["matmul batched, b transposed", [{ shape: [2, 3, 17] }, { shape: [2, 17, 33], view: TR }], ([a, b]) => T.matmul(a, b), matmulRef],
  ["mul [3,17] * [17]", [{ shape: [3, 17] }, { shape: [17] }], ([a, b]) => T.mul(a, b), binaryRef((a, b) => a * b)],
  ["gelu [65]", [{ shape: [65], std: 2 }], ([x]) => T.gelu(x), geluRef],
  ["softmax [3,33] view", [{ shape: [3, 33], std: 2, view: TR }], ([x]) => T.softmax(x), softmaxRef],
  ["layerNorm [3,65]", [{ shape: [3, 65] }, { shape: [65], range: [0.5, 1.5] }, { shape: [65] }],
    ([x, w, b]) => T.layerNorm(x, w, b), layerNormRef()],
  ["causalSelfAttention B=2 T=17 C=12 heads=3", [{ shape: [2, 17, 36] }], ([x]) => T.causalSelfAttention(x, 3), attentionRef(3)],
  ["crossEntropy [5,33]", [{ shape: [5, 33], std: 2 }], ([x]) => T.crossEntropy(x, T.ids([0, 32, -1, 7, 3])), crossEntropyRef([0, 32, -1, 7, 3])],
  ["mean over axis 1 of [3,17,5]", [{ shape: [3, 17, 5] }], ([x]) => T.mean(x, 1), reduceRef("mean", 1)],
];

for (const isa of supported) {
  test(`ops gradcheck on ${isa}`, () => {
    onIsa(isa, () => {
      for (const [name, specs, op, ref] of opChecks) gradcheck(`${name} on ${isa}`, specs, op, ref);
    });
  });
}

// ---- environment and threads -------------------------------------------------------------

const nativeUrl = new URL("../src/native/index.js", import.meta.url).href;
const kernelsUrl = new URL("./helpers/kernels.js", import.meta.url).href;

function child(code: string, env: Record<string, string>): string {
  const base = { ...process.env };
  delete base.PLINTH_ISA;
  delete base.PLINTH_THREADS;
  return execFileSync(process.execPath, ["--input-type=module", "-e", code], {
    env: { ...base, ...env },
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
}

test("PLINTH_ISA selects the path (and an unsupported or unknown name falls back to the widest)", () => {
  const code = `import { backend } from ${JSON.stringify(nativeUrl)}; console.log(backend.isa());`;
  for (const isa of [...ALL, "bogus", ""]) {
    const want = (supported as readonly string[]).includes(isa) ? isa : supported[0];
    assert.equal(child(code, { PLINTH_ISA: isa }).trim(), want, `PLINTH_ISA=${isa}`);
  }
  assert.equal(child(code, { PLINTH_ISA: "portable" }).trim(), "portable");
});

test("PLINTH_THREADS=1 runs one thread and gives the same results", () => {
  const code = `import { backend } from ${JSON.stringify(nativeUrl)};
    import { runAll, encode } from ${JSON.stringify(kernelsUrl)};
    backend.setIsa(${JSON.stringify(original)});
    process.stdout.write(JSON.stringify({ threads: backend.threads(), isa: backend.isa(), results: encode(runAll()) }));`;
  const reply = JSON.parse(child(code, { PLINTH_THREADS: "1" })) as { threads: number; isa: string; results: string };
  assert.equal(reply.threads, 1);
  assert.equal(reply.isa, original);
  const single = decode(reply.results);
  const here = runAll();
  for (const c of kernelCases) assertAgree(`${c.name}: 1 thread vs ${backend.threads()}`, single[c.name], here[c.name]);
  // PLINTH_THREADS=3 is honoured too (more threads than cores is allowed).
  const threads = child(`import { backend } from ${JSON.stringify(nativeUrl)}; console.log(backend.threads());`, { PLINTH_THREADS: "3" });
  assert.equal(threads.trim(), "3");
});

test("setThreads resizes the pool in process, and results do not depend on it", () => {
  // 7 and 16 threads split the work as a 16-core machine would, even on fewer cores.
  const n = backend.threads();
  try {
    const counts = [1, 3, 7, 16];
    const results = [...counts, n].map((t) => {
      assert.equal(backend.setThreads(t), t);
      return runAll();
    });
    const mine = results[counts.length];
    counts.forEach((t, i) => {
      for (const c of kernelCases) assertAgree(`${c.name}: ${t} threads vs ${n}`, results[i][c.name], mine[c.name]);
    });
  } finally {
    backend.setThreads(n);
  }
  assert.equal(backend.threads(), n);
});
