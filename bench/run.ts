/**
 * `npm run bench`: the core engine's benchmark.
 *
 *   peak    register-only FMA loop -> the machine's fp32 peak (GFLOPS) on every thread
 *   gemm    GFLOPS on ../shared/bench/torch_ref.py's GEMM shapes (+ GPT's transposed shapes)
 *   gpt     GPT-2 training step on configs S and M: tokens/s, GFLOPS, model FLOPs utilisation
 *   memory  RSS and native memory over 300 training steps of config S (leak check), peak memory
 *   tokenizer  BPE encode throughput beside @huggingface/tokenizers on the same text (not in the default set)
 *   data    trainer throughput on real token shards vs synthetic batches; corpus preparation: peak RSS
 *           by corpus size, MB/s on 1 and 2 threads beside @huggingface/tokenizers (bench/prep.ts;
 *           not in the default set)
 *   clip    CLIP training images/s beside scripts/torch_clip_bench.py, same run (not in the default set)
 *   interop GPT generation tokens/s: Plinth beside onnxruntime-node and llama.cpp on its exports (--configs small,S,M; not in the default set)
 *   serve   load test of plinth serve: continuous batching vs one request at a time (not in the default set)
 *   genserve  32 concurrent chats over 8 generative LoRA adapters on one base beside the same load on the base
 *           alone: tokens/s, p50/p99, greedy replies alone and batched (bench/genserve.ts; not in the default set)
 *   distributed  data-parallel over MPI: 2 ranks x 1 thread beside 1 rank x 2 threads (S, M), hidden
 *           communication, all-reduce by size, alpha-beta fit, projection to 64 machines (bench/distributed.ts; not in the default set)
 *   precision  bf16/int8 beside fp32: dot-product peaks, memory bandwidth, training GEMMs, packed-weight
 *           linears, training tokens/s (S, M), decode tokens/s beside the bandwidth limit (bench/precision.ts;
 *           not in the default set)
 *   replicas  plinth serve --replicas: 1 vs 3 replicas behind HAProxy, adapter-aware routing vs round robin, 64 connections over 16 adapters (not in the default set)
 *   replicas-faults  the same load on 3 replicas (adapter-aware) through two faults: kill -9 of the replica running a
 *           fine-tuning job, with streams in flight; a PostgreSQL restart. Errors by replica, the job's re-run,
 *           503s and recovery, the registry before and after; exit code 1 when a goal fails (bench/replicas_faults.ts;
 *           not in the default set)
 *   decode  greedy decoding tokens/s of configs small, S, M on 1 and 2 threads: fused decode blocks with fp32,
 *           bf16 and int8 weights beside the op-by-op forward, onnxruntime-node on its exports and the
 *           bandwidth limit (bench/decode.ts; also in precision; not in the default set)
 *   fairness  a tenant's chat latency, small encoder requests and small job while another floods the encoders and trains (not in the default set)
 *
 * Flags: --torch (run torch_ref.py in the same run and print ratios), --json (one JSON
 * object per line, same fields as torch_ref.py), --only peak,gemm,gpt,memory,
 * --configs S,M, --steps N, --memory-steps N, --rounds N, --precision fp32|bf16 (the gpt section's
 * training steps; the precision section always runs both).
 *
 * With --torch, gemm and gpt run in `--rounds` interleaved rounds (default 3; 1 without --torch):
 * plinth, then torch_ref.py, then torch_ref.py, then plinth, ... Each side reports its median
 * round and all rounds; the ratio is median over median, with the range of the rounds' own
 * ratios (round_ratios). Load from other tenants of a shared machine comes and goes within
 * seconds, so one round each could land one side in a quiet spell and the other in a busy one.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { backend } from "../src/native/index.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { Rng, emptyCache, ids, memoryStats } from "../src/tensor/index.js";
import { Tokenizer } from "@huggingface/tokenizers";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { loadSource } from "../src/data/sources.js";
import { prepareCorpus } from "../src/data/prepare.js";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { MemoryTokens } from "../src/data/tokens.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { clm, languageModeling } from "../src/train/language.js";
import { Trainer } from "../src/train/trainer.js";
import { clipBench } from "./clip.js";
import { serveBench } from "./serve.js";
import { replicasBench } from "./replicas.js";
import { faultsTable, replicasFaultsBench } from "./replicas_faults.js";
import { genserveBench } from "./genserve.js";
import { fairnessBench, fairnessFailures, fairnessTable } from "./fairness.js";
import { interopBench } from "./interop.js";
import { prepBench } from "./prep.js";
import { distributedBench } from "./distributed.js";
import { precisionBench } from "./precision.js";
import { decodeBench } from "./decode.js";
import { PRECISIONS, type Precision, withPrecision } from "../src/tensor/precision.js";

const CONFIGS: Record<string, { vocab: number; d: number; layers: number; heads: number; ctx: number; batch: number }> = {
  S: { vocab: 4096, d: 256, layers: 4, heads: 4, ctx: 128, batch: 16 },
  M: { vocab: 8192, d: 512, layers: 8, heads: 8, ctx: 256, batch: 8 },
};
const GEMM_SHAPES: [number, number, number][] = [[512, 512, 512], [1024, 1024, 1024], [2048, 2048, 2048], [2048, 768, 768], [2048, 3072, 768], [2048, 768, 3072]];
// Shapes of GPT training's backward GEMMs (dX = dY W^T and dW = X^T dY), config M.
const GPT_GEMMS: { m: number; n: number; k: number; ta: boolean; tb: boolean; what: string }[] = [
  { m: 2048, n: 512, k: 2048, ta: false, tb: true, what: "dX of c_fc (M)" },
  { m: 512, n: 2048, k: 2048, ta: true, tb: false, what: "dW of c_fc (M)" },
  { m: 2048, n: 8192, k: 512, ta: false, tb: true, what: "LM head logits (M)" },
  { m: 512, n: 8192, k: 2048, ta: true, tb: false, what: "dW of LM head (M)" },
];

const { values } = parseArgs({
  options: {
    torch: { type: "boolean" }, json: { type: "boolean" }, only: { type: "string" }, configs: { type: "string" },
    steps: { type: "string" }, "memory-steps": { type: "string" }, rounds: { type: "string" }, help: { type: "boolean", short: "h" },
    precision: { type: "string" },
  },
});
if (values.help) {
  console.log(readHeader());
  process.exit(0);
}
const only = new Set((values.only ?? "peak,gemm,gpt,memory").split(","));
const configs = (values.configs ?? "S,M").split(",");
const steps = Number(values.steps ?? 10);
const rounds = Number(values.rounds ?? (values.torch ? 3 : 1));
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`npm run bench: --rounds ${values.rounds}: expected a positive integer`);
  process.exit(2);
}
const memorySteps = Number(values["memory-steps"] ?? 300);
if (values.precision !== undefined && !(PRECISIONS as readonly string[]).includes(values.precision)) {
  console.error(`npm run bench: --precision ${values.precision}: expected ${PRECISIONS.join(" or ")}`);
  process.exit(2);
}
// --precision bf16: the gpt section's training steps run their matrix products in bf16 (tensor/precision.ts).
const trainPrecision = (values.precision ?? "fp32") as Precision;
const threads = backend.threads();
const here = dirname(fileURLToPath(import.meta.url));
const torchRef = [join(here, "..", "..", "..", "shared", "bench", "torch_ref.py"), join(process.cwd(), "..", "shared", "bench", "torch_ref.py")].find(existsSync);

type Row = Record<string, string | number | boolean>;
const results: Row[] = [];
function emit(row: Row): void {
  results.push(row);
  if (values.json) console.log(JSON.stringify(row));
  else console.log(`  ${Object.entries(row).filter(([k, v]) => k !== "bench" && !(k === "impl" && v === "plinth")).map(([k, v]) => `${k}=${v}`).join("  ")}`);
}
function section(title: string): void {
  if (!values.json) console.log(`\n${title}`);
}

/**
 * PyTorch beside Plinth (with --torch): runs `script` (torch_ref.py itself, or a project script
 * given torch_ref.py's path first) with the bench's thread count; one row per JSON line it prints.
 */
