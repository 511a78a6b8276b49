// The registry (WAL, migrations applied once, adapters bound to their base by hash, lineage
// through adapter-of-adapter, usage sums), the scheduler (greedy text is the same alone or
// batched with other adapters' requests; sequences join a running batch; cancelling one
// leaves the others), and the classification endpoints (zero-shot text, and zero-shot image
// with a tiny CLIP base).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { Registry, migrate, MIGRATIONS } from "../src/registry/index.js";
import { loadGPT } from "../src/models/gpt/index.js";
import { loraWeights } from "../src/serve/packed.js";
import { Scheduler } from "../src/serve/scheduler.js";
import { loadAdapter } from "../src/adapt/artifact.js";
import { createServer } from "../src/serve/index.js";
import { ModelHost } from "../src/serve/host.js";
import { ClipModel, clipConfig, CLIP_PRESETS, saveClip } from "../src/models/clip/index.js";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { BertForMaskedLM, bertConfig, saveBert } from "../src/models/bert/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { corpus, makeFixture, makeBase, type ServeFixture } from "./helpers/serve_fixture.js";

let fx: ServeFixture;
before(async () => { fx = await makeFixture(); });
after(() => fx.cleanup());

test("registry: WAL mode, migrations recorded once, adapters bound to their base, lineage, usage", async () => {
  const reg = await Registry.open(fx.dbPath);
  try {
    assert.equal((await reg.db.get<{ journal_mode: string }>("PRAGMA journal_mode"))?.journal_mode, "wal");
    assert.deepEqual(await migrate(reg.db), []);  // already applied
    const applied = (await reg.db.all<{ version: number }>("SELECT version FROM migrations")).map((r) => r.version);
    assert.deepEqual(applied, MIGRATIONS.map((m) => m.version));
    // An adapter for another base is refused, naming both hashes.
    const other = join(fx.root, "other-base");
    makeBase(other, { seed: 9, trainSteps: 0 });
    await reg.catalog.addModel("other", other);
    await assert.rejects(() => reg.catalog.addAdapter("acme", "wrong", "other", fx.adapterDirs[0]), /was made for base sha256 [0-9a-f]{64}, but other has sha256 [0-9a-f]{64}/);
    // Lineage: an adapter trained from another adapter walks back to the root base.
    const child = await reg.catalog.addAdapter("acme", "style-v2", "tiny", fx.adapterDirs[1], { parent: "tiny:style" });
    assert.deepEqual(await reg.catalog.lineage(child), ["tiny:style-v2", "tiny:style", "tiny"]);
    assert.equal(await reg.catalog.adapter("globex", "tiny", "style-v2"), undefined);
    // Usage sums per key and kind.
    const { key } = await reg.keys.create("acme", { name: "meter" });
    await reg.keys.record({ keyId: key.id, tenant: "acme", kind: "chat", model: "tiny", promptTokens: 5, completionTokens: 7, computeSeconds: 0.5 });
    await reg.keys.record({ keyId: key.id, tenant: "acme", kind: "chat", model: "tiny", promptTokens: 1, completionTokens: 2, computeSeconds: 0.25 });
    assert.deepEqual(await reg.keys.usage("acme", { keyId: key.id }), [{ key_id: key.id, kind: "chat", requests: 2, prompt_tokens: 6, completion_tokens: 9, training_tokens: 0, compute_seconds: 0.75 }]);
    assert.equal(await reg.keys.tokensUsed(key.id), 15);
    assert.deepEqual(await reg.keys.usage("globex", { keyId: key.id }), []);
    await assert.rejects(() => reg.keys.create("bad tenant!"), /tenant "bad tenant!" must be/);
  } finally {
    await reg.close();
  }
});

test("scheduler: a greedy sequence gives the same tokens alone and batched with other adapters' sequences", async () => {
  const gpt = loadGPT(fx.baseDir);
  const adapters = fx.adapterDirs.map((d, i) => {
    const { manifest, tensors } = loadAdapter(d, fx.baseDir);
    return loraWeights(`a${i}`, tensors, manifest.config.lora as Record<string, unknown>);
  });
  const collect = async (it: AsyncGenerator<{ token: number }, { finishReason: string }>) => {
    const out: number[] = [];
    let r = await it.next();
    for (; !r.done; r = await it.next()) out.push(r.value.token);
    return { tokens: out, finish: r.value.finishReason };
  };
  const prompts = [[5, 6, 7], [9, 10], [11, 12, 13, 14], [3]];
  const alone = new Scheduler(gpt, { maxBatch: 1 });
  const solo = [];
  for (const [i, p] of prompts.entries()) solo.push(await collect(alone.submit({ prompt: p, adapter: i === 0 ? null : adapters[i % 2], maxTokens: 12 })));
  const batched = new Scheduler(gpt, { maxBatch: 8 });
  const first = collect(batched.submit({ prompt: prompts[0], adapter: null, maxTokens: 12 }));
  await new Promise((r) => setImmediate(r));  // the others join a batch already running
  const rest = prompts.slice(1).map((p, j) => collect(batched.submit({ prompt: p, adapter: adapters[(j + 1) % 2], maxTokens: 12 })));
  const together = await Promise.all([first, ...rest]);
  assert.deepEqual(together, solo);
  assert.ok(batched.stats().meanBatch > 1.5, `mean batch ${batched.stats().meanBatch}`);
  assert.equal(alone.stats().meanBatch, 1);

  // Cancelling one sequence leaves the others running to the end.
  const ac = new AbortController();
  const keep = collect(batched.submit({ prompt: [5, 6, 7], adapter: null, maxTokens: 12 }));
  const dropped = batched.submit({ prompt: [5, 6, 7], adapter: adapters[0], maxTokens: 12, signal: ac.signal });
  await dropped.next();
  ac.abort();
  const rest2 = await collect(dropped);
  assert.equal(rest2.finish, "cancelled");
  assert.deepEqual(await keep, solo[0]);
  await assert.rejects(collect(batched.submit({ prompt: [], adapter: null, maxTokens: 2 })), /prompt is empty/);
  await assert.rejects(collect(batched.submit({ prompt: [1e6], adapter: null, maxTokens: 2 })), /out of range/);
});

