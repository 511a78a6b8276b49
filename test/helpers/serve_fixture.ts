// A tiny world for the serving tests: a GPT base with its BPE tokenizer in a temp folder, two
// LoRA adapters for it (random, non-zero factors so they change the output), a registry with
// the base registered, and keys for two tenants. The registry is a SQLite file, or with
// PLINTH_TEST_REGISTRY=postgres a database on a throwaway PostgreSQL cluster (helpers/postgres.ts):
// the same server tests then run against PostgreSQL.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BPETextTokenizer } from "../../src/data/tokenizer.js";
import { GPT, gptConfig, saveGPT } from "../../src/models/gpt/index.js";
import { trainBPE } from "../../src/tokenizer/index.js";
import { Rng, ids } from "../../src/tensor/index.js";
import { AdamW } from "../../src/optim/index.js";
import { applyLoRA } from "../../src/adapt/lora.js";
import { baseIdentity, saveAdapter } from "../../src/adapt/artifact.js";
import { Registry } from "../../src/registry/index.js";
import { type PgCluster, startPostgres } from "./postgres.js";

export const corpus = Array.from({ length: 60 }, (_, i) =>
  `the movie was ${i % 2 ? "good" : "bad"} and the plot was ${i % 3 ? "great" : "awful"}. user: hello assistant: hi there`);

export interface ServeFixture {
  root: string;
  /** The registry: a SQLite file path, or a postgres:// URL. */
  dbPath: string;
  /** Where the server keeps uploads and adapters (the registry's folder for SQLite; required with PostgreSQL). */
  dataDir: string;
  engine: "sqlite" | "postgres";
  /** The PostgreSQL cluster, when the registry is on one. */
  pg: PgCluster | null;
  baseDir: string;
  adapterDirs: string[];
  keyA: string;
  keyB: string;
  cleanup(): Promise<void>;
}

/** The registry engine the server tests run on: PLINTH_TEST_REGISTRY=postgres (or PLINTH_TEST_SERVE=replicas, helpers/test_server.ts), else SQLite. */
export const testEngine = (): "sqlite" | "postgres" =>
  (process.env.PLINTH_TEST_REGISTRY === "postgres" || process.env.PLINTH_TEST_SERVE === "replicas" ? "postgres" : "sqlite");

export function makeBase(dir: string, { n_embd = 32, n_layer = 2, n_positions = 64, seed = 1, trainSteps = 40 } = {}): void {
  const tok = new BPETextTokenizer(trainBPE(corpus, { vocabSize: 300 }));
  const gpt = new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd, n_layer, n_head: 2, n_positions }), { seed });
  // A few steps on the corpus, so greedy text is words (stop sequences can be tested on it).
  const stream = corpus.flatMap((t) => [...tok.encode(t), tok.eot]);
  const opt = new AdamW(gpt.parameters(), { lr: 1e-2 });
  const T = 24, B = 8;
  for (let step = 0; step < trainSteps; step++) {
    const xs: number[] = [], ys: number[] = [];
    for (let b = 0; b < B; b++) {
      const at = ((step * B + b) * 37) % (stream.length - T - 1);
      xs.push(...stream.slice(at, at + T));
      ys.push(...stream.slice(at + 1, at + T + 1));
    }
    const loss = gpt.loss(ids(xs, [B, T]), ids(ys, [B, T]));
    loss.backward();
    opt.step();
    opt.zeroGrad();
  }
  saveGPT(dir, gpt);
  tok.bpe.save(join(dir, "tokenizer.json"));
}

export function makeLoRAAdapter(baseDir: string, gpt: GPT, out: string, seed: number): void {
  const lora = applyLoRA(gpt, { rank: 2, alpha: 4, seed });
  const rng = new Rng(seed);
  for (const t of lora.trainableParameters()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.5;
  saveAdapter(out, { method: "lora", task: "toy", labels: ["a", "b"], config: { lora: lora.config }, base: baseIdentity(baseDir) }, lora.tensors());
  lora.remove();
}

/** A labeled JSONL dataset for fine-tuning jobs. */
export function writeDataset(path: string, rows = 24): void {
  const lines = Array.from({ length: rows }, (_, i) => JSON.stringify({ text: `the movie was ${i % 2 ? "good" : "bad"} ${i}`, label: i % 2 ? "positive" : "negative" }));
  writeFileSync(path, lines.join("\n") + "\n");
}

export async function makeFixture({ engine = testEngine() }: { engine?: "sqlite" | "postgres" } = {}): Promise<ServeFixture> {
  const root = mkdtempSync(join(tmpdir(), "plinth-serve-"));
  const baseDir = join(root, "base");
  makeBase(baseDir);
  const { loadGPT } = await import("../../src/models/gpt/index.js");
  const adapterDirs = [1, 2].map((s) => {
    const out = join(root, `lora${s}`);
    makeLoRAAdapter(baseDir, loadGPT(baseDir), out, s);
    return out;
  });
  const pgc = engine === "postgres" ? await startPostgres() : null;
  const dbPath = pgc === null ? join(root, "registry.db") : await pgc.database();
  const reg = await Registry.open(dbPath);
  await reg.catalog.addModel("tiny", baseDir);
  await reg.catalog.addAdapter("acme", "style", "tiny", adapterDirs[0]);
  await reg.catalog.addAdapter("globex", "secret", "tiny", adapterDirs[1]);
  const keyA = (await reg.keys.create("acme")).secret;
  const keyB = (await reg.keys.create("globex")).secret;
  await reg.close();
  return {
    root, dbPath, dataDir: root, engine, pg: pgc, baseDir, adapterDirs, keyA, keyB,
    async cleanup() {
      await pgc?.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