function torch(args: string[], script?: string): Row[] {
  if (!values.torch) return [];
  if (torchRef === undefined) throw new Error("--torch: ../shared/bench/torch_ref.py was not found");
  const argv = script === undefined ? [torchRef, ...args] : [script, torchRef, ...args];
  const r = spawnSync("/usr/bin/python3", [...argv, "--threads", String(threads)], { encoding: "utf8", env: { ...process.env } });
  if (r.status !== 0) throw new Error(`${script ?? "torch_ref.py"} ${args.join(" ")} failed (is python3-torch installed? apt-get install -y python3-torch libopenblas0-pthread):\n${r.stderr}`);
  return r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Row);
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * `rounds` interleaved rounds of ours() and torch_ref.py (args): plinth, torch, torch, plinth, ...
 * Returns each side's rows per round (torch's empty without --torch).
 */
function interleaved<T>(ours: () => T, args: string[]): { mine: T[]; theirs: Row[][] } {
  const mine: T[] = [], theirs: Row[][] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 1 && values.torch) theirs.push(torch(args));
    mine.push(ours());
    if (r % 2 === 0 && values.torch) theirs.push(torch(args));
  }
  return { mine, theirs };
}

const roundRatios = new Map<string, string>();  // "bench case" -> range of the rounds' own ratios
/** Records the range of ours[i] / theirs[i] over the rounds where both sides have a value. */
function pairRounds(bench: string, key: string, ours: number[], theirs: number[]): void {
  const r = ours.map((v, i) => v / theirs[i]).filter(Number.isFinite);
  if (r.length > 0) roundRatios.set(`${bench} ${key}`, `${Math.min(...r).toFixed(2)}-${Math.max(...r).toFixed(2)}x`);
}

