/**
 * `npm run bench -- --only distributed`: data-parallel training over MPI on this machine.
 *
 *   throughput  2 ranks x 1 thread beside 1 rank x 2 threads, configs S (and M), same run:
 *               tokens/s, communication per step and the share hidden behind backward
 *   allreduce   in-place all-reduce seconds by message size between 2 ranks on loopback
 *               (scripts/two-hosts.sh measures the same across two network namespaces and
 *               writes runs/two-hosts/allreduce.json, read here when present)
 *   model       an alpha-beta fit t(n) = alpha + beta * bytes, and a projection of tokens/s and
 *               scaling efficiency for S, M and GPT-2 124M on 2-64 machines at 10/25/100 Gb/s
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { mpiAvailable } from "../src/native/mpi.js";

type Row = Record<string, string | number | boolean>;
const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, "distributed_child.js");
const ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1", OMPI_MCA_mpi_yield_when_idle: "1" };
export const SIZES = [4096, 65536, 1 << 20, 4 << 20, 16 << 20, 64 << 20];

function child(procs: number, threads: number, job: object): Row {
  const args = [CHILD, JSON.stringify(job)];
  const env = { ...ENV, PLINTH_THREADS: String(threads) };
  const r = procs === 1 ? spawnSync(process.execPath, args, { env, encoding: "utf8" })
    : spawnSync("mpirun", ["-np", String(procs), "--bind-to", "none", "--oversubscribe", process.execPath, ...args], { env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`bench distributed: ${procs} rank(s) failed:\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).at(-1)!) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v === null ? "-" : v])) as Row;
}

/** Least squares of seconds = alpha + beta * bytes. */
export function fitAlphaBeta(rows: { bytes: number; seconds: number }[]): { alpha: number; beta: number } {
  const n = rows.length, mx = rows.reduce((s, r) => s + r.bytes, 0) / n, my = rows.reduce((s, r) => s + r.seconds, 0) / n;
  let sxy = 0, sxx = 0;
  for (const r of rows) {
    sxy += (r.bytes - mx) * (r.seconds - my);
    sxx += (r.bytes - mx) ** 2;
  }
  const beta = sxy / sxx;
  return { alpha: Math.max(0, my - beta * mx), beta };
}

/** Training FLOPs per token: 6 per parameter plus attention's 6 * layers * context * width. */
const flopsPerToken = (m: { params: number; layers: number; ctx: number; d: number }) => 6 * m.params + 6 * m.layers * m.ctx * m.d;
export const MODELS = {
  S: { params: 4.24e6, layers: 4, ctx: 128, d: 256, batch: 16 },
  M: { params: 29.9e6, layers: 8, ctx: 256, d: 512, batch: 8 },
  "GPT-2 124M": { params: 124.4e6, layers: 12, ctx: 1024, d: 768, batch: 8 },
};

/**
 * Weak scaling (each machine keeps its batch): a step computes for tc = tokens / rate, then the
 * gradient ring all-reduce takes 2(N-1) latencies plus 2(N-1)/N of the gradient bytes over the
 * link; buckets overlap it with backward (2/3 of the compute), except the last bucket, whose
 * reduction starts when backward ends. The bucket size (1-256 MB, powers of two) is the one
 * that minimises the exposed time: more buckets pay more latencies, bigger ones expose more.
 */
export function project(model: keyof typeof MODELS, tokensPerSecond: number, machines: number, gbps: number, alpha: number): Row {
  const m = MODELS[model];
  const tokens = m.batch * m.ctx, bytes = 4 * m.params, bw = (gbps * 1e9) / 8;
  const tc = tokens / tokensPerSecond, N = machines;
  const wire = (b: number) => (2 * (N - 1) / N) * (b / bw);
  // Per bucket: 2(N-1) latencies; choose the bucket count minimising latency + one exposed bucket.
  let best = { cost: Infinity, bucket: bytes, comm: 0 };
  for (let mb = 1; mb <= 256; mb *= 2) {
    const bucket = Math.min(bytes, mb * 2 ** 20), k = Math.ceil(bytes / bucket);
    const comm = k * 2 * (N - 1) * alpha + wire(bytes);
    const exposed = Math.max(comm - (2 / 3) * tc, 2 * (N - 1) * alpha + wire(bucket));
    if (exposed < best.cost) best = { cost: exposed, bucket, comm };
  }
  const step = tc + best.cost;
  return {
    model, machines, gbps, bucketMb: Math.round(best.bucket / 2 ** 20), commMs: +(best.comm * 1e3).toFixed(1), stepMs: +(step * 1e3).toFixed(1),
    tokensPerSecond: Math.round((N * tokens) / step), efficiency: +(tc / step).toFixed(3),
  };
}

