// Generative fine-tuning end to end on tiny bases: OpenAI's fine-tuning formats are validated
// with file:line errors; the chat template renders (the base's own or the default, written on
// first use) and marks assistant spans; the SFT objective masks everything but the learned tokens
// (its loss equals a hand computation) and packs; a LoRA adapter lowers held-out assistant loss
// and its greedy replies follow the taught format; a job through the server names its model
// ft:<base>:<tenant>:<suffix>:<id>, serves it through chat completions, and hides it from others;
// a full fine-tune under bf16 and int8 weights decodes on its own packed matrices with float32's
// greedy replies (plinth generate and the server).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { AdamW } from "../src/optim/index.js";
import { Rng, ids } from "../src/tensor/index.js";
import { ByteTextTokenizer } from "../src/data/tokenizer.js";
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE, chatTemplateFor } from "../src/tokenizer/chat_template.js";
import { chatPromptIds, loadGenerativeData, parseGenerativeJsonl, tokenizeExamples } from "../src/tasks/chat.js";
import { TaskError } from "../src/tasks/task.js";
import { packSequences, packedLoss, supervisedLM } from "../src/train/sft.js";
import { runGenerative, scoreGenerative } from "../src/adapt/generative.js";
import { loadAdapted } from "../src/adapt/apply.js";
import { readAdapterManifest } from "../src/adapt/artifact.js";
import { loadGPT } from "../src/models/gpt/io.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-generative-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const tok = new ByteTextTokenizer();
const LETTERS = "abcdef";

/** A byte-level base pretrained for a moment on lines of lower- and upper-case words (no chats). */
function makeBase(out: string, steps = 150): void {
  const gpt = new GPT(gptConfig({ vocab_size: 257, n_embd: 48, n_layer: 2, n_head: 2, n_positions: 48 }), { seed: 1 });
  const rng = new Rng(5);
  const word = (up: boolean) => Array.from({ length: 3 }, () => (up ? LETTERS.toUpperCase() : LETTERS)[rng.int(6)]).join("");
  const stream: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const w = word(false);
    stream.push(...Buffer.from(i % 2 ? `${w} ${w}\n` : `${word(true)} ${w.toUpperCase()}`), 256);
  }
  const opt = new AdamW(gpt.parameters(), { lr: 1e-2 });
  const T = 32, B = 8;
  for (let step = 0; step < steps; step++) {
    const xs: number[] = [], ys: number[] = [];
    for (let b = 0; b < B; b++) {
      const at = rng.int(stream.length - T - 1);
      xs.push(...stream.slice(at, at + T));
      ys.push(...stream.slice(at + 1, at + T + 1));
    }
    const loss = gpt.loss(ids(xs, [B, T]), ids(ys, [B, T]));
    loss.backward();
    opt.step();
    opt.zeroGrad();
  }
  opt.release();
  saveGPT(out, gpt);
}

/** Chats whose answer is the user's word upper-cased. */
function writeChats(path: string): void {
  const lines: string[] = [];
  for (const a of LETTERS) for (const b of LETTERS) for (const c of LETTERS) {
    const w = a + b + c;
    lines.push(JSON.stringify({ messages: [{ role: "user", content: w }, { role: "assistant", content: w.toUpperCase() }] }));
  }
  writeFileSync(path, lines.join("\n") + "\n");
}

const baseDir = join(dir, "base"), chats = join(dir, "chats.jsonl");
before(() => {
  makeBase(baseDir);
  writeChats(chats);
});