/** The torch row of `key` with its field replaced by the median over rounds, plus all rounds. */
function torchMedian(theirs: Row[][], match: (r: Row) => boolean, field: string): Row | undefined {
  const rs = theirs.map((rows) => rows.find(match)).filter((r): r is Row => r !== undefined);
  if (rs.length === 0) return undefined;
  const vals = rs.map((r) => Number(r[field]));
  const mid = median(vals);
  const best = rs.reduce((a, b) => (Math.abs(Number(a[field]) - mid) <= Math.abs(Number(b[field]) - mid) ? a : b));
  return { ...best, [field]: round(mid), rounds: rs.length, all: vals.join("/") };
}

function time(fn: () => void, iters: number): number {
  fn();
  const t = performance.now();
  for (let i = 0; i < iters; i++) fn();
  return (performance.now() - t) / iters / 1000;
}

let peak = NaN, bf16Peak = NaN;
if (!values.json) console.log(`plinth benchmark · ${backend.isa()} kernels · ${threads} threads${values.torch ? " · torch_ref.py side by side" : ""}`);

if (only.has("peak") || only.has("gpt")) {
  section("peak: register-only FMA loop");
  backend.peakFlops(2e6);
  peak = Math.max(...Array.from({ length: 7 }, () => backend.peakFlops(5e7))) / 1e9;
  emit({ impl: "plinth", bench: "peak", isa: backend.isa(), threads, gflops: round(peak) });
  if (trainPrecision === "bf16") {
    bf16Peak = Math.max(...Array.from({ length: 7 }, () => backend.peakBf16(3e7))) / 1e9;
    emit({ impl: "plinth", bench: "peak", path: backend.lowpPath(), what: "bf16 dot-product loop", threads, gflops: round(bf16Peak) });
  }
}

