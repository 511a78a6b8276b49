// Mixed precision and low-precision inference at the model level: bf16 training tracks float32
// (losses, gradients), stays float32 where it must (parameters, checkpoints) and is recorded in
// metrics; bf16 and int8 inference weights give logits close to float32 and the same greedy
// continuation on a trained model; flags and errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryTokens } from "../src/data/tokens.js";
import { ByteTextTokenizer } from "../src/data/tokenizer.js";
import { GPT, generate, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { loadModel } from "../src/models/registry.js";
import { useInferenceWeights } from "../src/models/inference_weights.js";
import { clm, languageModeling } from "../src/train/language.js";
import { Trainer, type StepRecord } from "../src/train/trainer.js";
import { Rng, ids, noGrad, randn } from "../src/tensor/index.js";
import { linear } from "../src/tensor/ops/matmul.js";
import { parsePrecision, precision, withPrecision } from "../src/tensor/precision.js";
import { Linear } from "../src/nn/layers.js";
import { resolvePretrainOptions } from "../src/cli/pretrain.js";
import { runGenerate } from "../src/cli/generate.js";
import { execFileSync } from "node:child_process";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { backend } from "../src/native/index.js";
import { createServer } from "../src/serve/index.js";
import { makeFixture } from "./helpers/serve_fixture.js";

const config = gptConfig({ vocab_size: 64, n_positions: 32, n_embd: 64, n_layer: 2, n_head: 2, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 });
const rng = new Rng(7);
const tokens = Int32Array.from({ length: 12000 }, (_, i) => (i % 11 === 0 ? rng.int(64) : (i * 13 + (i >> 3)) % 64));
const data = { train: new MemoryTokens(tokens.subarray(0, 10000)), val: new MemoryTokens(tokens.subarray(10000)) };

function train(p: "fp32" | "bf16", steps: number, outDir?: string) {
  const model = new GPT(config, { seed: 3 });
  const trainer = new Trainer({
    model, objective: languageModeling(model, clm, { ...data, batch: 8, ctx: 32, evalWindows: 4 }), steps, lr: 3e-3, warmup: 5,
    evalEvery: 1000, quiet: true, handleSignals: false, precision: p, outDir, checkpointEvery: 1000,
  });
  return { model, run: trainer.run() };
}

const trained = (async () => {
  const fp32 = train("fp32", 60), bf16 = train("bf16", 60);
  return { fp32: { model: fp32.model, result: await fp32.run }, bf16: { model: bf16.model, result: await bf16.run } };
})();

test("bf16 training tracks float32: every step's loss within 2%, the same validation loss within 2%, different bits", async () => {
  const { fp32, bf16 } = await trained;
  const a = fp32.result.history.map((r) => r.loss), b = bf16.result.history.map((r) => r.loss);
  assert.equal(b.length, 60);
  assert.ok(a[59] < a[0] * 0.7, `float32 learns (${a[0].toFixed(3)} -> ${a[59].toFixed(3)})`);
  for (let i = 0; i < 60; i++) assert.ok(Math.abs(b[i] - a[i]) <= 0.02 * a[i], `step ${i + 1}: bf16 loss ${b[i]} vs float32 ${a[i]}`);
  assert.ok(Math.abs(bf16.result.valLoss - fp32.result.valLoss) <= 0.02 * fp32.result.valLoss, `val ${bf16.result.valLoss} vs ${fp32.result.valLoss}`);
  assert.notDeepEqual(b, a, "bf16 products change the losses' low bits (the bf16 path ran)");
  assert.equal(precision(), "fp32", "the trainer restores the precision mode");
});

test("bf16 gradients of linear are within bf16 rounding of float32, and parameters stay float32", () => {
  const x = randn([6, 40]), w = randn([40, 24]), b = randn([24]);
  for (const t of [x, w, b]) t.requiresGrad = true;
  const gy = randn([6, 24]);
  const grads = (p: "fp32" | "bf16") => withPrecision(p, () => {
    x.grad = w.grad = b.grad = null;
    const y = linear(x, w, b);
    const out = y.toArray() as Float32Array;
    y.backward(gy);
    return { out, gx: x.grad!.toArray() as Float32Array, gw: w.grad!.toArray() as Float32Array, gb: b.grad!.toArray() as Float32Array };
  });
  const f = grads("fp32"), h = grads("bf16");
  for (const k of ["out", "gx", "gw", "gb"] as const) {
    let scale = 0, worst = 0;
    for (let i = 0; i < f[k].length; i++) scale = Math.max(scale, Math.abs(f[k][i]));
    for (let i = 0; i < f[k].length; i++) worst = Math.max(worst, Math.abs(f[k][i] - h[k][i]));
    assert.ok(worst <= 0.02 * scale, `${k}: differs by ${worst} at scale ${scale}`);
    if (k !== "gb") assert.ok(worst > 0, `${k}: bf16 rounding shows`);
  }
  assert.equal(w.dtype, "float32");
  assert.equal(w.grad!.dtype, "float32");
});

test("metrics.jsonl records the precision; checkpoints stay float32 and load into a float32 run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-precision-"));
  try {
    const { model, run } = train("bf16", 3, dir);
    await run;
    const lines = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as StepRecord & { precision?: string });
    assert.deepEqual(lines.map((l) => l.precision), ["bf16", "bf16", "bf16"]);
    saveGPT(dir, model);
    const back = loadModel(dir) as GPT;
    const want = model.transformer.h[0].attn.c_attn.weight.toArray();
    assert.deepEqual(back.transformer.h[0].attn.c_attn.weight.toArray(), want, "the float32 master weights round-trip exactly");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bf16 and int8 inference weights: logits close to float32, the same greedy continuation of a trained model", async () => {
  const { fp32 } = await trained;
  const model = fp32.model;
  model.eval();
  const prompt = Array.from(tokens.subarray(10000, 10012));
  const logitsOf = () => noGrad(() => model.lastLogits(ids(prompt, [1, prompt.length])).toArray() as Float32Array);
  const greedy = () => generate(model, prompt, { maxNewTokens: 16, temperature: 0 }).tokens;
  const ref = logitsOf(), refTokens = greedy();
  let scale = 0;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  for (const [format, tol] of [["bf16", 0.03], ["int8", 0.06]] as const) {
    const report = useInferenceWeights(model, format);
    assert.equal(report.matrices, 2 * 4 + 1, "four Linears a block and the tied head");
    assert.ok(report.packedBytes < report.fp32Bytes * (format === "bf16" ? 0.55 : 0.3), `${format}: ${report.packedBytes} of ${report.fp32Bytes} bytes`);
    const got = logitsOf();
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i] - ref[i]));
    assert.ok(worst > 0 && worst <= tol * scale, `${format}: logits differ by ${worst} (scale ${scale})`);
    assert.deepEqual(greedy(), refTokens, `${format}: greedy continuation`);
    // Training reads the float32 weights even while packed ones are set.
    const layer = model.transformer.h[0].mlp.c_fc;
    const x = randn([2, config.n_embd]);
    assert.deepEqual(layer.forward(x).toArray(), linear(x, layer.weight, layer.bias).toArray());
  }
  useInferenceWeights(model, "fp32");
  assert.deepEqual(logitsOf(), ref, "fp32 drops the packed weights");
  assert.equal(model.headPacked, null);
});

