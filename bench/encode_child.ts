/**
 * Tokenizer throughput on worker threads, the same harness for Plinth's BPE and for
 * @huggingface/tokenizers (same tokenizer.json, same documents, same split of documents between
 * threads), for bench/prep.ts. The documents are loaded first (deduplicated, as a corpus
 * preparation has them); the clock runs from "go" to the last thread's end. Prints one JSON line.
 *
 *   node dist/bench/encode_child.js --impl plinth|hf --tokenizer tok.json --threads 2 --data <spec>...
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { Tokenizer } from "@huggingface/tokenizers";
import { loadSources } from "../src/data/sources.js";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { BPETokenizer } from "../src/tokenizer/index.js";

interface Job {
  impl: "plinth" | "hf";
  json: unknown;
  texts: string[];
}

if (!isMainThread) {
  const job = workerData as Job;
  const encode: (t: string) => number = job.impl === "plinth"
    ? ((tok) => (t: string) => tok.encode(t).length)(new BPETextTokenizer(BPETokenizer.fromJSON(job.json)))
    : ((tok) => (t: string) => tok.encode(t, { add_special_tokens: false }).ids.length)(new Tokenizer(job.json as ConstructorParameters<typeof Tokenizer>[0], { clean_up_tokenization_spaces: false }));
  parentPort!.postMessage({ ready: true });
  parentPort!.once("message", () => {
    let tokens = 0;
    for (const t of job.texts) tokens += encode(t);
    parentPort!.postMessage({ tokens });
  });
} else {
  const { values } = parseArgs({ options: { data: { type: "string", multiple: true }, tokenizer: { type: "string" }, threads: { type: "string" }, impl: { type: "string" } } });
  const impl = values.impl === "hf" ? "hf" : "plinth";
  const threads = Number(values.threads ?? 1);
  const json = JSON.parse(readFileSync(values.tokenizer!, "utf8"));
  const { docs } = loadSources(values.data!);
  // Balance bytes across threads: each document to the least loaded share.
  const shares: string[][] = Array.from({ length: threads }, () => []);
  const load = new Array<number>(threads).fill(0);
  let bytes = 0;
  for (const d of [...docs].sort((a, b) => b.text.length - a.text.length)) {
    const i = load.indexOf(Math.min(...load));
    shares[i].push(d.text);
    load[i] += d.text.length;
    bytes += Buffer.byteLength(d.text);
  }
  const workers = shares.map((texts) => new Worker(new URL(import.meta.url), { workerData: { impl, json, texts } satisfies Job }));
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))));
  const t0 = performance.now();
  const counts = await Promise.all(workers.map((w) => new Promise<number>((resolve) => {
    w.once("message", (m: { tokens: number }) => resolve(m.tokens));
    w.postMessage("go");
  })));
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(workers.map((w) => w.terminate()));
  process.stdout.write(JSON.stringify({ impl, threads, text_mb: bytes / 1e6, tokens: counts.reduce((a, b) => a + b, 0), seconds, mb_per_s: bytes / 1e6 / seconds }) + "\n");
}