if (only.has("gemm")) {
  section("gemm: C = A @ B, float32");
  const gemmRound = (): number[] =>
    GEMM_SHAPES.map(([m, n, k]) => {
      const a = new Float32Array(m * k).fill(0.5), b = new Float32Array(k * n).fill(0.25), c = new Float32Array(m * n);
      const iters = Math.max(3, Math.floor(2e10 / (2 * m * n * k)));
      const dt = time(() => backend.gemm(false, false, m, n, k, 1, 1, 0, a, k, 0, b, n, 0, c, n, 0), iters);
      return (2 * m * n * k) / dt / 1e9;
    });
  const { mine: gemmMine, theirs: gemmTheirs } = interleaved(gemmRound, ["gemm"]);
  GEMM_SHAPES.forEach(([m, n, k], i) => {
    const all = gemmMine.map((r) => r[i]);
    emit({ impl: "plinth", bench: "gemm", m, n, k, gflops: round(median(all)), rounds, all: all.map((v) => round(v)).join("/") });
    const match = (r: Row): boolean => r.m === m && r.n === n && r.k === k;
    const t = torchMedian(gemmTheirs, match, "gflops");
    pairRounds("gemm", `${m}x${n}x${k}`, all, gemmTheirs.map((rows) => Number(rows.find(match)?.gflops)));
    if (t !== undefined) emit(t);
  });
  for (const g of GPT_GEMMS) {
    const a = new Float32Array(g.m * g.k).fill(0.5), b = new Float32Array(g.k * g.n).fill(0.25), c = new Float32Array(g.m * g.n);
    const iters = Math.max(3, Math.floor(1e10 / (2 * g.m * g.n * g.k)));
    const dt = time(() => backend.gemm(g.ta, g.tb, g.m, g.n, g.k, 1, 1, 0, a, g.ta ? g.m : g.k, 0, b, g.tb ? g.k : g.n, 0, c, g.n, 0), iters);
    emit({ impl: "plinth", bench: "gemm", m: g.m, n: g.n, k: g.k, ta: g.ta, tb: g.tb, what: g.what, gflops: round((2 * g.m * g.n * g.k) / dt / 1e9) });
  }
  if (gemmTheirs.length > 0) ratios("gemm", (r) => `${r.m}x${r.n}x${r.k}`, "gflops");
}

function gptBench(name: string): void {
  const c = CONFIGS[name];
  const model = new GPT(gptConfig({ vocab_size: c.vocab, n_embd: c.d, n_layer: c.layers, n_head: c.heads, n_positions: c.ctx }));
  const opt = new AdamW(model.paramGroups(0.1), { lr: 3e-4 });
  const rng = new Rng(0);
  const batch = () => ids(Array.from({ length: c.batch }, () => Array.from({ length: c.ctx }, () => rng.int(c.vocab))));
  const x = batch(), y = batch();
  let loss = NaN;
  const step = () => {
    const out = withPrecision(trainPrecision, () => {
      const o = model.forward(x, y);
      loss = o.loss!.item();
      o.loss!.backward();
      return o;
    });
    clipGradNorm(model.parameters(), 1);
    opt.step();
    opt.zeroGrad();
    out.loss!.release();
  };
  for (let i = 0; i < 2; i++) step();
  const params = model.numParameters();
  const tokens = c.batch * c.ctx;
  const flops = 6 * params * tokens + 12 * c.layers * c.d * c.ctx * tokens;
  const { mine, theirs } = interleaved(() => tokens / time(step, steps), ["gpt", name, "--steps", String(Math.min(steps, 5))]);
  const tps = median(mine), dt = tokens / tps;
  const gflops = flops / dt / 1e9;
  emit({
    impl: "plinth", bench: "gpt", config: name, precision: trainPrecision, params, step_ms: round(dt * 1e3), tokens_per_s: Math.round(tps),
    gflops: round(gflops), loss: Math.round(loss * 1e4) / 1e4, mfu: round((gflops / peak) * 100) + "%",
    ...(trainPrecision === "bf16" ? { mfu_of_bf16_peak: round((gflops / bf16Peak) * 100) + "%" } : {}),
    peak_native_mb: round(backend.memoryStats().peakBytesInUse / 1e6), rss_mb: round(process.memoryUsage().rss / 1e6),
    rounds, all: mine.map((v) => Math.round(v)).join("/"),
  });
  const match = (r: Row): boolean => r.config === name;
  const t = torchMedian(theirs, match, "tokens_per_s");
  if (t !== undefined) emit({ ...t, tokens_per_s: Math.round(Number(t.tokens_per_s)) });
  pairRounds("gpt", name, mine, theirs.map((rows) => Number(rows.find(match)?.tokens_per_s)));
  x.release();
  y.release();
}