test("zero-shot text on GPT and BERT bases, BERT embeddings, and zero-shot image on a tiny CLIP base", async () => {
  const clipDir = join(fx.root, "clip");
  const tok = new BPETextTokenizer(trainBPE(corpus, { vocabSize: 300 }));
  const t = CLIP_PRESETS.tiny;
  const clip = new ClipModel(clipConfig({ projection_dim: t.projection_dim, text_config: { ...t.text, vocab_size: tok.vocabSize, eos_token_id: tok.eot }, vision_config: t.vision }));
  saveClip(clipDir, clip);
  tok.bpe.save(join(clipDir, "tokenizer.json"));
  const bertDir = join(fx.root, "bert");
  saveBert(bertDir, new BertForMaskedLM(bertConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64 }), { seed: 2 }));
  tok.bpe.save(join(bertDir, "tokenizer.json"));
  const reg = await Registry.open(fx.dbPath);
  await reg.catalog.addModel("clip-tiny", clipDir);
  await reg.catalog.addModel("bert-tiny", bertDir);
  await reg.close();
  const server = await createServer({ registry: fx.dbPath, runJobs: false });
  try {
    const call = async (body: unknown) => {
      const res = await server.app.inject({ method: "POST", url: "/v1/zero-shot", headers: { authorization: `Bearer ${fx.keyA}` }, payload: body as object });
      return { status: res.statusCode, body: res.json() as { data: { label: string; scores: Record<string, number> }[]; error?: { code: string; param: string } } };
    };
    const text = await call({ model: "tiny", input: ["the movie was good", "the movie was bad"], labels: ["good", "bad"] });
    assert.equal(text.status, 200, JSON.stringify(text.body));
    for (const d of text.body.data) assert.ok(Math.abs(d.scores.good + d.scores.bad - 1) < 1e-6);
    // A cloze needs single-token verbalizers: take two words this small tokenizer keeps whole.
    const [w1, w2] = ["the", "was", "and", "movie", "plot", "good", "bad"].filter((w) => tok.encode(` ${w}`).length === 1);
    const cloze = await call({ model: "bert-tiny", input: ["the movie was good"], labels: ["yes", "no"], verbalizers: { yes: ` ${w1}`, no: ` ${w2}` }, template: "{text} it was [MASK]." });
    assert.equal(cloze.status, 200, JSON.stringify(cloze.body));
    assert.ok(Math.abs(cloze.body.data[0].scores.yes + cloze.body.data[0].scores.no - 1) < 1e-6);
    const multi = await call({ model: "bert-tiny", input: ["x"], labels: ["a", "b"], verbalizers: { a: " the movie was", b: ` ${w2}` }, template: "{text} [MASK]." });
    assert.equal(multi.status, 400);
    assert.match(multi.body.error!.param, /verbalizers/);
    const inject = (url: string, payload: object) => server.app.inject({ method: "POST", url, headers: { authorization: `Bearer ${fx.keyA}` }, payload });
    const emb = (await inject("/v1/embeddings", { model: "bert-tiny", input: ["the plot was great", "awful"] })).json() as { data: { embedding: number[] }[] };
    assert.equal(emb.data.length, 2);
    assert.equal(emb.data[0].embedding.length, 32);
    const gen = await inject("/v1/chat/completions", { model: "bert-tiny", messages: [{ role: "user", content: "hi" }] });
    assert.equal(gen.statusCode, 400);
    assert.equal((gen.json() as { error: { code: string } }).error.code, "unsupported_model");
    const png = await sharp(Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 37) % 256)), { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
    const image = await call({ model: "clip-tiny", image: `data:image/png;base64,${png.toString("base64")}`, labels: ["cat", "dog", "car"] });
    assert.equal(image.status, 200, JSON.stringify(image.body));
    const s = image.body.data[0].scores;
    assert.ok(Math.abs(s.cat + s.dog + s.car - 1) < 1e-5 && ["cat", "dog", "car"].includes(image.body.data[0].label));
    const bad = await call({ model: "clip-tiny", image: Buffer.from("not an image").toString("base64"), labels: ["a", "b"] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error!.param, "image");
    const wrong = await call({ model: "tiny", image: png.toString("base64"), labels: ["a", "b"] });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error!.code, "unsupported_model");
  } finally {
    await server.close();
  }
});


