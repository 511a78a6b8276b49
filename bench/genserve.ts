/**
 * `npm run bench -- --only genserve`: generative LoRA adapters served together on one base.
 *
 * A GPT base of config S (d_model 256, 4 layers, 4 heads, context 128; a 2,048-token BPE) and 8
 * generative LoRA adapters (objective lm, rank 8 on the attention and MLP projections, each with
 * the default chat template's 3 role tokens as rows of its own) are registered; one server
 * (continuous batching, max batch 32) runs in its own process. `connections` clients (default 32)
 * send chat completions back to back (32 tokens each, every 4th streamed), in rounds that
 * alternate between two loads on the same server: cycling over the 8 adapters, and the base
 * alone. Reported per load: requests and completion tokens per second, p50/p99 latency, errors;
 * and whether each adapter's greedy reply is the same alone and inside a batch with the other 7.
 *
 *     node dist/bench/genserve.js [--seconds 30] [--connections 32]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { applyLoRA } from "../src/adapt/lora.js";
import { ADDED_ROWS } from "../src/adapt/lora_factors.js";
import { baseIdentity, saveAdapter } from "../src/adapt/artifact.js";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { f32 } from "../src/io/safetensors.js";
import { GPT, GPT_PRESETS, gptConfig, loadGPT, saveGPT } from "../src/models/gpt/index.js";
import { Registry } from "../src/registry/index.js";
import { spawnServe } from "../src/serve/spawn.js";
import { Rng } from "../src/tensor/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { DEFAULT_CHAT_TEMPLATE } from "../src/tokenizer/chat_template.js";
import { type Measure, load, round, sentences, summary } from "./serve.js";

type Row = Record<string, string | number | boolean>;
const ADAPTERS = 8;
const ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"];

async function setup(dir: string): Promise<{ db: string; key: string; adapters: string[]; prompts: string[] }> {
  const texts = sentences();
  const tok = new BPETextTokenizer(trainBPE(texts, { vocabSize: 2048 }));
  const base = join(dir, "base");
  saveGPT(base, new GPT(gptConfig({ vocab_size: tok.vocabSize, ...GPT_PRESETS.S }), { seed: 1 }));
  tok.bpe.save(join(base, "tokenizer.json"));
  const db = join(dir, "registry.db");
  const reg = await Registry.open(db);
  await reg.catalog.addModel("S", base);
  const adapters: string[] = [];
  for (let seed = 1; seed <= ADAPTERS; seed++) {
    const gpt = loadGPT(base);
    const lora = applyLoRA(gpt, { rank: 8, alpha: 16, seed });
    const rng = new Rng(seed);
    for (const t of lora.trainableParameters()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.02;
    const C = gpt.config.n_embd;
    const rows = Float32Array.from({ length: ROLE_TOKENS.length * C }, () => rng.normal() * 0.02);
    const out = join(dir, `chat${seed}`);
    saveAdapter(out, {
      method: "lora", task: "lm", labels: [],
      config: { objective: "lm", format: "chat", chat_template: DEFAULT_CHAT_TEMPLATE, added_tokens: ROLE_TOKENS, lora: lora.config },
      base: baseIdentity(base),
    }, { ...lora.tensors(), [ADDED_ROWS]: f32([ROLE_TOKENS.length, C], rows) });
    await reg.catalog.addAdapter("bench", `chat${seed}`, "S", out);
    adapters.push(`S:chat${seed}`);
  }
  const key = (await reg.keys.create("bench")).secret;
  await reg.close();
  return { db, key, adapters, prompts: texts.slice(0, 64).map((t) => t.slice(0, 80)) };
}

async function greedy(url: string, key: string, model: string, prompt: string): Promise<string> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: prompt }], max_tokens: 24, temperature: 0 }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content;
}

export async function genserveBench({ seconds = 30, connections = 32 } = {}): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), "plinth-bench-genserve-"));
  const rows: Row[] = [];
  try {
    const { db, key, adapters, prompts } = await setup(dir);
    const server = await spawnServe(["--registry", db, "--port", "0", "--max-batch", "32"]);
    try {
      const loads = [["8 adapters", adapters], ["base alone", ["S"]]] as const;
      const fresh = (): Measure => ({ latencies: [], errors: 0, tokens: 0, requests: 0, streamed: 0, wall: 0, firstError: null });
      for (const [, models] of loads) await load(server.url, key, [...models], prompts, 2, 4, fresh());  // warm-up (loads every adapter)
      // Greedy replies: each adapter alone, then all of them (and the base) at once.
      const alone: string[] = [];
      for (const [i, m] of adapters.entries()) alone.push(await greedy(server.url, key, m, prompts[i]));
      const together = await Promise.all([...adapters.map((m, i) => greedy(server.url, key, m, prompts[i])), ...adapters.map((_, i) => greedy(server.url, key, "S", prompts[i]))]);
      const identical = alone.every((r, i) => r === together[i]);
      const measures = loads.map(fresh);
      const rounds = Math.max(1, Math.round(seconds / 10));
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < loads.length; i++) await load(server.url, key, [...loads[i][1]], prompts, seconds / (rounds * loads.length), connections, measures[i]);
      }
      loads.forEach(([name], i) => rows.push({ impl: "plinth", bench: "genserve", load: name, models: loads[i][1].length, connections, seconds: round(seconds / loads.length, 1), rounds, ...summary(measures[i]) }));
      rows.push({
        impl: "ratio", bench: "genserve", field: "tokens_per_s", adapters: rows[0].tokens_per_s, base: rows[1].tokens_per_s,
        ratio: round(Number(rows[0].tokens_per_s) / Number(rows[1].tokens_per_s), 2) + "x", greedy_identical_alone_and_batched: identical,
      });
    } finally {
      server.child.kill("SIGTERM");
      await new Promise((res) => server.child.once("exit", res));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { seconds: { type: "string" }, connections: { type: "string" } } });
  for (const row of await genserveBench({ seconds: Number(values.seconds ?? 30), connections: Number(values.connections ?? 32) })) console.log(JSON.stringify(row));
}