test("chat and prompt/completion files are validated line by line with file:line errors", () => {
  const f = "train.jsonl";
  const ok = parseGenerativeJsonl(`${JSON.stringify({ messages: [{ role: "system", content: "s" }, { role: "user", content: "u" }, { role: "assistant", content: "a", weight: 1 }] })}\n\n`, f);
  assert.equal(ok.format, "chat");
  assert.equal(ok.records.length, 1);
  assert.equal(parseGenerativeJsonl(`{"prompt": "p", "completion": "c"}`, f).format, "completion");
  const bad: [string, RegExp][] = [
    [`{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [`, /^train\.jsonl:1: the chat has no assistant message/],
    [`{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": [`, /^train\.jsonl:2: not valid JSON/],
    [`\n{"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "a"}]}`, /^train\.jsonl:2: messages\[0\] has role "robot"; roles are system, user, assistant/],
    [`{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}`, /^train\.jsonl:1: messages\[0\] \(user\) needs "content" as a string/],
    [`{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0.5}]}`, /^train\.jsonl:1: messages\[1\] has weight 0\.5; weight is 0 or 1/],
    [`{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}`, /^train\.jsonl:1: every assistant message has weight 0/],
    [`{"prompt": "p", "completion": "c"}\n{"messages": [{"role": "assistant", "content": "a"}]}`, /^train\.jsonl:2: a chat line in a prompt\/completion file/],
    [`{"prompt": "p"}`, /^train\.jsonl:1: "completion" must be a non-empty string/],
    [`{"text": "x", "label": "y"}`, /^train\.jsonl:1: expected a chat \{"messages": \[\.\.\.\]\} or a \{"prompt", "completion"\} pair/],
    [``, /^train\.jsonl: no examples/],
  ];
  for (const [text, want] of bad) assert.throws(() => parseGenerativeJsonl(text, f), (e: Error) => e instanceof TaskError && want.test(e.message), want.source);
  // A message over the base's context is refused at tokenization, naming its line.
  const long = parseGenerativeJsonl(JSON.stringify({ messages: [{ role: "user", content: "x".repeat(100) }, { role: "assistant", content: "y" }] }), f);
  assert.throws(() => tokenizeExamples(long, tok, new ChatTemplate(DEFAULT_CHAT_TEMPLATE), { ctx: 48 }), /^TaskError: train\.jsonl:1: the example is \d+ tokens long, over the base's context of 48 tokens/);
});

test("the chat template: the base's own Jinja from tokenizer_config.json, else the default written on first use", () => {
  const own = join(dir, "own");
  saveGPT(own, new GPT(gptConfig({ vocab_size: 257, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32 }), { seed: 2 }));
  writeFileSync(join(own, "tokenizer_config.json"), JSON.stringify({ eos_token: "</s>", chat_template: "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}[ASSISTANT] {% endif %}" }));
  const t = chatTemplateFor(own);
  const msgs = [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }, { role: "assistant", content: "hello" }];
  assert.equal(t.render(msgs), "[SYSTEM] be brief\n[USER] hi\n[ASSISTANT] hello</s>\n");
  assert.equal(t.render(msgs.slice(0, 2), { addGenerationPrompt: true }), "[SYSTEM] be brief\n[USER] hi\n[ASSISTANT] ");
  assert.deepEqual(t.segments(msgs), [{ text: "[SYSTEM] be brief\n[USER] hi\n[ASSISTANT] ", train: false }, { text: "hello</s>\n", train: true }]);
  // No template: the default, stored in tokenizer_config.json on first use (with write).
  const plain = join(dir, "plain");
  saveGPT(plain, new GPT(gptConfig({ vocab_size: 257, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32 }), { seed: 3 }));
  assert.equal(existsSync(join(plain, "tokenizer_config.json")), false);
  const d = chatTemplateFor(plain, { write: true });
  assert.equal(d.source, DEFAULT_CHAT_TEMPLATE);
  assert.equal(JSON.parse(readFileSync(join(plain, "tokenizer_config.json"), "utf8")).chat_template, DEFAULT_CHAT_TEMPLATE);
  assert.equal(d.render([{ role: "user", content: "hi" }], { addGenerationPrompt: true }), "<|user|>\nhi<|endoftext|><|assistant|>\n");
  // Two assistant turns, the first weighted out: only the second is learned.
  const two = [{ role: "user", content: "a" }, { role: "assistant", content: "b", weight: 0 as const }, { role: "user", content: "c" }, { role: "assistant", content: "d" }];
  assert.deepEqual(d.segments(two).map((s) => [s.text, s.train]), [
    ["<|user|>\na<|endoftext|><|assistant|>\n", false], ["b<|endoftext|>", false], ["<|user|>\nc<|endoftext|><|assistant|>\n", false], ["d<|endoftext|>", true],
  ]);
  // The prompt ids at inference are the training sequence's prefix up to the first learned token.
  const data = parseGenerativeJsonl(JSON.stringify({ messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "yo" }] }), "x.jsonl");
  const [ex] = tokenizeExamples(data, tok, d, { ctx: 64 });
  const prompt = chatPromptIds(d, tok, [{ role: "user", content: "hi" }]);
  assert.deepEqual(Array.from(ex.ids.subarray(0, ex.promptLength)), prompt);
  assert.equal(tok.decode(ex.ids.subarray(ex.promptLength)), "yo");  // the byte decoder drops the end-of-text id
  assert.equal(ex.ids[ex.ids.length - 1], tok.eot);
});

