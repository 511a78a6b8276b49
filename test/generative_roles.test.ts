// Role special tokens: a generative fine-tune adds its chat template's role markers to the
// tokenizer as tokens of their own, with embedding (and tied head) rows the adapter trains (LoRA:
// rows saved beside the factors; full: part of the weights). Training, plinth generate --chat and
// /v1/chat/completions encode the chat alike and reply alike; the shared base's packed forward
// gives a row of an adapter with added tokens the logits of a model that owns those rows;
// adapters without added tokens keep working beside them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { KVCache } from "../src/nn/context.js";
import { ids, tensor } from "../src/tensor/index.js";
import { ByteTextTokenizer, withAddedTokens } from "../src/data/tokenizer.js";
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE, chatTemplateFor } from "../src/tokenizer/chat_template.js";
import { chatPromptIds, loadGenerativeData, tokenizeExamples } from "../src/tasks/chat.js";
import { runGenerative } from "../src/adapt/generative.js";
import { loadAdapted } from "../src/adapt/apply.js";
import { loadAdapter, readAdapterManifest } from "../src/adapt/artifact.js";
import { ADDED_ROWS } from "../src/adapt/lora_factors.js";
import { generate } from "../src/models/gpt/generate.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-roles-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const tok = new ByteTextTokenizer();
const baseDir = join(dir, "base"), chats = join(dir, "chats.jsonl");
const LETTERS = "abcdef";

