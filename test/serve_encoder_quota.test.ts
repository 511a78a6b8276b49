// Encoder routes under the token quota and the encoder queue (issue 15): embeddings,
// classifications and zero-shot reserve the tokens they bill before any forward (a 429 and no
// work if they do not fit) and settle them after, so concurrent requests never pass the quota;
// CLIP image zero-shot runs on the encoder queue in bounded pieces, equal to the one-call
// result, and stops when its client leaves.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { BPETextTokenizer } from "../src/data/tokenizer.js";
import { loadClipRun } from "../src/data/clip_run.js";
import { decodeImage } from "../src/data/images.js";
import { zeroShotImage } from "../src/eval/clip_images.js";
import { ClipModel, clipConfig, CLIP_PRESETS, saveClip } from "../src/models/clip/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { Registry } from "../src/registry/index.js";
import { createServer, type PlinthServer } from "../src/serve/index.js";
import { zeroShotImageSteps } from "../src/serve/clip_steps.js";
import { runSteps, type PieceDone, type PiecePlan } from "../src/adapt/steps.js";
import { corpus, makeFixture, type ServeFixture } from "./helpers/serve_fixture.js";

let fx: ServeFixture;
let clipDir: string;
let png: Buffer;
before(async () => {
  fx = await makeFixture();
  clipDir = join(fx.root, "clip");
  const tok = new BPETextTokenizer(trainBPE(corpus, { vocabSize: 300 }));
  const t = CLIP_PRESETS.tiny;
  saveClip(clipDir, new ClipModel(clipConfig({ projection_dim: t.projection_dim, text_config: { ...t.text, vocab_size: tok.vocabSize, eos_token_id: tok.eot }, vision_config: t.vision })));
  tok.bpe.save(join(clipDir, "tokenizer.json"));
  const reg = await Registry.open(fx.dbPath);
  await reg.catalog.addModel("clip-tiny", clipDir);
  await reg.close();
  png = await sharp(Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 37) % 256)), { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
});
after(() => fx.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Reply = { status: number; body: { usage?: { prompt_tokens: number }; error?: { code: string; message: string } } };
async function post(url: string, path: string, key: string, body: unknown, signal?: AbortSignal): Promise<Reply> {
  const res = await fetch(`${url}${path}`, { method: "POST", signal, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() as Reply["body"] };
}
const quotaKey = async (server: PlinthServer, tokenQuota: number) => {
  const { key, secret } = await server.registry.keys.create("acme", { tokenQuota });
  return { id: key.id, secret, row: key };
};

test("an encoder request whose input does not fit the quota left is a 429 before any forward runs", async () => {
  const server = await createServer({ registry: fx.dbPath, runJobs: false });
  const url = await server.listen({ port: 0 });
  try {
    const k = await quotaKey(server, 20);
    const input = ["the movie was good and the plot was great", "the movie was bad and the plot was awful"];
    for (const [path, body] of [["/v1/embeddings", { model: "tiny", input }], ["/v1/zero-shot", { model: "tiny", input, labels: ["good", "bad"] }]] as const) {
      const r = await post(url, path, k.secret, body);
      assert.equal(r.status, 429, `${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error!.code, "insufficient_quota");
      assert.match(r.body.error!.message, /this request's input is \d+ tokens/);
    }
    // No forward ran: the queue has measured no base yet, and nothing was billed or is still held.
    assert.deepEqual(server.encoders.stats().pieceTokens, {});
    assert.equal(await server.registry.keys.tokensUsed(k.id), 0);
    assert.equal(await server.registry.keys.tokensReserved(k.id), 0);
    // What fits runs and bills exactly what it reports.
    const ok = await post(url, "/v1/embeddings", k.secret, { model: "tiny", input: ["good"] });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(await server.registry.keys.tokensUsed(k.id), ok.body.usage!.prompt_tokens);
  } finally {
    await server.close();
  }
});

test("concurrent embeddings and zero-shot requests never use more than the quota, and bill what they reported", async () => {
  const server = await createServer({ registry: fx.dbPath, runJobs: false });
  const url = await server.listen({ port: 0 });
  try {
    const input = ["the movie was good", "the plot was awful and the movie was bad"];
    const one = await post(url, "/v1/embeddings", fx.keyA, { model: "tiny", input });
    const per = one.body.usage!.prompt_tokens;
    assert.ok(per > 0);
    // Room for about three of the eight requests (a tenant's cap of requests in flight): checked but not reserved, all eight would pass the gate together.
    const k = await quotaKey(server, 3 * per + 3);
    const bodies = Array.from({ length: 8 }, (_, i) => i % 2 === 0 ? ["/v1/embeddings", { model: "tiny", input }] as const
      : ["/v1/zero-shot", { model: "tiny", input, labels: ["good", "bad"] }] as const);
    const results = await Promise.all(bodies.map(([path, body]) => post(url, path, k.secret, body)));
    const ok = results.filter((r) => r.status === 200), refused = results.filter((r) => r.status === 429);
    assert.equal(ok.length + refused.length, 8, results.map((r) => `${r.status} ${JSON.stringify(r.body.error ?? "")}`).join("\n"));
    assert.ok(ok.length >= 1 && refused.length >= 1, `${ok.length} served, ${refused.length} refused`);
    for (const r of refused) assert.equal(r.body.error!.code, "insufficient_quota");
    const used = await server.registry.keys.tokensUsed(k.id);
    assert.ok(used <= 3 * per + 3, `used ${used} of a ${3 * per + 3}-token quota`);
    assert.equal(used, ok.reduce((s, r) => s + r.body.usage!.prompt_tokens, 0), "billed what the replies reported");
    assert.equal(await server.registry.keys.tokensReserved(k.id), 0, "every reservation was settled");
  } finally {
    await server.close();
  }
});

test("CLIP image zero-shot in pieces: the one-call probabilities, each text forward within the token budget", async () => {
  const run = loadClipRun(clipDir);
  const rgb = await decodeImage({ name: "test.png", bytes: png }, run.model.config.vision_config.image_size);
  const labels = ["cat", "dog", "car", "tree", "house", "boat"], templates = ["a photo of {label}.", "{label}", "a drawing of a {label}"];
  const whole = await zeroShotImage(run, { name: "test.png", bytes: png }, labels, templates);
  const perLabel = templates.length * run.encoder.length;
  const seen: (PiecePlan | PieceDone)[] = [];
  const it = zeroShotImageSteps(run, rgb, labels, templates, { pieceTokens: 2 * perLabel });
  let r = it.next();
  for (; !r.done; r = it.next()) seen.push(r.value);
  const byLabel = Object.fromEntries(whole.map((w) => [w.label, w.prob]));
  labels.forEach((l, i) => assert.ok(Math.abs(r.value[i] - byLabel[l]) < 1e-6, `${l}: ${r.value[i]} vs ${byLabel[l]}`));
  const plan = seen.find((p) => p.kind === "plan") as PiecePlan;
  assert.equal(plan.sequences, labels.length * templates.length + 1);
  assert.ok(plan.inputTokens >= labels.length * templates.length);
  const forwards = seen.filter((p): p is PieceDone & { kind: "forward" } => p.kind === "forward");
  assert.equal(forwards.length, labels.length / 2 + 1, "two labels a text forward, then the image");
  for (const f of forwards.slice(0, -1)) assert.ok(f.tokens <= 2 * perLabel);
  assert.deepEqual(runSteps(zeroShotImageSteps(run, rgb, labels, templates, { pieceTokens: 1 })), r.value, "at least one label a piece; the same numbers");
});

test("CLIP image zero-shot runs on the encoder queue, bills its prompt tokens, and stops when its client leaves", async () => {
  // Limits raised so a request of 512 labels × 16 templates (8,192 text sequences) is admitted.
  const server = await createServer({ registry: fx.dbPath, runJobs: false, encoder: { maxLabels: 512, maxPairs: 1_000_000, maxTokens: 10_000_000 } });
  const url = await server.listen({ port: 0 });
  const image = png.toString("base64");
  try {
    const pieces0 = server.encoders.stats().pieces;
    const small = await post(url, "/v1/zero-shot", fx.keyA, { model: "clip-tiny", image, labels: ["cat", "dog", "car"] });
    assert.equal(small.status, 200, JSON.stringify(small.body));
    assert.ok(server.encoders.stats().pieces > pieces0, "the request ran as queue pieces");
    assert.ok(small.body.usage!.prompt_tokens >= 6, "billed the label prompts' tokens");
    const ac = new AbortController();
    const labels = Array.from({ length: 512 }, (_, i) => `label number ${i}`);
    const templates = Array.from({ length: 16 }, (_, i) => `picture ${i} of a {label}`);
    const big = post(url, "/v1/zero-shot", fx.keyB, { model: "clip-tiny", image, labels, templates }, ac.signal).catch((e: unknown) => e);
    while (server.encoders.stats().requests === 0 || server.encoders.stats().pieces < pieces0 + 20) await sleep(2);
    // Another tenant's request is served while the big one runs.
    const other = await post(url, "/v1/zero-shot", fx.keyA, { model: "clip-tiny", image, labels: ["cat", "dog"] });
    assert.equal(other.status, 200);
    assert.equal(server.encoders.stats().requests, 1, "the big request was still running");
    ac.abort();
    assert.equal(((await big) as Error).name, "AbortError");
    const t0 = Date.now();
    while (server.encoders.stats().dropped < 1) {
      assert.ok(Date.now() - t0 < 5000, "the server did not notice the client leaving");
      await sleep(5);
    }
    const atDrop = server.encoders.stats().pieces;
    await sleep(100);
    assert.equal(server.encoders.stats().pieces, atDrop, "pieces ran after the client left");
    assert.ok(server.encoders.stats().maxTurnMs < 500, `a turn held the event loop ${server.encoders.stats().maxTurnMs.toFixed(0)} ms`);
  } finally {
    await server.close();
  }
});

test("a large reply is stringified in slices with the event loop free between them, to the same JSON", async () => {
  const { stringifyInSlices } = await import("../src/serve/json_slices.js");
  const items = Array.from({ length: 256 }, (_, index) => ({ object: "embedding", index, embedding: Array.from({ length: 256 }, (_, j) => Math.sin(index * 256 + j)) }));
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 0);
  const text = await stringifyInSlices({ object: "list", model: "m" }, "data", items, { usage: { prompt_tokens: 3 } }, 0.5);
  clearInterval(ticker);
  assert.deepEqual(JSON.parse(text), { object: "list", model: "m", data: items, usage: { prompt_tokens: 3 } });
  assert.ok(ticks >= 1, "timers ran while the reply was built");
  assert.equal(await stringifyInSlices({}, "data", [], {}), '{"data":[]}');
  await assert.rejects(stringifyInSlices({ data: 1 }, "data", [], {}), /also a field/);
});
