// Shared by the streaming-corpus tests and their child process.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadSource } from "../../src/data/sources.js";
import { BPETextTokenizer } from "../../src/data/tokenizer.js";
import { trainBPE } from "../../src/tokenizer/index.js";

/** A small BPE (400 tokens) trained on the openings of Moby Dick's chapters: quick, deterministic. */
export function streamTestTokenizer(): BPETextTokenizer {
  return new BPETextTokenizer(trainBPE(loadSource("moby-dick").docs.map((d) => d.text.slice(0, 3000)), { vocabSize: 400 }));
}

/** Every file of a prepared corpus folder (not the staging folder), the manifest with its folder replaced by "<dir>". */
export function corpusFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    if (!f.isFile()) continue;
    let data = readFileSync(join(dir, f.name));
    if (f.name === "manifest.json") data = Buffer.from(data.toString("utf8").split(JSON.stringify(dir).slice(1, -1)).join("<dir>"));
    out.set(f.name, data);
  }
  return out;
}
