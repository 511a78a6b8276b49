/**
 * One corpus preparation in its own process, for bench/prep.ts: peak RSS is per process, so each
 * measurement gets a fresh one. Prints one JSON line: text MB, seconds (scan, tokenize, total),
 * tokens, the memory held against the bound, and the process's peak RSS (all threads).
 *
 *   node dist/bench/prep_child.js --tokenizer tok.json --out <dir> --threads 2 [--memory-mb 256]
 *        [--mode stream|memory|idle] --data <spec>...
 *
 * --mode memory runs the in-memory preparation this project had before (test/helpers/
 * prepare_in_memory.ts) for comparison; --mode idle only loads the modules and the tokenizer.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { prepareCorpus } from "../src/data/prepare.js";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { BPETokenizer } from "../src/tokenizer/index.js";
import { prepareInMemory } from "../test/helpers/prepare_in_memory.js";

const { values } = parseArgs({
  options: {
    data: { type: "string", multiple: true }, tokenizer: { type: "string" }, out: { type: "string" }, threads: { type: "string" },
    "memory-mb": { type: "string" }, mode: { type: "string" },
  },
});
const tokenizer = new BPETextTokenizer(BPETokenizer.load(values.tokenizer!));
const mode = values.mode ?? "stream";
const t0 = performance.now();
let row: Record<string, number | string> = {};
if (mode === "stream") {
  const c = await prepareCorpus({
    specs: values.data!, tokenizer, outDir: values.out!, threads: Number(values.threads ?? 1), memoryMb: Number(values["memory-mb"] ?? 256),
  });
  const m = c.manifest;
  row = {
    text_mb: (m.train.bytes + m.val.bytes) / 1e6, documents: m.documents, tokens: m.train.tokens + m.val.tokens, threads: c.stats.threads,
    scan_s: c.stats.scanSeconds, tokenize_s: c.stats.tokenizeSeconds, held_mb: c.stats.peakHeldBytes / 2 ** 20, index_mb: c.stats.indexBytes / 2 ** 20,
    main_heap_mb: c.stats.heaps.main.heapBytes / 2 ** 20, main_external_mb: c.stats.heaps.main.externalBytes / 2 ** 20, main_live_mb: c.stats.heaps.main.liveBytes / 2 ** 20,
    thread_live_mb: c.stats.heaps.threads.map((h) => +(h.liveBytes / 2 ** 20).toFixed(1)).join("/"), gcs: [c.stats.heaps.main, ...c.stats.heaps.threads].map((h) => h.collections).join("/"),
    thread_heap_mb: c.stats.heaps.threads.map((h) => +(h.heapBytes / 2 ** 20).toFixed(1)).join("/"), thread_external_mb: c.stats.heaps.threads.map((h) => +(h.externalBytes / 2 ** 20).toFixed(1)).join("/"),
  };
  c.train.close();
  c.val.close();
} else if (mode === "memory") {
  const m = prepareInMemory({ specs: values.data!, tokenizer, outDir: values.out! });
  row = { text_mb: (m.train.bytes + m.val.bytes) / 1e6, documents: m.documents, tokens: m.train.tokens + m.val.tokens, threads: 1 };
}
row.seconds = (performance.now() - t0) / 1000;
// VmHWM: this process's peak RSS (all threads). getrusage's maxRSS would not do: Linux carries it
// over from the parent through fork and exec, so a child of a large bench process reports the parent's.
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
row.peak_rss_mb = hwm !== null ? Number(hwm[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
process.stdout.write(JSON.stringify(row) + "\n");