if (only.has("gpt")) {
  section("gpt: one AdamW training step (forward, backward, clip, update)");
  for (const name of configs) {
    gptBench(name);
  }
  if (values.torch) ratios("gpt", (r) => String(r.config), "tokens_per_s");
}

if (only.has("memory")) {
  section(`memory: ${memorySteps} training steps of config S`);
  emptyCache();  // start from what this section allocates itself
  const c = CONFIGS.S;
  const model = new GPT(gptConfig({ vocab_size: c.vocab, n_embd: c.d, n_layer: c.layers, n_head: c.heads, n_positions: c.ctx }));
  const opt = new AdamW(model.paramGroups(0.1), { lr: 3e-4 });
  const rng = new Rng(1);
  const batch = () => ids(Array.from({ length: c.batch }, () => Array.from({ length: c.ctx }, () => rng.int(c.vocab))));
  const samples: Row[] = [];
  for (let s = 1; s <= memorySteps; s++) {
    const x = batch(), y = batch();
    const { loss } = model.forward(x, y);
    loss!.backward();
    clipGradNorm(model.parameters(), 1);
    opt.step();
    opt.zeroGrad();
    loss!.release();
    x.release();
    y.release();
    if (s === 10 || s % 100 === 0 || s === memorySteps) {
      const m = memoryStats();
      const row = { impl: "plinth", bench: "memory", step: s, rss_mb: round(process.memoryUsage().rss / 1e6), tensors_mb: round(m.bytesInUse / 1e6), pooled_mb: round(m.pooledBytes / 1e6), fresh_allocations: m.freshAllocations, peak_native_mb: round(m.peakNativeBytes / 1e6) };
      samples.push(row);
      emit(row);
    }
  }
  const first = samples[0], last = samples[samples.length - 1];
  emit({ impl: "plinth", bench: "memory-summary", steps: memorySteps, rss_growth_mb: round(Number(last.rss_mb) - Number(first.rss_mb)), fresh_allocations_after_step_10: Number(last.fresh_allocations) - Number(first.fresh_allocations), peak_native_mb: last.peak_native_mb });
}

if (only.has("tokenizer")) {
  section("tokenizer: byte-level BPE encode throughput on held-out text");
  const docs = loadSource("english").docs.map((d) => d.text);
  const trainText = docs.filter((_, i) => i % 4 !== 0);
  const held = docs.filter((_, i) => i % 4 === 0).join("\n").slice(0, 1_000_000);
  const bpe = trainBPE(trainText.map((t) => t.slice(0, 4000)), { vocabSize: 4096 });
  const hf = new Tokenizer(bpe.toJSON() as unknown as ConstructorParameters<typeof Tokenizer>[0], { clean_up_tokenization_spaces: false });
  const mb = Buffer.byteLength(held, "utf8") / 1e6;
  const ours = time(() => new BPETextTokenizer(bpe).encode(held), 3);
  const theirs = time(() => hf.encode(held, { add_special_tokens: false }), 3);
  emit({ impl: "plinth", bench: "tokenizer", mb: round(mb, 2), mb_per_s: round(mb / ours, 2) });
  emit({ impl: "@huggingface/tokenizers", bench: "tokenizer", mb: round(mb, 2), mb_per_s: round(mb / theirs, 2) });
  emit({ impl: "ratio", bench: "tokenizer", ratio: round(theirs / ours, 2) + "x" });
}

