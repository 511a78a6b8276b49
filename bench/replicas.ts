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
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/tensor/index.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { benchBase, load, type LoadOptions, type Measure, quantile, round } from "./serve.js";

type Row = Record<string, string | number | boolean>;
const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const ADAPTERS = 16;

export async function setup(dir: string, url: string): Promise<{ key: string; models: string[]; prompts: string[] }> {
  const { key, adapters, prompts } = await benchBase(dir, url, Array.from({ length: ADAPTERS }, (_, i) => i + 1));
  return { key, models: adapters, prompts };
}

export interface Grid {
  child: ChildProcess;
  url: string;
  /** Each replica's own URL (for its /healthz), in the order r1, r2, ... */
  replicas: string[];
  /** What the command and its replicas said on stderr since it started (the last 1 MB). */
  log(): string;
}

/** `plinth serve --replicas n`: its URL and its replicas' own URLs (for their /healthz counters). */
export function startGrid(args: string[]): Promise<Grid> {
  const child = spawn(process.execPath, [cli, "serve", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((resolve, reject) => {
    let err = "", listening = false;
    child.stderr!.on("data", (d: Buffer) => {
      err = (err + d.toString()).slice(-1_000_000);
      const m = listening ? null : /plinth serve: (http:\/\/[^/\s]+)\/v1 \(HAProxy over \d+ replicas: ([^;]+);/.exec(err);
      if (m) {
        listening = true;
        resolve({ child, url: m[1], replicas: [...m[2].matchAll(/ (127\.0\.0\.1:\d+)/g)].map((x) => `http://${x[1]}`), log: () => err });
      }
    });
    child.on("exit", (code) => reject(new Error(`plinth serve --replicas exited with ${code} before listening:\n${err.slice(-3000)}`)));
  });
}

export const fresh = (): Measure => ({ latencies: [], errors: 0, tokens: 0, requests: 0, streamed: 0, wall: 0, firstError: null });

/** serve.ts's load with each request's adapter drawn at random (so no replica sees a fixed rotation). */
export function randomLoad(url: string, key: string, models: string[], prompts: string[], seconds: number, connections: number, m: Measure, opts: LoadOptions = {}): Promise<void> {
  const rng = new Rng(7);
  return load(url, key, models, prompts, seconds, connections, m, () => models[Math.floor(rng.uniform() * models.length)], opts);
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
        await randomLoad(grid.url, key, models, prompts, warmup, connections, fresh());
        const before = await cacheCounters(grid.replicas);
        const m = fresh();
        await randomLoad(grid.url, key, models, prompts, seconds, connections, m);
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