test("the SFT objective learns only the marked tokens (the loss equals a hand computation) and packs short examples", () => {
  // Two sequences: ids and which to learn. Targets are the next ids where the next one is learned.
  const a = { ids: Int32Array.from([256, 1, 2, 3]), learn: Uint8Array.from([0, 0, 1, 1]) };
  const b = { ids: Int32Array.from([256, 4, 5]), learn: Uint8Array.from([0, 0, 1]) };
  const rows = packSequences([a, b], 6, 256);
  assert.equal(rows.length, 1);
  assert.deepEqual(Array.from(rows[0].x), [256, 1, 2, 256, 4, 256]);
  assert.deepEqual(Array.from(rows[0].y), [-1, 2, 3, -1, 5, -1]);
  assert.equal(rows[0].used, 5);
  assert.equal(packSequences([a, b], 3, 256).length, 2);  // no room for both: two rows
  // Hand computation: mean over the three targets of -log softmax(logits)[target].
  const gpt = new GPT(gptConfig({ vocab_size: 257, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 8 }), { seed: 4 });
  gpt.eval();
  const { logits } = gpt.forward(ids(Array.from(rows[0].x), [1, 6]));
  const L = logits.toArray() as Float32Array;
  let want = 0, n = 0;
  rows[0].y.forEach((t, i) => {
    if (t < 0) return;
    const row = L.subarray(i * 257, (i + 1) * 257);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    want += lse - row[t];
    n++;
  });
  want /= n;
  const got = packedLoss(gpt, rows, 4);
  assert.equal(got.tokens, 3);
  assert.ok(Math.abs(got.loss - want) < 1e-5, `${got.loss} vs ${want}`);
  // The objective's batches carry the same rows; its validation is the packed held-out loss.
  const o = supervisedLM(gpt, { train: [a, b], val: [a, b], batch: 2, ctx: 6, pad: 256 });
  const batch = o.next(new Rng(0));
  assert.deepEqual(batch.x.shape, [1, 6]);
  // (the epoch's order is seeded: the row may hold b before a)
  const same = packedLoss(gpt, [{ x: Int32Array.from(batch.x.ids), y: Int32Array.from(batch.y.ids), used: 5 }], 1).loss;
  assert.ok(Math.abs(o.loss(batch).item() - same) < 1e-5);
  assert.equal(o.count(batch), 5);
  o.release!(batch);
  assert.ok(Math.abs(o.validate!(new Rng(0)).loss! - want) < 1e-5);
});