if (only.has("data")) {
  section("data: trainer throughput on real shards vs synthetic batches (config S shape, 20 steps each)");
  const dir = mkdtempSync(join(tmpdir(), "plinth-bench-data-"));
  try {
    const bpe = trainBPE(loadSource("moby-dick").docs.map((d) => d.text), { vocabSize: 4096 });
    const corpus = await prepareCorpus({ specs: ["moby-dick"], tokenizer: new BPETextTokenizer(bpe), outDir: join(dir, "data") });
    const rng = new Rng(3);
    const synthetic = new MemoryTokens(Int32Array.from({ length: 1 << 20 }, () => rng.int(4096)));
    const c = CONFIGS.S;
    const measure = async (train: typeof synthetic | typeof corpus.train, val: typeof synthetic | typeof corpus.val, name: string) => {
      const model = new GPT(gptConfig({ vocab_size: 4096, n_embd: c.d, n_layer: c.layers, n_head: c.heads, n_positions: c.ctx }));
      const t = new Trainer({ model, objective: languageModeling(model, clm, { train, val, batch: c.batch, ctx: c.ctx, evalWindows: 1 }), outDir: join(dir, name), steps: 22, evalEvery: 1e9, checkpointEvery: 1e9, quiet: true, handleSignals: false });
      const r = await t.run();
      const steady = r.history.slice(2);
      const tps = ((steady.length * c.batch * c.ctx) / (steady[steady.length - 1].seconds - r.history[1].seconds));
      emit({ impl: "plinth", bench: "data", source: name, tokens_per_s: Math.round(tps) });
      return tps;
    };
    const real = await measure(corpus.train, corpus.val, "shards");
    const synth = await measure(synthetic, synthetic, "synthetic");
    emit({ impl: "ratio", bench: "data", real_over_synthetic: round(real / synth, 3) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  section("data: corpus preparation, peak RSS by corpus size and MB/s on 1 and 2 threads beside @huggingface/tokenizers (bench/prep.ts)");
  for (const row of prepBench({ repeats: Number(process.env.PLINTH_PREP_REPEATS ?? 3) })) emit(row);
}

if (only.has("clip")) {
  section("clip: CLIP training images/s (tiny, small) beside the same model in PyTorch (scripts/torch_clip_bench.py)");
  for (const row of clipBench({ steps: Math.min(steps, 5), threads })) emit(row);
}

if (only.has("distributed")) {
  section("distributed: data-parallel training over MPI, 2 ranks x 1 thread beside 1 rank x 2 threads; all-reduce alpha-beta fit; projection (bench/distributed.ts)");
  const { rows, table } = distributedBench({ configs, steps: Math.min(steps, 6) });
  for (const row of rows) emit(row);
  if (!values.json) console.log(`\n${table}`);
}

if (only.has("serve")) {
  section("serve: load test of plinth serve on loopback, continuous batching vs one request at a time (bench/serve.ts)");
  for (const row of await serveBench({ seconds: Number(process.env.PLINTH_SERVE_SECONDS ?? 30), connections: Number(process.env.PLINTH_SERVE_CONNECTIONS ?? 32), weights: process.env.PLINTH_SERVE_WEIGHTS?.split(",") })) emit(row);
}

if (only.has("replicas")) {
  section("replicas: plinth serve --replicas N behind HAProxy over PostgreSQL, 64 connections over 16 adapters (bench/replicas.ts)");
  for (const row of await replicasBench({ seconds: Number(process.env.PLINTH_REPLICAS_SECONDS ?? 20), connections: Number(process.env.PLINTH_REPLICAS_CONNECTIONS ?? 64) })) emit(row);
}
if (only.has("replicas-faults")) {
  section("replicas-faults: kill -9 of a replica running a job, and a PostgreSQL restart, under 64 connections over 16 adapters on 3 replicas (bench/replicas_faults.ts)");
  const env = (name: string): number | undefined => process.env[name] === undefined ? undefined : Number(process.env[name]);
  const { rows, goals } = await replicasFaultsBench({
    connections: env("PLINTH_REPLICAS_CONNECTIONS"), jobSteps: env("PLINTH_FAULTS_JOB_STEPS"), pgDownMs: env("PLINTH_FAULTS_PG_DOWN_MS"), recoverSeconds: env("PLINTH_FAULTS_RECOVER_S"),
  });
  for (const row of rows) emit(row);
  if (!values.json) console.log(`\n${faultsTable(goals)}`);
  for (const g of goals.filter((x) => !x.ok)) console.error(`replicas-faults FAIL: ${g.goal}: ${g.measured}`);
  if (goals.some((g) => !g.ok)) process.exitCode = 1;
}
if (only.has("genserve")) {
  section("genserve: 32 concurrent chats over 8 generative LoRA adapters on one base, beside the base alone (bench/genserve.ts)");
  for (const row of await genserveBench({ seconds: Number(process.env.PLINTH_SERVE_SECONDS ?? 30), connections: Number(process.env.PLINTH_SERVE_CONNECTIONS ?? 32) })) emit(row);
}

if (only.has("fairness")) {
  section("fairness: tenant B's chats, small encoder requests and small job while tenant A floods the encoders and trains a huge job (bench/fairness.ts)");
  const rows = await fairnessBench({ seconds: Number(process.env.PLINTH_FAIR_SECONDS ?? 20), connections: Number(process.env.PLINTH_FAIR_CONNECTIONS ?? 4), slice: Number(process.env.PLINTH_FAIR_SLICE ?? 10) });
  for (const row of rows) emit(row);
  if (!values.json) console.log(`\n${fairnessTable(rows)}`);
  const failures = fairnessFailures(rows);
  for (const f of failures) console.error(`fairness FAIL: ${f}`);
  if (failures.length > 0) process.exitCode = 1;
}

if (only.has("precision")) {
  const autocast = (config: string): Row[] => torch([config, "--steps", "10"], join(here, "..", "..", "bench", "torch_autocast.py"));
  await precisionBench({ threads, configs: values.configs === undefined ? undefined : configs, rounds: Number(values.rounds ?? 3), steps: Number(values.steps ?? 5), torch: autocast }, emit, section);
}

if (only.has("decode") && !only.has("precision")) {
  section("decode: greedy tokens/s of fused decode blocks (fp32, bf16, int8 weights), the op-by-op forward and onnxruntime, beside the bandwidth limit (bench/decode.ts)");
  await decodeBench({ configs: values.configs === undefined ? undefined : configs, rounds: Number(values.rounds ?? 3) }, emit);
}

if (only.has("interop")) {
  section("interop: generation tokens/s, Plinth beside onnxruntime-node and llama.cpp running its exports (bench/interop.ts)");
  for (const row of await interopBench({ threads, configs: values.configs === undefined ? undefined : configs })) emit(row);
}

function ratios(bench: string, key: (r: Row) => string, field: string): void {
  const ours = results.filter((r) => r.bench === bench && r.impl === "plinth" && r.ta === undefined);
  const theirs = new Map(results.filter((r) => r.bench === bench && r.impl === "torch").map((r) => [key(r), r]));
  for (const r of ours) {
    const t = theirs.get(key(r));
    if (t === undefined) continue;
    const range = roundRatios.get(`${bench} ${key(r)}`);
    emit({ impl: "ratio", bench, case: key(r), field, plinth: r[field], torch: t[field], ratio: round(Number(r[field]) / Number(t[field]), 2) + "x", ...(range === undefined ? {} : { round_ratios: range }) });
  }
}

function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function readHeader(): string {
  return "npm run bench -- [--torch] [--json] [--only peak,gemm,gpt,memory] [--configs S,M] [--steps N] [--memory-steps N] [--rounds N] [--precision fp32|bf16]";
}