test("a Linear with packed weights still trains: a product that needs a gradient reads float32", () => {
  const layer = new Linear(8, 5);
  useInferenceWeights(layer, "int8");
  assert.ok(layer.packed !== null);
  const x = randn([3, 8]);
  x.requiresGrad = true;
  layer.forward(x).backward(randn([3, 5]));
  assert.ok(layer.weight.grad !== null && x.grad !== null);
});

test("loadModel(dir, { weights }) packs on load; bad precision and weights names are clear errors before any work", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-weights-"));
  try {
    const model = new GPT(config, { seed: 1 });
    saveGPT(dir, model);
    const loaded = loadModel(dir, { weights: "int8" }) as GPT;
    assert.equal(loaded.transformer.h[1].attn.c_proj.packed?.format, "int8");
    assert.equal(loaded.headPacked?.format, "int8");
    assert.throws(() => loadModel(dir, { weights: "fp8" as never }), /load: weights "fp8": expected one of fp32, bf16, int8/);
    assert.throws(() => runGenerate(["--model", dir, "--prompt", "a", "--weights", "int4"]), /unknown --weights "int4" \(expected fp32, bf16, int8\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => parsePrecision("fp16"), /precision "fp16": expected one of fp32, bf16/);
  assert.throws(() => withPrecision("int8" as never, () => 0), /expected one of fp32, bf16/);
  assert.throws(() => new Trainer({ objective: { name: "x", unit: "tokens", next: () => 0, loss: () => { throw new Error(); }, count: () => 0 }, paramGroups: [], precision: "half" as never }),
    /Trainer: precision "half": expected one of fp32, bf16/);
  assert.throws(() => resolvePretrainOptions({ precision: "fp16" as never, outDir: "runs/x" }), /--precision must be fp32 or bf16, got "fp16"/);
});

test("plinth info says which instructions run low precision; PLINTH_LOWP=vnni turns AMX off, =emulated the bf16/VNNI instructions", () => {
  const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
  const info = (env: Record<string, string>) => execFileSync(process.execPath, [main, "info"], { env: { ...process.env, ...env }, encoding: "utf8" });
  const line = (out: string) => out.split("\n").find((l) => l.startsWith("low precision: ")) ?? "";
  if (backend.lowpAmxSupported()) {
    assert.match(line(info({})), /^low precision: amx: AMX tiles \(tdpbf16ps\) for bf16 training GEMMs, vdpbf16ps for bf16 weights, vpdpbusd \(avx512_vnni\) for int8$/);
    assert.match(line(info({ PLINTH_LOWP: "vnni" })), /^low precision: avx512_bf16: vdpbf16ps for bf16, vpdpbusd \(avx512_vnni\) for int8 \(AMX turned off: PLINTH_LOWP=vnni\)$/);
  }
  if (backend.lowpNativeSupported()) {
    if (!backend.lowpAmxSupported()) assert.match(line(info({})), /^low precision: avx512_bf16: vdpbf16ps for bf16, vpdpbusd \(avx512_vnni\) for int8$/);
    assert.match(line(info({ PLINTH_LOWP: "emulated" })), /^low precision: avx512: bf16 widened to float32 FMAs, int8 on int32 multiplies \(bf16\/VNNI instructions turned off/);
  } else {
    assert.match(line(info({})), /this CPU has no avx512_bf16 \+ avx512_vnni; correct, slower\)$/);
  }
  assert.match(line(info({ PLINTH_ISA: "portable" })), /^low precision: portable: bf16 widened to float32 FMAs/);
});

test("generate, embed and eval --perplexity take --weights: the same numbers within low-precision error", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-weights-cli-"));
  const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
  const cli = (...args: string[]) => execFileSync(process.execPath, [main, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  try {
    const cfg = gptConfig({ vocab_size: new ByteTextTokenizer().vocabSize, n_positions: 64, n_embd: 32, n_layer: 1, n_head: 2 });
    saveGPT(dir, new GPT(cfg, { seed: 2 }));
    const text = join(dir, "held-out.txt");
    writeFileSync(text, "the whale surfaced beside the ship, and the sea was calm again. ".repeat(4));
    const ppl = (w: string) => Number(/perplexity ([\d.]+)/.exec(cli("eval", "--base", dir, "--perplexity", text, "--weights", w))![1]);
    const f = ppl("fp32");
    for (const w of ["bf16", "int8"]) assert.ok(Math.abs(ppl(w) - f) <= 0.01 * f, `${w} perplexity ${ppl(w)} vs ${f}`);
    const vec = (w: string) => (JSON.parse(cli("embed", "--model", dir, "--text", "the sea", "--json", "--weights", w)) as { embedding: number[] }).embedding;
    const e = vec("fp32"), q = vec("int8");
    const dot = e.reduce((s, v, i) => s + v * q[i], 0), n = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    assert.ok(dot / (n(e) * n(q)) > 0.999, `int8 embedding cosine ${dot / (n(e) * n(q))}`);
    assert.match(cli("generate", "--model", dir, "--prompt", "the ", "--max-tokens", "4", "--temperature", "0", "--weights", "bf16"), /^the /);
    assert.throws(() => cli("eval", "--base", dir, "--task", "sentiment", "--weights", "int8"), /--weights applies to --perplexity/);
    assert.throws(() => cli("embed", "--model", dir, "--text", "a", "--weights", "q4"), /unknown --weights "q4"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("plinth serve on int8 weights: the same greedy completion and near-equal embeddings as float32; adapters still apply", async () => {
  const fx = await makeFixture();
  const ask = async (weights: "fp32" | "int8") => {
    const server = await createServer({ registry: fx.dbPath, runJobs: false, weights });
    try {
      const url = await server.listen({ port: 0 });
      const post = async (path: string, body: object) => {
        const r = await fetch(`${url}/v1/${path}`, { method: "POST", headers: { authorization: `Bearer ${fx.keyA}`, "content-type": "application/json" }, body: JSON.stringify(body) });
        assert.equal(r.status, 200, await r.clone().text());
        return r.json() as Promise<Record<string, unknown>>;
      };
      const req = { model: "tiny", prompt: "the movie was", max_tokens: 8, temperature: 0 };
      const text = ((await post("completions", req)).choices as { text: string }[])[0].text;
      const adapted = ((await post("completions", { ...req, model: "tiny:style", logprobs: 1 })).choices as { logprobs: { token_logprobs: number[] } }[])[0].logprobs.token_logprobs;
      const base = ((await post("completions", { ...req, logprobs: 1 })).choices as { logprobs: { token_logprobs: number[] } }[])[0].logprobs.token_logprobs;
      const emb = ((await post("embeddings", { model: "tiny", input: "the movie was good" })).data as { embedding: number[] }[])[0].embedding;
      const packed = (await server.host.base("tiny")).model as unknown as GPT;
      return { text, adapted, base, emb, packedFormat: packed.transformer.h[0].attn.c_attn.packed?.format ?? "fp32" };
    } finally {
      await server.close();
    }
  };
  try {
    const f = await ask("fp32"), q = await ask("int8");
    assert.equal(f.packedFormat, "fp32");
    assert.equal(q.packedFormat, "int8");
    assert.equal(q.text, f.text, "greedy completion");
    assert.notDeepEqual(q.adapted, q.base, "the LoRA adapter changes the output over the int8 base");
    const dot = f.emb.reduce((s, v, i) => s + v * q.emb[i], 0), n = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    assert.ok(dot / (n(f.emb) * n(q.emb)) > 0.999, `embedding cosine ${dot / (n(f.emb) * n(q.emb))}`);
  } finally {
    fx.cleanup();
  }
});

test("PLINTH_PRECISION sets the precision of trainers that take no flag; a bad value is an error naming it", async () => {
  const prev = process.env.PLINTH_PRECISION;
  try {
    process.env.PLINTH_PRECISION = "bf16";
    const { run } = train("fp32", 2);  // an explicit option wins over the variable
    assert.equal((await run).history[0].precision, undefined);
    const model = new GPT(config, { seed: 3 });
    const r = await new Trainer({ model, objective: languageModeling(model, clm, { ...data, batch: 2, ctx: 16, evalWindows: 1 }), steps: 2, quiet: true, handleSignals: false }).run();
    assert.deepEqual(r.history.map((h) => h.precision), ["bf16", "bf16"]);
    process.env.PLINTH_PRECISION = "half";
    assert.throws(() => new Trainer({ model, objective: languageModeling(model, clm, { ...data, batch: 2, ctx: 16 }), steps: 1, quiet: true, handleSignals: false }),
      /PLINTH_PRECISION "half": expected one of fp32, bf16/);
  } finally {
    if (prev === undefined) delete process.env.PLINTH_PRECISION;
    else process.env.PLINTH_PRECISION = prev;
  }
});
