/**
 * Corpus preparation at scale (`npm run bench -- --only data`, after the trainer-throughput part):
 *
 *   memory      peak RSS of a whole preparation (each in a fresh process, bench/prep_child.ts) of
 *               the 1 MB Moby Dick and of larger corpora, streaming (default bound 256 MB) beside
 *               the in-memory preparation this project had before (corpora up to 200 MB)
 *   throughput  preparation MB/s on 1 and 2 threads (reading, scanning, tokenizing, writing), each
 *               in turn for PLINTH_PREP_REPEATS rounds (default 3; medians, and each round's ratio),
 *               and tokenizer-only MB/s of Plinth's BPE and of @huggingface/tokenizers on the same
 *               text on the same threads (bench/encode_child.ts)
 *
 * Corpora: moby-dick, Go's standard library when Debian's golang-1.19-src is installed
 * (/usr/share/go-1.19/src), and any given as PLINTH_PREP_CORPORA="name=spec+spec,name=spec" (e.g.
 * the Linux kernel unpacked by scripts/prepare-large-corpus.sh). The tokenizer is a 4,096-token
 * BPE (config S's vocabulary) trained on Moby Dick. Throughput runs on the corpora under 200 MB.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadSource } from "../src/data/sources.js";
import { trainBPE } from "../src/tokenizer/index.js";

type Row = Record<string, string | number | boolean>;
const here = dirname(fileURLToPath(import.meta.url));
const GO_SRC = "/usr/share/go-1.19/src";

export function prepCorpora(): { name: string; specs: string[] }[] {
  const out = [{ name: "moby-dick", specs: ["moby-dick"] }];
  if (existsSync(GO_SRC)) out.push({ name: "golang-1.19-src", specs: [GO_SRC] });
  for (const item of (process.env.PLINTH_PREP_CORPORA ?? "").split(",").filter(Boolean)) {
    const [name, specs] = item.includes("=") ? item.split("=", 2) : [item, item];
    out.push({ name, specs: specs.split("+") });
  }
  return out;
}

function child(script: string, args: string[]): Row {
  const r = spawnSync(process.execPath, [join(here, script), ...args], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${script} ${args.join(" ")} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Row;
}

const round = (v: number, digits = 1): number => Math.round(v * 10 ** digits) / 10 ** digits;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export function prepBench(o: { threads?: number[]; memoryMb?: number; inMemoryUpToMb?: number; throughputUpToMb?: number; repeats?: number } = {}): Row[] {
  const threads = o.threads ?? [1, 2];
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), "plinth-bench-prep-"));
  try {
    const tokPath = trainBPE(loadSource("moby-dick").docs.map((d) => d.text), { vocabSize: 4096 }).save(join(dir, "tokenizer.json"));
    const idle = child("prep_child.js", ["--mode", "idle", "--tokenizer", tokPath]);
    rows.push({ impl: "plinth", bench: "prep-memory", corpus: "(none: modules + tokenizer)", peak_rss_mb: round(Number(idle.peak_rss_mb)) });
    const sizes = new Map<string, number>();
    for (const { name, specs } of prepCorpora()) {
      const data = specs.flatMap((s) => ["--data", s]);
      const run = (mode: string, t: number) => {
        const out = join(dir, `out-${mode}-${t}`);
        const r = child("prep_child.js", ["--mode", mode, "--tokenizer", tokPath, "--out", out, "--threads", String(t), "--memory-mb", String(o.memoryMb ?? 256), ...data]);
        rmSync(out, { recursive: true, force: true });
        return r;
      };
      const first = run("stream", threads[threads.length - 1]);
      const mb = Number(first.text_mb);
      sizes.set(name, mb);
      rows.push({
        impl: "plinth", bench: "prep-memory", corpus: name, text_mb: round(mb), documents: first.documents, tokens: first.tokens, threads: first.threads,
        peak_rss_mb: round(Number(first.peak_rss_mb)), held_mb: round(Number(first.held_mb), 2), index_mb: round(Number(first.index_mb), 2), seconds: round(Number(first.seconds)),
        main_heap_mb: round(Number(first.main_heap_mb)), main_external_mb: round(Number(first.main_external_mb)), thread_heap_mb: first.thread_heap_mb, thread_live_mb: first.thread_live_mb, thread_external_mb: first.thread_external_mb, gcs: first.gcs,
      });
      if (mb <= (o.inMemoryUpToMb ?? 200)) {
        const before = run("memory", 1);
        rows.push({ impl: "in-memory (before)", bench: "prep-memory", corpus: name, text_mb: round(mb), peak_rss_mb: round(Number(before.peak_rss_mb)), seconds: round(Number(before.seconds)) });
      }
      if (mb > (o.throughputUpToMb ?? 200)) continue;
      // Each thread count in turn, `repeats` rounds, so that a shared machine's load falls on both alike;
      // the median of each, and each round's ratio.
      const prep = new Map<number, number>();
      const perRound: number[][] = [];
      const repeats = o.repeats ?? 3;
      for (let k = 0; k < repeats; k++) {
        const round_: number[] = [];
        for (const t of threads) {
          const r = k === 0 && t === threads[threads.length - 1] ? first : run("stream", t);
          round_.push(mb / Number(r.seconds));
          rows.push({ impl: "plinth", bench: "prep-throughput", corpus: name, round: k + 1, threads: t, mb_per_s: round(mb / Number(r.seconds), 2), tokenize_mb_per_s: round(mb / Number(r.tokenize_s), 2), scan_s: round(Number(r.scan_s), 2), seconds: round(Number(r.seconds), 1), load: loadavg()[0].toFixed(1) });
        }
        perRound.push(round_);
      }
      threads.forEach((t, i) => prep.set(t, median(perRound.map((r) => r[i]))));
      const roundRatios = perRound.map((r) => round(r[r.length - 1] / r[0], 2));
      for (const t of threads) {
        for (const impl of ["plinth", "hf"]) {
          const r = child("encode_child.js", ["--impl", impl, "--tokenizer", tokPath, "--threads", String(t), ...data]);
          rows.push({ impl: impl === "hf" ? "@huggingface/tokenizers" : "plinth", bench: "encode-throughput", corpus: name, threads: t, mb_per_s: round(Number(r.mb_per_s), 2) });
        }
      }
      const enc = (impl: string, t: number) => Number(rows.find((r) => r.bench === "encode-throughput" && r.corpus === name && r.threads === t && r.impl === impl)?.mb_per_s);
      const [lo, hi] = [threads[0], threads[threads.length - 1]];
      rows.push({
        impl: "ratio", bench: "prep-throughput", corpus: name, [`prep_${hi}_over_${lo}_threads`]: round(prep.get(hi)! / prep.get(lo)!, 2), by_round: roundRatios.join(" "),
        ...Object.fromEntries(threads.map((t) => [`prep_over_hf_encode_${t}t`, round(prep.get(t)! / enc("@huggingface/tokenizers", t), 2)])),
        ...Object.fromEntries(threads.map((t) => [`plinth_over_hf_encode_${t}t`, round(enc("plinth", t) / enc("@huggingface/tokenizers", t), 2)])),
      });
    }
    const base = rows.find((r) => r.bench === "prep-memory" && r.corpus === "moby-dick" && r.impl === "plinth");
    for (const r of rows.filter((x) => x.bench === "prep-memory" && x.impl === "plinth" && x.corpus !== "moby-dick" && sizes.has(String(x.corpus)))) {
      rows.push({ impl: "ratio", bench: "prep-memory", corpus: String(r.corpus), rss_added_over_moby_mb: round(Number(r.peak_rss_mb) - Number(base?.peak_rss_mb)), text_mb: r.text_mb });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