test("a LoRA generative adapter lowers held-out assistant loss and its greedy replies follow the taught format", async () => {
  const out = join(dir, "upper-lora");
  const progress: number[] = [];
  const r = await runGenerative({ base: baseDir, method: "lora", data: chats, out, steps: 150, batchSize: 8, lr: 1e-2, valFraction: 0.15, maxTest: 12, lora: { rank: 8 } },
    { onProgress: (p) => { if (p.valLoss !== undefined) progress.push(p.valLoss); } });
  assert.equal(r.format, "chat");
  assert.equal(r.valExamples, 32);
  assert.ok(r.after.loss < r.before.loss - 0.5, `held-out loss ${r.before.loss.toFixed(3)} -> ${r.after.loss.toFixed(3)}`);
  assert.ok(progress.length >= 5, "validation losses reach the progress callback");
  assert.ok(r.trainableParameters < r.totalParameters / 4);
  // The adapter: bound to its base, generative, carrying its chat template; no labels.
  const m = readAdapterManifest(out);
  assert.equal(m.config.objective, "lm");
  assert.equal(m.config.chat_template, DEFAULT_CHAT_TEMPLATE);
  assert.deepEqual(m.labels, []);
  // Applied again to its base, it scores the same held-out loss; greedy replies are 3 upper-case letters.
  const a = loadAdapted(out, baseDir);
  const data = loadGenerativeData(chats);
  const held = scoreGenerative(a.body as GPT, a.tok, chatTemplateFor(baseDir), data.records.slice(0, 24), { maxTest: 24 });
  const follows = held.replies.filter((x) => /^[A-F]{3}$/.test(x.reply)).length;
  assert.ok(follows >= 20, `replies: ${held.replies.map((x) => x.reply).join(" ")}`);
  const bare = scoreGenerative(loadGPT(baseDir), tok, chatTemplateFor(baseDir), data.records.slice(0, 24), { maxTest: 24 });
  assert.ok(bare.replies.filter((x) => /^[A-F]{3}$/.test(x.reply)).length < follows);
});

test("a chat fine-tuning job through the server: ft:<base>:<tenant>:<suffix>:<id>, served by chat completions, invisible to another tenant", async () => {
  const { default: OpenAI, toFile } = await import("openai");
  const { Registry } = await import("../src/registry/index.js");
  const { createServer } = await import("../src/serve/index.js");
  const dbPath = join(dir, "registry.db");
  const reg = await Registry.open(dbPath);
  await reg.catalog.addModel("tiny", baseDir);
  const keyA = (await reg.keys.create("acme")).secret, keyB = (await reg.keys.create("globex")).secret;
  await reg.close();
  const server = await createServer({ registry: dbPath });
  const url = await server.listen({ port: 0 });
  const a = new OpenAI({ baseURL: `${url}/v1`, apiKey: keyA, maxRetries: 0 });
  const b = new OpenAI({ baseURL: `${url}/v1`, apiKey: keyB, maxRetries: 0 });
  try {
    // Bad input: the upload names the line.
    const badLine = `${JSON.stringify({ messages: [{ role: "user", content: "abc" }, { role: "assistant", content: "ABC" }] })}\n${JSON.stringify({ messages: [{ role: "user", content: "abc" }] })}\n`;
    await assert.rejects(a.files.create({ file: await toFile(Buffer.from(badLine), "bad.jsonl"), purpose: "fine-tune" }), (e: { status?: number; message: string }) => e.status === 400 && /bad\.jsonl:2: the chat has no assistant message/.test(e.message));
    const file = await a.files.create({ file: await toFile(readFileSync(chats), "chats.jsonl"), purpose: "fine-tune" });
    const job = await a.fineTuning.jobs.create({
      model: "tiny", training_file: file.id, suffix: "upper",
      method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 3, batch_size: 8, learning_rate_multiplier: 5 } } },
    });
    let j = job;
    for (const t0 = Date.now(); !["succeeded", "failed", "cancelled"].includes(j.status); await new Promise((r) => setTimeout(r, 200))) {
      if (Date.now() - t0 > 60_000) throw new Error(`job still ${j.status}`);
      j = await a.fineTuning.jobs.retrieve(job.id);
    }
    assert.equal(j.status, "succeeded", JSON.stringify(j.error));
    const name = j.fine_tuned_model!;
    assert.match(name, /^ft:tiny:acme:upper:[0-9a-f]{12}$/);
    const events = await a.fineTuning.jobs.listEvents(job.id);
    assert.ok(events.data.some((e) => (e.data as { valid_loss?: number }).valid_loss !== undefined), "events carry the validation loss");
    assert.ok(events.data.some((e) => (e.data as { train_loss?: number }).train_loss !== undefined), "events carry the training loss");
    assert.ok((await a.models.list()).data.some((m) => m.id === name));
    assert.ok(!(await b.models.list()).data.some((m) => m.id === name));
    // Served through the multi-LoRA scheduler, streamed and not; the reply follows the taught format.
    const chat = await a.chat.completions.create({ model: name, messages: [{ role: "user", content: "fad" }], temperature: 0, max_tokens: 8 });
    assert.match(chat.choices[0].message.content ?? "", /^[A-F]{3}$/);
    assert.equal(chat.choices[0].finish_reason, "stop");
    let streamed = "";
    for await (const c of await a.chat.completions.create({ model: name, messages: [{ role: "user", content: "fad" }], temperature: 0, max_tokens: 8, stream: true })) streamed += c.choices[0]?.delta?.content ?? "";
    assert.equal(streamed, chat.choices[0].message.content);
    // Another tenant cannot call it, even by its exact name.
    await assert.rejects(b.chat.completions.create({ model: name, messages: [{ role: "user", content: "fad" }] }), (e: { status?: number }) => e.status === 404);
    await assert.rejects(b.chat.completions.create({ model: name.replace(":acme:", ":globex:"), messages: [{ role: "user", content: "fad" }] }), (e: { status?: number }) => e.status === 404);
  } finally {
    await server.close();
  }
});

