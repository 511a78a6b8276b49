/**
 * `npm run bench -- --only replicas`: `plinth serve --replicas N` under load, on this machine.
 *
 * A GPT base of config S and 16 LoRA adapters (one tenant) in a registry on a throwaway
 * PostgreSQL cluster (unix socket); each replica keeps at most 8 adapters loaded
 * (--max-adapters 8), so no one replica caches them all. 64 connections send chat completions
 * (32 tokens, every 4th streamed) back to back over the 16 adapters, for PLINTH_REPLICAS_SECONDS
 * (default 20) per setup after a warm-up: 1 replica, 3 replicas with adapter-aware routing, 3
 * replicas round robin, each behind HAProxy. Reported: tokens/s, requests/s, p50/p99 latency,
 * errors, and the adapter cache hit rate summed over the replicas (/healthz counters).
 * Needs PostgreSQL's server binaries and haproxy (apt-get install postgresql haproxy).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { applyLoRA } from "../src/adapt/lora.js";
import { baseIdentity, saveAdapter } from "../src/adapt/artifact.js";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { GPT, GPT_PRESETS, gptConfig, loadGPT, saveGPT } from "../src/models/gpt/index.js";
import { Registry } from "../src/registry/index.js";
import { Rng } from "../src/tensor/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { startPostgres } from "../test/helpers/postgres.js";

type Row = Record<string, string | number | boolean>;
const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const ADAPTERS = 16;

function sentences(): string[] {
  const root = dirname(createRequire(import.meta.url).resolve("sentiment/package.json"));
  return ["imdb", "yelp", "amazon"].flatMap((source) => (JSON.parse(readFileSync(join(root, "test", "fixtures", `${source}.json`), "utf8")) as { text: string }[])
    .map((r) => r.text.trim()).filter((t) => t.length > 10));
}

async function setup(dir: string, url: string): Promise<{ key: string; models: string[]; prompts: string[] }> {
  const texts = sentences();
  const tok = new BPETextTokenizer(trainBPE(texts, { vocabSize: 2048 }));
  const base = join(dir, "base");
  saveGPT(base, new GPT(gptConfig({ vocab_size: tok.vocabSize, ...GPT_PRESETS.S }), { seed: 1 }));
  tok.bpe.save(join(base, "tokenizer.json"));
  const reg = await Registry.open(url);
  await reg.catalog.addModel("S", base);
  const models: string[] = [];
  for (let seed = 1; seed <= ADAPTERS; seed++) {
    const gpt = loadGPT(base);
    const lora = applyLoRA(gpt, { rank: 8, alpha: 16, seed });
    const rng = new Rng(seed);
    for (const t of lora.trainableParameters()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.02;
    const out = join(dir, `lora${seed}`);
    saveAdapter(out, { method: "lora", task: "bench", labels: ["a", "b"], config: { lora: lora.config }, base: baseIdentity(base) }, lora.tensors());
    await reg.catalog.addAdapter("bench", `style${seed}`, "S", out);
    models.push(`S:style${seed}`);
  }
  const key = (await reg.keys.create("bench")).secret;
  await reg.close();
  return { key, models, prompts: texts.slice(0, 64).map((t) => t.slice(0, 80)) };
}

/** `plinth serve --replicas n`: its URL and its replicas' own URLs (for their /healthz counters). */
function startGrid(args: string[]): Promise<{ child: ChildProcess; url: string; replicas: string[] }> {
  const child = spawn(process.execPath, [cli, "serve", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /plinth serve: (http:\/\/[^/\s]+)\/v1 \(HAProxy over \d+ replicas: ([^;]+);/.exec(err);
      if (m) resolve({ child, url: m[1], replicas: [...m[2].matchAll(/ (127\.0\.0\.1:\d+)/g)].map((x) => `http://${x[1]}`) });
    });
    child.on("exit", (code) => reject(new Error(`plinth serve --replicas exited with ${code} before listening:\n${err.slice(-3000)}`)));
  });
}