test("registry: job and event lists page with cursors; an unknown cursor is an error, not page one", async () => {
  const reg = await Registry.open(fx.dbPath);
  try {
    const keys = { pager: (await reg.keys.create("pager")).key.id, other: (await reg.keys.create("other")).key.id };
    const file = await reg.jobs.addFile({ tenant: "pager", filename: "t.jsonl", purpose: "fine-tune", bytes: 1, path: "/dev/null", rows: 1, labels: ["a"], sha256: "0".repeat(64) });
    const make = (tenant: string) => reg.jobs.createJob({ tenant, keyId: keys[tenant as keyof typeof keys], model: "tiny", trainingFile: file.id, method: "lora", hyperparameters: {}, suffix: null, seed: 0 });
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) mine.unshift((await make("pager")).id);  // newest first
    const theirs = (await make("other")).id;
    const first = await reg.jobs.jobs("pager", { limit: 2 });
    assert.deepEqual(first.data.map((j) => j.id), mine.slice(0, 2));
    assert.equal(first.hasMore, true);
    const second = await reg.jobs.jobs("pager", { after: mine[1], limit: 2 });
    assert.deepEqual(second.data.map((j) => j.id), mine.slice(2, 4));
    const last = await reg.jobs.jobs("pager", { after: mine[3], limit: 2 });
    assert.deepEqual(last.data.map((j) => j.id), [mine[4]]);
    assert.equal(last.hasMore, false);
    await assert.rejects(() => reg.jobs.jobs("pager", { after: "ftjob-nope" }), /Unknown cursor after="ftjob-nope": expected a fine-tuning job id of yours/);
    await assert.rejects(() => reg.jobs.jobs("pager", { after: theirs }), /Unknown cursor/, "another tenant's job is not a cursor");
    for (let i = 0; i < 4; i++) await reg.jobs.addEvent(mine[0], "info", `step ${i}`);
    const events = await reg.jobs.events(mine[0], { limit: 2 });
    assert.deepEqual(events.map((e) => e.message), ["step 3", "step 2"]);
    const next = await reg.jobs.events(mine[0], { after: `ftevent-${events[1].id}`, limit: 10 });
    assert.deepEqual(next.map((e) => e.message), ["step 1", "step 0", "Created fine-tuning job (lora on tiny)"]);
    const asc = await reg.jobs.events(mine[0], { order: "asc", after: `ftevent-${next[1].id}` });
    assert.deepEqual(asc.map((e) => e.message), ["step 1", "step 2", "step 3"]);
    await assert.rejects(() => reg.jobs.events(mine[0], { after: "ftevent-999999" }), /Unknown cursor after="ftevent-999999": expected an event id of job ftjob-/);
    await assert.rejects(() => reg.jobs.events(mine[1], { after: `ftevent-${events[0].id}` }), /Unknown cursor/, "another job's event is not a cursor");
  } finally {
    await reg.close();
  }
});

test("the adapter cache is bounded by bytes as well as by count, least recently used out first", async () => {
  const reg = await Registry.open(fx.dbPath);
  try {
    const a = (await reg.catalog.adapter("acme", "tiny", "style"))!, b = (await reg.catalog.adapter("globex", "tiny", "secret"))!;
    const probe = new ModelHost(reg);
    const one = Object.values((await probe.adapterData(a)).tensors).reduce((n, t) => n + t.data.byteLength, 0);
    assert.ok(one > 0);
    const host = new ModelHost(reg, {}, 256, Math.floor(1.5 * one));
    await host.adapterData(a);
    await host.adapterData(b);
    assert.deepEqual(host.cachedAdapters().ids, [b.id], "two adapters exceed the byte budget: the older leaves");
    await host.adapterData(a);
    assert.deepEqual(host.cachedAdapters().ids, [a.id]);
    assert.ok(host.cachedAdapters().bytes <= 1.5 * one);
    const byCount = new ModelHost(reg, {}, 1);
    await byCount.adapterData(a);
    await byCount.adapterData(b);
    assert.deepEqual(byCount.cachedAdapters().ids, [b.id]);
    const roomy = new ModelHost(reg);
    await roomy.adapterData(a);
    await roomy.adapterData(b);
    await roomy.adapterData(a);  // a use moves it to the back
    assert.deepEqual(roomy.cachedAdapters().ids, [b.id, a.id]);
    for (const h of [probe, host, byCount, roomy]) h.close();
  } finally {
    await reg.close();
  }
});
