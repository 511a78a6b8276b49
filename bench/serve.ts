/**
 * `npm run bench -- --only serve`: a bounded load test of `plinth serve` on loopback.
 *
 * A GPT base of config S (d_model 256, 4 layers, 4 heads, context 128; a 2,048-token BPE) and two LoRA
 * adapters are registered in a temporary registry; the server runs in its own process.
 * `connections` clients (default 32) each send chat completions back to back for `seconds`
 * (default 30; PLINTH_SERVE_SECONDS / PLINTH_SERVE_CONNECTIONS override), cycling over the
 * base and both adapters (so every batch mixes adapters), every 4th request streamed (SSE).
 * The same load runs on continuous batching (max batch 32) with the base's weights as float32 and,
 * unless PLINTH_SERVE_WEIGHTS says otherwise, packed bf16 and int8 (`--weights`), and on one
 * request at a time (max batch 1, float32), the servers side by side and the load taking turns
 * between them in rounds. Reported: requests and completion tokens per second, p50/p99 latency,
 * errors, the batched / one-at-a-time throughput ratio, and each weight format's tokens/s and p99
 * beside float32's.
 *
 *     node dist/bench/serve.js [--seconds 30] [--connections 32]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { applyLoRA } from "../src/adapt/lora.js";
import { baseIdentity, saveAdapter } from "../src/adapt/artifact.js";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { GPT, GPT_PRESETS, gptConfig, loadGPT, saveGPT } from "../src/models/gpt/index.js";
import { Registry } from "../src/registry/index.js";
import { spawnServe } from "../src/serve/spawn.js";
import { Rng } from "../src/tensor/index.js";
import { trainBPE } from "../src/tokenizer/index.js";

type Row = Record<string, string | number | boolean>;

export function sentences(): string[] {
  const root = dirname(createRequire(import.meta.url).resolve("sentiment/package.json"));
  return ["imdb", "yelp", "amazon"].flatMap((source) => (JSON.parse(readFileSync(join(root, "test", "fixtures", `${source}.json`), "utf8")) as { text: string }[])
    .map((r) => r.text.trim()).filter((t) => t.length > 10));
}

/**
 * A config-S GPT (random weights, BPE trained on the sentences) in dir/base, registered as "S" in the
 * registry at `registry`, with one random LoRA adapter "S:style<seed>" per seed for tenant "bench".
 */