const quantile = (sorted: number[], q: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
interface Measure { latencies: number[]; errors: number; tokens: number; requests: number; wall: number; firstError: string | null }
const fresh = (): Measure => ({ latencies: [], errors: 0, tokens: 0, requests: 0, wall: 0, firstError: null });

async function load(url: string, key: string, models: string[], prompts: string[], seconds: number, connections: number, m: Measure): Promise<void> {
  const end = performance.now() + seconds * 1000;
  let counter = 0;
  const rng = new Rng(7);
  const one = async (): Promise<void> => {
    const i = counter++;
    const stream = i % 4 === 3;
    const model = models[Math.floor(rng.uniform() * models.length)];
    const body = { model, messages: [{ role: "user", content: prompts[i % prompts.length] }], max_tokens: 32, temperature: 0.8, seed: i, stream, stream_options: stream ? { include_usage: true } : undefined };
    const t0 = performance.now();
    try {
      const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
      if (stream) {
        const text = await res.text();
        if (!text.trimEnd().endsWith("data: [DONE]")) throw new Error(`stream did not end with [DONE]: ${text.slice(-200)}`);
        const usage = text.split("\n").filter((l) => l.startsWith("data: {") && l.includes('"usage"')).map((l) => JSON.parse(l.slice(6)) as { usage: { completion_tokens: number } });
        m.tokens += usage[usage.length - 1]?.usage.completion_tokens ?? 0;
      } else {
        m.tokens += ((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens;
      }
      m.latencies.push(performance.now() - t0);
      m.requests++;
    } catch (e) {
      m.errors++;
      m.firstError ??= (e as Error).message;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < end) await one();
  }));
  m.wall += (performance.now() - t0) / 1000;
}

async function cacheCounters(replicas: string[]): Promise<{ hits: number; misses: number }> {
  let hits = 0, misses = 0;
  for (const r of replicas) {
    const h = await (await fetch(`${r}/healthz`)).json() as { adapter_cache: { hits: number; misses: number } };
    hits += h.adapter_cache.hits;
    misses += h.adapter_cache.misses;
  }
  return { hits, misses };
}

export async function replicasBench({ seconds = 20, connections = 64, warmup = 5 } = {}): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), "plinth-bench-replicas-"));
  const pg = await startPostgres();
  const rows: Row[] = [];
  try {
    const url = await pg.database("bench");
    const { key, models, prompts } = await setup(dir, url);
    const setups = [[1, "adapter"], [3, "adapter"], [3, "roundrobin"]] as const;
    for (const [n, route] of setups) {
      const grid = await startGrid(["--replicas", String(n), "--route", route, "--registry", url, "--data-dir", dir, "--port", "0", "--max-adapters", "8"]);
      try {
        await load(grid.url, key, models, prompts, warmup, connections, fresh());
        const before = await cacheCounters(grid.replicas);
        const m = fresh();
        await load(grid.url, key, models, prompts, seconds, connections, m);
        const after = await cacheCounters(grid.replicas);
        const hits = after.hits - before.hits, misses = after.misses - before.misses;
        const sorted = [...m.latencies].sort((a, b) => a - b);
        rows.push({
          impl: "plinth", bench: "replicas", replicas: n, routing: route, adapters: models.length, max_adapters_per_replica: 8, connections, seconds,
          requests: m.requests, errors: m.errors, req_per_s: round(m.requests / m.wall, 2), tokens_per_s: round(m.tokens / m.wall, 1),
          p50_ms: round(quantile(sorted, 0.5), 0), p99_ms: round(quantile(sorted, 0.99), 0),
          cache_hit_rate: round(hits / Math.max(1, hits + misses), 3), adapter_loads: misses,
          ...(m.firstError !== null ? { first_error: m.firstError.slice(0, 200) } : {}),
        });
      } finally {
        grid.child.kill("SIGTERM");
        await new Promise((r) => grid.child.once("exit", r));
      }
    }
  } finally {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