before(() => {
  saveGPT(baseDir, new GPT(gptConfig({ vocab_size: 257, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 7 }));
  const lines: string[] = [];
  for (const a of LETTERS) for (const b of LETTERS) for (const c of LETTERS) {
    lines.push(JSON.stringify({ messages: [{ role: "user", content: a + b + c }, { role: "assistant", content: (a + b + c).toUpperCase() }] }));
  }
  writeFileSync(chats, lines.join("\n") + "\n");
});

test("role markers become tokens of their own: the template names them, the tokenizer encodes each as one id after the vocabulary", () => {
  const t = new ChatTemplate(DEFAULT_CHAT_TEMPLATE);
  assert.deepEqual(t.roleMarkers(), ["<|system|>", "<|user|>", "<|assistant|>"]);
  assert.deepEqual(new ChatTemplate("{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}").roleMarkers(), []);
  assert.deepEqual(new ChatTemplate(DEFAULT_CHAT_TEMPLATE, "<|endoftext|>", "", ["<|im_start|>"]).roleMarkers(), ["<|im_start|>"]);
  const w = withAddedTokens(tok, t.roleMarkers());
  assert.equal(w.vocabSize, 260);
  assert.deepEqual(w.encode("<|user|>\nhi<|assistant|>"), [258, 10, 104, 105, 259]);
  assert.equal(w.decode([258, 10, 104, 105, 256, 259]), "<|user|>\nhi<|assistant|>");
  assert.deepEqual(w.encode("<|user"), Array.from(tok.encode("<|user")));
  // The chat prompt: role markers as single ids, the end-of-text token as the base's.
  const prompt = chatPromptIds(t, w, [{ role: "user", content: "abc" }]);
  assert.deepEqual(prompt, [256, 258, 10, 97, 98, 99, 256, 259, 10]);
});

test("GPT.addTokens: added rows embed and extend the tied head; the shared base's packed forward with an adapter's rows gives the same logits", () => {
  const cfg = gptConfig({ vocab_size: 257, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 });
  const owned = new GPT(cfg, { seed: 3 }), shared = new GPT(cfg, { seed: 3 });
  owned.eval();
  shared.eval();
  const rows = Float32Array.from({ length: 3 * 32 }, (_, i) => Math.sin(i) * 0.1);
  owned.addTokens(3, rows);
  assert.equal(owned.vocabSize, 260);
  const prompt = [256, 258, 10, 97, 259, 10];
  const { logits } = owned.forward(ids(prompt, [1, prompt.length]));
  assert.deepEqual(logits.shape, [1, prompt.length, 260]);
  // Owned: decode agrees with forward's last position.
  const last = (logits.toArray() as Float32Array).slice((prompt.length - 1) * 260);
  const [viaDecode] = owned.decode([{ tokens: prompt, cache: new KVCache(2, 32, 32), adapter: null }]);
  assert.equal(viaDecode.length, 260);
  for (let i = 0; i < 260; i++) assert.ok(Math.abs(viaDecode[i] - last[i]) < 1e-4);
  // Shared: the rows come with the adapter of one row of the batch; a plain row beside it keeps 257 logits.
  const adapter = { id: "roles", scaling: 1, factor: () => undefined, added: tensor(rows, [3, 32]) };
  const [withRows, plain] = shared.decode([
    { tokens: prompt, cache: new KVCache(2, 32, 32), adapter },
    { tokens: [256, 97, 98], cache: new KVCache(2, 32, 32), adapter: null },
  ]);
  assert.equal(withRows.length, 260);
  assert.equal(plain.length, 257);
  for (let i = 0; i < 260; i++) assert.ok(Math.abs(withRows[i] - last[i]) < 1e-4, `logit ${i}: ${withRows[i]} vs ${last[i]}`);
  assert.throws(() => shared.decode([{ tokens: [256, 300], cache: new KVCache(2, 32, 32), adapter }]), /token 300 is outside the vocabulary of 257 and the adapter's 3 added tokens/);
});

test("LoRA and full fine-tunes train the role tokens' rows; training, plinth generate --chat and /v1/chat/completions encode and reply alike; an adapter without them keeps working", async () => {
  const lora = join(dir, "lora"), full = join(dir, "full"), plain = join(dir, "plain");
  const common = { base: baseDir, data: chats, steps: 120, batchSize: 8, valFraction: 0.1, maxTest: 4, seed: 1 };
  await runGenerative({ ...common, method: "lora", out: lora, lr: 1e-2, lora: { rank: 8 }, roleTokens: true });
  await runGenerative({ ...common, method: "full", out: full, lr: 3e-3, roleTokens: true });
  await runGenerative({ ...common, method: "lora", out: plain, lr: 1e-2, lora: { rank: 8 } });
  const markers = ["<|system|>", "<|user|>", "<|assistant|>"];
  for (const a of [lora, full]) assert.deepEqual(readAdapterManifest(a).config.added_tokens, markers);
  assert.deepEqual(readAdapterManifest(plain).config.added_tokens, []);
  // The rows are the adapter's and trained: no longer the mean of the marker's byte rows they started as.
  const wte = new GPT(gptConfig({ vocab_size: 257, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 32 }), { seed: 7 }).transformer.wte.weight.toArray() as Float32Array;
  const userBytes = Array.from(tok.encode("<|user|>"));
  const mean = Float32Array.from({ length: 32 }, (_, c) => userBytes.reduce((s, id) => s + wte[id * 32 + c], 0) / userBytes.length);
  for (const a of [lora, full]) {
    const rows = loadAdapter(a, baseDir).tensors[ADDED_ROWS];
    assert.deepEqual(rows.shape, [3, 32]);
    const userRow = new Float32Array(rows.data.buffer, rows.data.byteOffset + 32 * 4, 32);
    assert.ok(userRow.some((v, i) => Math.abs(v - mean[i]) > 1e-3), `${a}: the <|user|> row moved`);
    assert.ok(userRow.every((v, i) => Math.abs(v - mean[i]) < 1), `${a}: the <|user|> row started at its bytes' mean`);
  }
  assert.equal(loadAdapter(lora, baseDir).tensors["transformer.wte.weight"], undefined, "LoRA keeps the base's own rows out");
  assert.equal(loadAdapter(plain, baseDir).tensors[ADDED_ROWS], undefined);

  // Training's sequence and inference's prompt share their prefix: role markers as single ids.
  const applied = loadAdapted(lora, baseDir);
  const [ex] = tokenizeExamples(loadGenerativeData(chats), applied.tok, chatTemplateFor(baseDir), { ctx: 32 });
  const prompt = chatPromptIds(chatTemplateFor(baseDir), applied.tok, [{ role: "user", content: "aaa" }]);
  assert.deepEqual(Array.from(ex.ids.subarray(0, ex.promptLength)), prompt);
  assert.ok(prompt.includes(258) && prompt.includes(259));

  const cli = (...args: string[]) => execFileSync(process.execPath, [join(import.meta.dirname, "..", "src", "cli", "main.js"), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const words = ["fad", "bee", "cab", "ace"];
  const cliReplies = (adapter: string) => words.map((w) => cli("generate", "--model", baseDir, "--adapter", adapter, "--chat", w, "--temperature", "0", "--max-tokens", "6").replace(/\n$/, ""));
  const want = { lora: cliReplies(lora), full: cliReplies(full), plain: cliReplies(plain) };
  assert.ok(want.lora.filter((r) => /^[A-F]{3}$/.test(r)).length >= 3, `LoRA replies: ${want.lora.join(" ")}`);
  // The CLI's reply is the adapted model's greedy generation from that prompt.
  const direct = tok.decode(generate(applied.body as GPT, chatPromptIds(chatTemplateFor(baseDir), applied.tok, [{ role: "user", content: words[0] }]), { maxNewTokens: 6, temperature: 0, stopTokens: [tok.eot] }).tokens);
  assert.equal(direct, want.lora[0]);

  const { default: OpenAI, toFile } = await import("openai");
  const { Registry } = await import("../src/registry/index.js");
  const { createServer } = await import("../src/serve/index.js");
  const dbPath = join(dir, "registry.db");
  const reg = await Registry.open(dbPath);
  await reg.catalog.addModel("tiny", baseDir);
  for (const [name, d] of [["lora", lora], ["full", full], ["plain", plain]]) await reg.catalog.addAdapter("acme", name, "tiny", d);
  const key = (await reg.keys.create("acme")).secret;
  await reg.close();
  const server = await createServer({ registry: dbPath });
  const client = new OpenAI({ baseURL: `${await server.listen({ port: 0 })}/v1`, apiKey: key, maxRetries: 0 });
  const chat = async (model: string, w: string) => (await client.chat.completions.create({ model, messages: [{ role: "user", content: w }], temperature: 0, max_tokens: 6 })).choices[0].message.content;
  try {
    // All at once: the LoRA adapters with and without role tokens and the base share the base's batches, the full fine-tune has its own.
    const names = ["lora", "full", "plain"] as const;
    const got = await Promise.all(names.flatMap((n) => words.map((w) => chat(`tiny:${n}`, w))));
    assert.deepEqual(got, names.flatMap((n) => want[n]));
    const usage = (await client.chat.completions.create({ model: "tiny:lora", messages: [{ role: "user", content: "abc" }], temperature: 0, max_tokens: 1 })).usage!;
    assert.equal(usage.prompt_tokens, chatPromptIds(chatTemplateFor(baseDir), applied.tok, [{ role: "user", content: "abc" }]).length);

    // A fine-tuning job with role_tokens: 1: its adapter lists the tokens and replies as plinth generate does with it.
    const file = await client.files.create({ file: await toFile(readFileSync(chats), "chats.jsonl"), purpose: "fine-tune" });
    const create = (hp: Record<string, number>) => client.fineTuning.jobs.create({ model: "tiny", training_file: file.id, method: { type: "lora", lora: { hyperparameters: hp } } } as unknown as Parameters<typeof client.fineTuning.jobs.create>[0]);
    await assert.rejects(create({ steps: 10, role_tokens: 2 }), (e: { status?: number; message: string }) => e.status === 400 && /role_tokens/.test(e.message));
    let j = await create({ steps: 60, batch_size: 8, learning_rate: 1e-2, rank: 8, max_test: 2, role_tokens: 1 });
    for (const t0 = Date.now(); !["succeeded", "failed", "cancelled"].includes(j.status); await new Promise((r) => setTimeout(r, 200))) {
      assert.ok(Date.now() - t0 < 90_000, `job still ${j.status}`);
      j = await client.fineTuning.jobs.retrieve(j.id);
    }
    assert.equal(j.status, "succeeded", JSON.stringify(j.error));
    const { Registry: R } = await import("../src/registry/index.js");
    const reg2 = await R.open(dbPath);
    const entry = (await reg2.catalog.adapters("acme")).find((a) => a.jobId === j.id)!;
    await reg2.close();
    assert.deepEqual(readAdapterManifest(entry.dir).config.added_tokens, markers);
    const jobCli = cli("generate", "--model", baseDir, "--adapter", entry.dir, "--chat", "fad", "--temperature", "0", "--max-tokens", "6").replace(/\n$/, "");
    assert.equal(await chat(j.fine_tuned_model!, "fad"), jobCli);
  } finally {
    await server.close();
  }
  assert.ok(JSON.parse(readFileSync(join(lora, "adapter.json"), "utf8")).config.added_tokens.length === 3);
});
