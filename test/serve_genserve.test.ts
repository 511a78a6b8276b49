// Many generative LoRA adapters on one base (bench --only genserve's load, small): each
// adapter's greedy chat reply is the same alone and inside batches that mix all 8 adapters (half
// of them with role-token rows of their own) and the base, and differs from the base's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { applyLoRA } from "../src/adapt/lora.js";
import { ADDED_ROWS } from "../src/adapt/lora_factors.js";
import { baseIdentity, saveAdapter } from "../src/adapt/artifact.js";
import { f32 } from "../src/io/safetensors.js";
import { GPT, gptConfig, loadGPT, saveGPT } from "../src/models/gpt/index.js";
import { Registry } from "../src/registry/index.js";
import { createServer } from "../src/serve/index.js";
import { Rng } from "../src/tensor/index.js";
import { DEFAULT_CHAT_TEMPLATE } from "../src/tokenizer/chat_template.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-genserve-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const ROLES = ["<|system|>", "<|user|>", "<|assistant|>"];
let db = "", key = "";
const models: string[] = [];

before(async () => {
  const base = join(dir, "base");
  saveGPT(base, new GPT(gptConfig({ vocab_size: 257, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64 }), { seed: 5 }));
  db = join(dir, "registry.db");
  const reg = await Registry.open(db);
  await reg.catalog.addModel("tiny", base);
  for (let seed = 1; seed <= 8; seed++) {
    const gpt = loadGPT(base);
    const lora = applyLoRA(gpt, { rank: 4, alpha: 8, seed });
    const rng = new Rng(seed);
    for (const t of lora.trainableParameters()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.3;
    const roles = seed % 2 === 0;
    const out = join(dir, `chat${seed}`);
    saveAdapter(out, {
      method: "lora", task: "lm", labels: [],
      config: { objective: "lm", format: "chat", chat_template: DEFAULT_CHAT_TEMPLATE, added_tokens: roles ? ROLES : [], lora: lora.config },
      base: baseIdentity(base),
    }, { ...lora.tensors(), ...(roles ? { [ADDED_ROWS]: f32([3, 32], Float32Array.from({ length: 96 }, () => rng.normal() * 0.5)) } : {}) });
    await reg.catalog.addAdapter("acme", `chat${seed}`, "tiny", out);
    models.push(`tiny:chat${seed}`);
  }
  key = (await reg.keys.create("acme")).secret;
  await reg.close();
});

test("8 generative LoRA adapters on one base: greedy replies alone equal those batched across all of them and the base", async () => {
  const server = await createServer({ registry: db, maxBatch: 32 });
  const client = new OpenAI({ baseURL: `${await server.listen({ port: 0 })}/v1`, apiKey: key, maxRetries: 0 });
  const prompts = ["hello there", "abc", "the plot", "good movie"];
  const chat = async (model: string, content: string) =>
    (await client.chat.completions.create({ model, messages: [{ role: "user", content }], temperature: 0, max_tokens: 12 })).choices[0].message.content ?? "";
  try {
    const all = ["tiny", ...models];
    const alone: string[] = [];
    for (const m of all) for (const p of prompts) alone.push(await chat(m, p));
    assert.ok(alone.filter((r) => r.length >= 4).length > alone.length / 2, `replies: ${JSON.stringify(alone)}`);
    // 36 chats at once, twice over (so each step mixes every adapter, prefills and decodes).
    const batched = await Promise.all([...all.flatMap((m) => prompts.map((p) => chat(m, p))), ...all.flatMap((m) => prompts.map((p) => chat(m, p)))]);
    assert.deepEqual(batched.slice(0, alone.length), alone);
    assert.deepEqual(batched.slice(alone.length), alone);
    // Each adapter's replies are its own: not the base's.
    for (let a = 1; a < all.length; a++) assert.notDeepEqual(alone.slice(a * 4, a * 4 + 4), alone.slice(0, 4), `${all[a]} replies like the base`);
    const stats = await (await fetch(`${client.baseURL}/plinth/stats`, { headers: { authorization: `Bearer ${key}` } })).json() as { loaded: { scheduler: { meanBatch: number } | null }[] };
    assert.ok((stats.loaded[0].scheduler?.meanBatch ?? 0) > 2, "sequences shared steps");
  } finally {
    await server.close();
  }
});