export function distributedBench({ configs, steps }: { configs: string[]; steps: number }): { rows: Row[]; table: string } {
  if (!mpiAvailable()) throw new Error("bench distributed: the MPI addon is not built (apt-get install -y libopenmpi-dev openmpi-bin; npm run build:mpi)");
  const rows: Row[] = [];
  const measured: Record<string, number> = {};
  for (const config of configs) {
    const one = child(1, 2, { mode: "train", config, steps });
    const two = child(2, 1, { mode: "train", config, steps, bucketMb: 4 });
    measured[config] = Number(one.tokensPerSecond);
    rows.push({ bench: "distributed", case: `${config} 1 rank x 2 threads`, ...one });
    rows.push({ bench: "distributed", case: `${config} 2 ranks x 1 thread`, ...two, vsOneRank: +(Number(two.tokensPerSecond) / Number(one.tokensPerSecond)).toFixed(2) });
  }
  const loop = child(2, 1, { mode: "allreduce", sizes: SIZES }) as unknown as { rows: { bytes: number; seconds: number }[] };
  for (const r of loop.rows) rows.push({ bench: "distributed", case: "allreduce loopback", bytes: r.bytes, seconds: r.seconds, gbps: +((8 * r.bytes) / r.seconds / 1e9).toFixed(2) });
  const fits: Record<string, { alpha: number; beta: number }> = { loopback: fitAlphaBeta(loop.rows) };
  const netnsFile = join(process.cwd(), "runs", "two-hosts", "allreduce.json");
  if (existsSync(netnsFile)) {
    const net = JSON.parse(readFileSync(netnsFile, "utf8")) as { rows: { bytes: number; seconds: number }[] };
    for (const r of net.rows) rows.push({ bench: "distributed", case: "allreduce netns (TCP over veth)", bytes: r.bytes, seconds: r.seconds, gbps: +((8 * r.bytes) / r.seconds / 1e9).toFixed(2) });
    fits.netns = fitAlphaBeta(net.rows);
  }
  for (const [where, f] of Object.entries(fits)) rows.push({ bench: "distributed", case: `alpha-beta fit ${where}`, alphaUs: +(f.alpha * 1e6).toFixed(1), betaGBps: +(1 / f.beta / 1e9).toFixed(2) });
  // Latency of a network hop: the TCP fit when two-hosts.sh has run, else loopback's.
  const alpha = (fits.netns ?? fits.loopback).alpha;
  // Per-machine compute: the measured 1-rank rate; GPT-2 124M scaled from M (or S) by FLOPs per token.
  const base = measured.M !== undefined ? "M" : "S";
  const rate: Record<string, number> = { ...measured, "GPT-2 124M": (measured[base] * flopsPerToken(MODELS[base as "S" | "M"])) / flopsPerToken(MODELS["GPT-2 124M"]) };
  const lines = ["| model | machines | 10 Gb/s tok/s (eff.) | 25 Gb/s | 100 Gb/s | bucket MB (25 Gb/s) |", "|---|---|---|---|---|---|"];
  for (const model of Object.keys(MODELS) as (keyof typeof MODELS)[]) {
    if (rate[model] === undefined) continue;
    for (const machines of [2, 4, 8, 16, 32, 64]) {
      const cells = [10, 25, 100].map((g) => project(model, rate[model], machines, g, alpha));
      for (const c of cells) rows.push({ bench: "distributed", case: "projection", ...c });
      lines.push(`| ${model} | ${machines} | ${cells.map((c) => `${Number(c.tokensPerSecond).toLocaleString("en-US")} (${Math.round(100 * Number(c.efficiency))}%)`).join(" | ")} | ${cells[1].bucketMb} |`);
    }
  }
  return { rows, table: lines.join("\n") };
}