test("full generative fine-tuning: plinth adapt --method full --objective lm, served by chat and completions (its own copy's scheduler) exactly as plinth generate replies; a job with method full", async () => {
  const { execFileSync } = await import("node:child_process");
  const cli = (...args: string[]) => execFileSync(process.execPath, [join(import.meta.dirname, "..", "src", "cli", "main.js"), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const out = join(dir, "upper-full");
  const o = JSON.parse(cli("adapt", "--base", baseDir, "--method", "full", "--objective", "lm", "--data", chats, "--out", out, "--steps", "80", "--batch-size", "8", "--lr", "3e-3", "--max-test", "4", "--json")) as { method: string; before: { loss: number }; after: { loss: number }; trainableParameters: number; totalParameters: number };
  assert.equal(o.method, "full");
  assert.equal(o.trainableParameters, o.totalParameters);
  assert.ok(o.after.loss < o.before.loss - 0.5, `held-out loss ${o.before.loss} -> ${o.after.loss}`);
  const m = readAdapterManifest(out);
  assert.equal(m.method, "full");
  assert.equal(m.config.objective, "lm");
  // plinth generate with the adapter, greedy: the reference the server must reproduce.
  const words = ["fad", "bee", "cab"];
  const cliReplies = words.map((w) => cli("generate", "--model", baseDir, "--adapter", out, "--chat", w, "--temperature", "0", "--max-tokens", "8").replace(/\n$/, ""));
  assert.ok(cliReplies.filter((r) => /^[A-F]{3}$/.test(r)).length >= 2, `replies: ${cliReplies.join(" ")}`);
  const adapted = loadAdapted(out, baseDir).body as GPT;
  const { generate } = await import("../src/models/gpt/generate.js");
  const completionRef = tok.decode(generate(adapted, Array.from(tok.encode("abc ")), { maxNewTokens: 6, temperature: 0, stopTokens: [tok.eot] }).tokens);

  const { default: OpenAI, toFile } = await import("openai");
  const { Registry } = await import("../src/registry/index.js");
  const { createServer } = await import("../src/serve/index.js");
  const dbPath = join(dir, "registry-full.db");
  const reg = await Registry.open(dbPath);
  await reg.catalog.addModel("tiny", baseDir);
  await reg.catalog.addAdapter("acme", "upfull", "tiny", out);
  const keyA = (await reg.keys.create("acme")).secret, keyB = (await reg.keys.create("globex")).secret;
  await reg.close();
  const server = await createServer({ registry: dbPath });
  const url = await server.listen({ port: 0 });
  const a = new OpenAI({ baseURL: `${url}/v1`, apiKey: keyA, maxRetries: 0 });
  const b = new OpenAI({ baseURL: `${url}/v1`, apiKey: keyB, maxRetries: 0 });
  const chat = async (model: string, w: string) => (await a.chat.completions.create({ model, messages: [{ role: "user", content: w }], temperature: 0, max_tokens: 8 })).choices[0].message.content;
  try {
    // Alone, then all at once beside the base's own sequences: the same greedy replies as the CLI.
    for (const [i, w] of words.entries()) assert.equal(await chat("tiny:upfull", w), cliReplies[i], `chat ${w}`);
    const baseAlone = await Promise.all(words.map((w) => chat("tiny", w)));
    const together = await Promise.all(words.flatMap((w) => [chat("tiny:upfull", w), chat("tiny", w)]));
    assert.deepEqual(together, words.flatMap((_, i) => [cliReplies[i], baseAlone[i]]));
    assert.notDeepEqual(baseAlone, cliReplies, "the base's replies are its own");
    let streamed = "";
    for await (const c of await a.chat.completions.create({ model: "tiny:upfull", messages: [{ role: "user", content: words[0] }], temperature: 0, max_tokens: 8, stream: true })) streamed += c.choices[0]?.delta?.content ?? "";
    assert.equal(streamed, cliReplies[0]);
    const comp = await a.completions.create({ model: "tiny:upfull", prompt: "abc ", temperature: 0, max_tokens: 6 });
    assert.equal(comp.choices[0].text, completionRef);
    await assert.rejects(b.chat.completions.create({ model: "tiny:upfull", messages: [{ role: "user", content: "fad" }] }), (e: { status?: number }) => e.status === 404);
    // The cache's byte bound counts the adapter's weights and the copy of the base it generates on.
    const weightBytes = adapted.parameters().reduce((n, p) => n + p.size * 4, 0);
    assert.ok(server.host.cachedAdapters().bytes >= 2 * weightBytes, `${server.host.cachedAdapters().bytes} bytes cached for ${weightBytes} bytes of weights`);

    // A fine-tuning job with method full on the chat file: its ft: model chats in the taught format.
    const file = await a.files.create({ file: await toFile(readFileSync(chats), "chats.jsonl"), purpose: "fine-tune" });
    const job = await a.fineTuning.jobs.create({ model: "tiny", training_file: file.id, suffix: "full", method: { type: "full", full: { hyperparameters: { steps: 80, batch_size: 8, learning_rate: 3e-3, max_test: 2 } } } } as unknown as Parameters<typeof a.fineTuning.jobs.create>[0]);
    let j = job;
    for (const t0 = Date.now(); !["succeeded", "failed", "cancelled"].includes(j.status); await new Promise((r) => setTimeout(r, 200))) {
      if (Date.now() - t0 > 90_000) throw new Error(`job still ${j.status}`);
      j = await a.fineTuning.jobs.retrieve(job.id);
    }
    assert.equal(j.status, "succeeded", JSON.stringify(j.error));
    assert.match(j.fine_tuned_model!, /^ft:tiny:acme:full:[0-9a-f]{12}$/);
    const replies = await Promise.all(words.map((w) => chat(j.fine_tuned_model!, w)));
    assert.ok(replies.filter((r) => /^[A-F]{3}$/.test(r ?? "")).length >= 2, `replies: ${replies.join(" ")}`);
  } finally {
    await server.close();
  }
});

test("a full generative fine-tune under bf16 and int8 weights: logits near float32's, and plinth generate and the server give float32's greedy replies", async () => {
  const { execFileSync } = await import("node:child_process");
  const { useInferenceWeights } = await import("../src/models/inference_weights.js");
  const { noGrad } = await import("../src/tensor/index.js");
  const { chatPromptIds } = await import("../src/tasks/chat.js");
  const cli = (...args: string[]) => execFileSync(process.execPath, [join(import.meta.dirname, "..", "src", "cli", "main.js"), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const out = join(dir, "upper-full-lowp");
  await runGenerative({ base: baseDir, method: "full", data: chats, out, steps: 160, batchSize: 8, lr: 3e-3, maxTest: 0 });
  const words = ["fad", "bee", "cab"];
  const prompt = chatPromptIds(chatTemplateFor(baseDir), tok, [{ role: "user", content: "dab" }]);
  const logitsOf = (m: GPT) => noGrad(() => m.lastLogits(ids(prompt, [1, prompt.length])).toArray() as Float32Array);
  const ref = logitsOf(loadAdapted(out, baseDir).body as GPT);
  const baseLogits = logitsOf(loadGPT(baseDir));
  const scale = ref.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
  const gap = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => Math.max(s, Math.abs(v - b[i])), 0);
  const reply = (w: string, weights: string) => cli("generate", "--model", baseDir, "--adapter", out, "--chat", w, "--temperature", "0", "--max-tokens", "8", "--weights", weights).replace(/\n$/, "");
  const fp32Replies = words.map((w) => reply(w, "fp32"));
  assert.ok(fp32Replies.filter((r) => /^[A-F]{3}$/.test(r)).length >= 2, `float32 replies: ${fp32Replies.join(" ")}`);
  for (const [format, tol] of [["bf16", 0.03], ["int8", 0.06]] as const) {
    const body = loadAdapted(out, baseDir).body as GPT;
    useInferenceWeights(body, format);
    assert.equal(body.transformer.h[0].attn.c_attn.packed?.format, format);
    const got = logitsOf(body);
    // Packed from the fine-tune's own weights: near its float32 logits, not the base's.
    assert.ok(gap(got, ref) > 0 && gap(got, ref) <= tol * scale, `${format}: logits differ by ${gap(got, ref)} (scale ${scale})`);
    assert.ok(gap(got, baseLogits) > 2 * gap(got, ref), `${format}: ${gap(got, baseLogits)} from the base's logits`);
    assert.deepEqual(words.map((w) => reply(w, format)), fp32Replies, `${format}: plinth generate`);
  }

  const { default: OpenAI } = await import("openai");
  const { Registry } = await import("../src/registry/index.js");
  const { createServer } = await import("../src/serve/index.js");
  const dbPath = join(dir, "registry-full-lowp.db");
  const reg = await Registry.open(dbPath);
  await reg.catalog.addModel("tiny", baseDir);
  await reg.catalog.addAdapter("acme", "upfull", "tiny", out);
  const key = (await reg.keys.create("acme")).secret;
  await reg.close();
  for (const weights of ["bf16", "int8"] as const) {
    const server = await createServer({ registry: dbPath, weights });
    try {
      const client = new OpenAI({ baseURL: `${await server.listen({ port: 0 })}/v1`, apiKey: key, maxRetries: 0 });
      const replies = await Promise.all(words.map(async (w) => (await client.chat.completions.create({ model: "tiny:upfull", messages: [{ role: "user", content: w }], temperature: 0, max_tokens: 8 })).choices[0].message.content));
      assert.deepEqual(replies, fp32Replies, `${weights}: served replies`);
      // The fine-tune's own copy of the base, which its scheduler decodes on, holds packed matrices too.
      const formats = server.host.schedulers().map((sch) => sch.model.transformer.h[0].attn.c_attn.packed?.format ?? "fp32");
      assert.deepEqual(formats, [weights, weights], `${weights}: the base's scheduler and the fine-tune's own decode on packed matrices`);
    } finally {
      await server.close();
    }
  }
});
