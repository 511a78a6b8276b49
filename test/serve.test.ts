// The server driven by the official `openai` client over real HTTP on loopback: models with
// parent/root lineage, completions, chat (streamed and not, stop, n, logprobs), embeddings,
// and per-tenant adapters; the same request through the base and through an adapter differ.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { makeFixture, type ServeFixture } from "./helpers/serve_fixture.js";
import { type TestServer, startTestServer } from "./helpers/test_server.js";

let fx: ServeFixture;
let server: TestServer;
let url: string;
let clientA: OpenAI;

before(async () => {
  fx = await makeFixture();
  server = await startTestServer(fx, { runJobs: false });
  url = server.url;
  clientA = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
});
after(async () => {
  await server.close();
  await fx.cleanup();
});

test("models: the base and the tenant's own adapters, with parent and root", async () => {
  const list = await clientA.models.list();
  const ids = list.data.map((m) => m.id);
  assert.deepEqual(ids, ["tiny", "tiny:style"]);
  const adapter = list.data[1] as unknown as { parent: string; root: string; owned_by: string };
  assert.equal(adapter.parent, "tiny");
  assert.equal(adapter.root, "tiny");
  assert.equal(adapter.owned_by, "acme");
  const one = await clientA.models.retrieve("tiny:style");
  assert.equal(one.id, "tiny:style");
});

test("completions: greedy is deterministic, max_tokens and usage are honoured, an adapter changes the text", async () => {
  const req = { model: "tiny", prompt: "the movie was", max_tokens: 8, temperature: 0 } as const;
  const a = await clientA.completions.create(req);
  const b = await clientA.completions.create(req);
  assert.equal(a.object, "text_completion");
  assert.equal(a.choices[0].text, b.choices[0].text);
  assert.ok(a.usage!.completion_tokens <= 8 && a.usage!.completion_tokens >= 1);
  assert.equal(a.usage!.total_tokens, a.usage!.prompt_tokens + a.usage!.completion_tokens);
  assert.ok(!a.choices[0].text.includes("\ufffd"), JSON.stringify(a.choices[0].text));
  const lp = await clientA.completions.create({ ...req, logprobs: 3 });
  const withAdapter = await clientA.completions.create({ ...req, model: "tiny:style", logprobs: 3 });
  assert.notDeepEqual(withAdapter.choices[0].logprobs!.token_logprobs, lp.choices[0].logprobs!.token_logprobs);
  const l = lp.choices[0].logprobs!;
  assert.equal(l.tokens!.length, l.token_logprobs!.length);
  assert.ok(l.token_logprobs!.every((x) => x <= 0));
  assert.ok(l.top_logprobs!.every((o) => Object.keys(o).length >= 1 && Object.keys(o).length <= 3));
  // Offsets index the tokens' text in prompt + completion.
  const whole = "the movie was" + lp.choices[0].text;
  l.tokens!.forEach((t, i) => assert.equal(whole.slice(l.text_offset![i], l.text_offset![i] + t.length), t));
});

test("chat: non-streamed and streamed give the same greedy text; n and stop", async () => {
  const messages = [{ role: "user" as const, content: "hello" }];
  const plain = await clientA.chat.completions.create({ model: "tiny:style", messages, max_tokens: 10, temperature: 0 });
  assert.equal(plain.object, "chat.completion");
  assert.equal(plain.choices[0].message.role, "assistant");
  const stream = await clientA.chat.completions.create({ model: "tiny:style", messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = "", chunks = 0, finish: string | null = null, usage = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage.completion_tokens;
    for (const ch of c.choices) {
      text += ch.delta.content ?? "";
      finish = ch.finish_reason ?? finish;
    }
  }
  assert.equal(text, plain.choices[0].message.content);
  assert.ok(chunks >= 3, `chunks ${chunks}`);
  assert.equal(finish, plain.choices[0].finish_reason);
  assert.equal(usage, plain.usage!.completion_tokens);

  const many = await clientA.chat.completions.create({ model: "tiny", messages, max_tokens: 6, temperature: 1, n: 3, seed: 5 });
  assert.deepEqual(many.choices.map((c) => c.index).sort(), [0, 1, 2]);
  // A stop sequence taken from the greedy text ends the text just before it.
  const greedy = (await clientA.chat.completions.create({ model: "tiny", messages, max_tokens: 10, temperature: 0 })).choices[0].message.content!;
  // The base's chat template decides the greedy text: cut at its second word, or inside its only one.
  const trimmed = greedy.trim();
  assert.ok(trimmed.length >= 2, JSON.stringify(greedy));
  const words = trimmed.split(/\s+/);
  const cut = words.length >= 2 ? words[1] : trimmed.slice(1);
  const stopped = await clientA.chat.completions.create({ model: "tiny", messages, max_tokens: 10, temperature: 0, stop: [cut] });
  assert.equal(stopped.choices[0].message.content, greedy.slice(0, greedy.indexOf(cut)));
  assert.equal(stopped.choices[0].finish_reason, "stop");
  const withLogprobs = await clientA.chat.completions.create({ model: "tiny", messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2 });
  const content = withLogprobs.choices[0].logprobs!.content!;
  assert.ok(content.length >= 1 && content.every((c) => c.top_logprobs.length === 2 && c.logprob <= 0));
});

test("embeddings: one vector per input, the model's width", async () => {
  const r = await clientA.embeddings.create({ model: "tiny", input: ["the movie was good", "awful"] });
  assert.equal(r.data.length, 2);
  assert.equal(r.data[0].embedding.length, 32);
  assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
  assert.ok(r.usage.prompt_tokens > 0);
});

test("usage is metered per key and queryable", async () => {
  const res = await fetch(`${url}/v1/usage`, { headers: { authorization: `Bearer ${fx.keyA}` } });
  const body = await res.json() as { data: { kind: string; prompt_tokens: number; completion_tokens: number; compute_seconds: number }[] };
  const chat = body.data.find((r) => r.kind === "chat")!;
  assert.ok(chat.completion_tokens > 0 && chat.prompt_tokens > 0 && chat.compute_seconds > 0);
  assert.ok(body.data.some((r) => r.kind === "embedding"));
});