export async function benchBase(dir: string, registry: string, seeds: number[]): Promise<{ key: string; adapters: string[]; prompts: string[] }> {
  const texts = sentences();
  const tok = new BPETextTokenizer(trainBPE(texts, { vocabSize: 2048 }));
  const base = join(dir, "base");
  saveGPT(base, new GPT(gptConfig({ vocab_size: tok.vocabSize, ...GPT_PRESETS.S }), { seed: 1 }));
  tok.bpe.save(join(base, "tokenizer.json"));
  const reg = await Registry.open(registry);
  await reg.catalog.addModel("S", base);
  const adapters: string[] = [];
  for (const seed of seeds) {
    const gpt = loadGPT(base);
    const lora = applyLoRA(gpt, { rank: 8, alpha: 16, seed });
    const rng = new Rng(seed);
    for (const t of lora.trainableParameters()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.02;
    const out = join(dir, `lora${seed}`);
    saveAdapter(out, { method: "lora", task: "bench", labels: ["a", "b"], config: { lora: lora.config }, base: baseIdentity(base) }, lora.tensors());
    await reg.catalog.addAdapter("bench", `style${seed}`, "S", out);
    adapters.push(`S:style${seed}`);
  }
  const key = (await reg.keys.create("bench")).secret;
  await reg.close();
  return { key, adapters, prompts: texts.slice(0, 64).map((t) => t.slice(0, 80)) };
}

async function setup(dir: string): Promise<{ db: string; key: string; models: string[]; prompts: string[] }> {
  const db = join(dir, "registry.db");
  const { key, adapters, prompts } = await benchBase(dir, db, [1, 2]);
  return { db, key, models: ["S", ...adapters], prompts };
}


export const quantile = (sorted: number[], q: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

export interface Measure { latencies: number[]; errors: number; tokens: number; requests: number; streamed: number; wall: number; firstError: string | null }

/** One request of a load, as the client saw it (times from performance.now()). */
export interface RequestOutcome {
  t0: number; t1: number; model: string; stream: boolean;
  /** The HTTP status (0: no response at all). */
  status: number;
  /** The x-plinth-replica header (null when the balancer answered itself, or no response). */
  replica: string | null;
  retryAfter: string | null;
  /** The error body's code, when the answer was an error in OpenAI's shape. */
  code: string | null;
  /** null: a complete reply. */
  error: string | null;
}

export interface LoadOptions {
  /** Called once per request, when it ends. */
  onResult?: (r: RequestOutcome) => void;
  /** Checked before each request: true stops the load (besides `seconds`). */
  stop?: () => boolean;
  /** Milliseconds a client waits after a failed request before its next one (default 0). */
  pauseAfterError?: number;
}

/** `connections` clients send chats for `seconds` (every 4th streamed), request i to model pick(i) (by default the models in turn). */
export async function load(url: string, key: string, models: string[], prompts: string[], seconds: number, connections: number, m: Measure,
  pick: (i: number) => string = (i) => models[i % models.length], opts: LoadOptions = {}): Promise<void> {
  const end = performance.now() + seconds * 1000;
  let counter = 0;
  const one = async (): Promise<void> => {
    const i = counter++;
    const stream = i % 4 === 3;
    const model = pick(i);
    const body = { model, messages: [{ role: "user", content: prompts[i % prompts.length] }], max_tokens: 32, temperature: 0.8, seed: i, stream, stream_options: stream ? { include_usage: true } : undefined };
    const t0 = performance.now();
    const seen: RequestOutcome = { t0, t1: t0, model, stream, status: 0, replica: null, retryAfter: null, code: null, error: null };
    try {
      const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      seen.status = res.status;
      seen.replica = res.headers.get("x-plinth-replica");
      seen.retryAfter = res.headers.get("retry-after");
      if (res.status !== 200) {
        const text = await res.text();
        try {
          seen.code = (JSON.parse(text) as { error: { code: string } }).error.code ?? null;
        } catch {
          // not OpenAI's error body
        }
        throw new Error(`HTTP ${res.status}: ${text}`);
      }
      if (stream) {
        const text = await res.text();
        if (!text.trimEnd().endsWith("data: [DONE]")) throw new Error(`stream did not end with [DONE]: ${text.slice(-200)}`);
        const usage = text.split("\n").filter((l) => l.startsWith("data: {") && l.includes('"usage"')).map((l) => JSON.parse(l.slice(6)) as { usage: { completion_tokens: number } });
        m.tokens += usage[usage.length - 1]?.usage.completion_tokens ?? 0;
        m.streamed++;
      } else {
        m.tokens += ((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens;
      }
      m.latencies.push(performance.now() - t0);
      m.requests++;
    } catch (e) {
      m.errors++;
      m.firstError ??= (e as Error).message;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      seen.error = cause === undefined ? (e as Error).message : `${(e as Error).message} (${cause.code ?? cause.message ?? String(cause)})`;
    }
    seen.t1 = performance.now();
    opts.onResult?.(seen);
    if (seen.error !== null && (opts.pauseAfterError ?? 0) > 0) await new Promise((r) => setTimeout(r, opts.pauseAfterError));
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < end && !(opts.stop?.() ?? false)) await one();
  }));
  m.wall += (performance.now() - t0) / 1000;
}

export function summary(m: Measure): Row {
  const sorted = [...m.latencies].sort((a, b) => a - b);
  return {
    requests: m.requests, streamed: m.streamed, errors: m.errors, wall_s: round(m.wall, 1), req_per_s: round(m.requests / m.wall, 2), tokens_per_s: round(m.tokens / m.wall, 1),
    p50_ms: round(quantile(sorted, 0.5), 0), p99_ms: round(quantile(sorted, 0.99), 0), ...(m.firstError !== null ? { first_error: m.firstError.slice(0, 200) } : {}),
  };
}

export async function serveBench({ seconds = 30, connections = 32, weights = ["fp32", "bf16", "int8"] }: { seconds?: number; connections?: number; weights?: string[] } = {}): Promise<Row[]> {
  for (const w of weights) if (!["fp32", "bf16", "int8"].includes(w)) throw new Error(`serve bench: weights "${w}": expected fp32, bf16 or int8`);
  const dir = mkdtempSync(join(tmpdir(), "plinth-bench-serve-"));
  const rows: Row[] = [];
  try {
    const { db, key, models, prompts } = await setup(dir);
    // Both servers run side by side; the load alternates between them in rounds, so the
    // machine's background load (other processes) falls on both modes alike.
    const modes: [string, number, string][] = [
      ...weights.map((w): [string, number, string] => [w === "fp32" ? "batched" : `batched ${w}`, 32, w]), ["one-at-a-time", 1, "fp32"]];
    const servers = await Promise.all(modes.map(([, maxBatch, w]) => spawnServe(["--registry", db, "--port", "0", "--max-batch", String(maxBatch), ...(w === "fp32" ? [] : ["--weights", w])])));
    const results: Record<string, Row> = {};
    try {
      const measures = modes.map((): Measure => ({ latencies: [], errors: 0, tokens: 0, requests: 0, streamed: 0, wall: 0, firstError: null }));
      for (const s of servers) await load(s.url, key, models, prompts, 2, 4, { latencies: [], errors: 0, tokens: 0, requests: 0, streamed: 0, wall: 0, firstError: null });  // warm-up
      const rounds = Math.max(1, Math.round(seconds / 10));
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < modes.length; i++) await load(servers[i].url, key, models, prompts, seconds / rounds, connections, measures[i]);
      }
      for (let i = 0; i < modes.length; i++) {
        const [mode, maxBatch, w] = modes[i];
        const stats = await (await fetch(`${servers[i].url}/v1/plinth/stats`, { headers: { authorization: `Bearer ${key}` } })).json() as { loaded: { scheduler: { meanBatch: number } | null }[] };
        const row: Row = { impl: "plinth", bench: "serve", mode, weights: w, max_batch: maxBatch, connections, seconds, rounds, ...summary(measures[i]), mean_batch: round(stats.loaded[0]?.scheduler?.meanBatch ?? NaN, 1) };
        results[mode] = row;
        rows.push(row);
      }
    } finally {
      for (const { child } of servers) {
        child.kill("SIGTERM");
        await new Promise((res) => child.once("exit", res));
      }
    }
    if (results.batched !== undefined) {
      rows.push({
        impl: "ratio", bench: "serve", field: "tokens_per_s",
        batched: results.batched.tokens_per_s, one_at_a_time: results["one-at-a-time"].tokens_per_s,
        ratio: round(Number(results.batched.tokens_per_s) / Number(results["one-at-a-time"].tokens_per_s), 2) + "x",
      });
      for (const w of weights.filter((x) => x !== "fp32")) {
        const r = results[`batched ${w}`];
        rows.push({ impl: "ratio", bench: "serve", field: `${w} over fp32`, tokens_per_s: round(Number(r.tokens_per_s) / Number(results.batched.tokens_per_s), 2) + "x",
          p99: round(Number(r.p99_ms) / Number(results.batched.p99_ms), 2) + "x" });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { seconds: { type: "string" }, connections: { type: "string" }, weights: { type: "string" } } });
  for (const row of await serveBench({ seconds: Number(values.seconds ?? 30), connections: Number(values.connections ?? 32), weights: values.weights?.split(",") })) console.log(JSON.stringify(row));
}
