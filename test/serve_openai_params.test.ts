// OpenAI parameters are honoured or refused, never silently ignored: each route's explicit list
// of body parameters (tools, logit_bias, audio, json_schema... are 400s naming the parameter),
// completions' echo, suffix and best_of, embeddings' dimensions, fine-tuning's validation_file,
// response_format json_object by constrained decoding, and DELETE /v1/models/{model}.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { JsonPrefix, compileSchema } from "../src/serve/json_constraint.js";
import { Rng } from "../src/tensor/index.js";
import { makeFixture, writeDataset, type ServeFixture } from "./helpers/serve_fixture.js";
import { type TestServer, startTestServer } from "./helpers/test_server.js";

let fx: ServeFixture;
let server: TestServer;
let url: string;
let client: OpenAI;

before(async () => {
  fx = await makeFixture();
  server = await startTestServer(fx, { runJobs: false });
  url = server.url;
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
});
after(async () => {
  await server.close();
  await fx.cleanup();
});

type Reply = { status: number; body: Record<string, any> };
async function call(method: string, path: string, payload?: unknown, key = fx.keyA): Promise<Reply> {
  const r = await fetch(`${url}${path}`, {
    method, headers: { authorization: `Bearer ${key}`, ...(payload === undefined ? {} : { "content-type": "application/json" }) },
    ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
  });
  return { status: r.status, body: await r.json() as Record<string, any> };
}
const post = (path: string, payload: unknown, key?: string) => call("POST", path, payload, key);

function refused(r: Reply, param: string, pattern: RegExp = /not supported by this server|Unrecognized/): void {
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.error.param, param, JSON.stringify(r.body));
  assert.equal(r.body.error.type, "invalid_request_error");
  assert.match(r.body.error.message, pattern);
}

const chat = { model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 4 };
const completion = { model: "tiny", prompt: "the movie was", max_tokens: 6, temperature: 0 };

test("unsupported and unknown body parameters are 400s naming the parameter", async () => {
  const tool = { type: "function", function: { name: "f", parameters: { type: "object" } } };
  for (const [extra, param] of [
    [{ tools: [tool] }, "tools"], [{ tool_choice: "auto" }, "tool_choice"], [{ functions: [tool.function] }, "functions"],
    [{ function_call: "auto" }, "function_call"], [{ logit_bias: { "5": 10 } }, "logit_bias"], [{ audio: { voice: "alloy", format: "wav" } }, "audio"],
    [{ modalities: ["text", "audio"] }, "modalities"], [{ prediction: { type: "content", content: "x" } }, "prediction"],
    [{ presence_penalty: 0.5 }, "presence_penalty"], [{ frequency_penalty: 1 }, "frequency_penalty"], [{ parallel_tool_calls: true }, "parallel_tool_calls"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { a: { type: "string", pattern: "^a" } } } } } }, "response_format.json_schema.schema.properties.a.pattern"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: { anyOf: [{ type: "object" }] } } } }, "response_format.json_schema.schema.anyOf"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", additionalProperties: true } } } }, "response_format.json_schema.schema.additionalProperties"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { n: { type: "integer", minimum: 3 } } } } } }, "response_format.json_schema.schema.properties.n.minimum"],
    [{ reasoning_effort: "high" }, "reasoning_effort"], [{ store: true }, "store"], [{ frobnicate: 1 }, "frobnicate"],
  ] as const) {
    refused(await post("/v1/chat/completions", { ...chat, ...extra }), param);
  }
  refused(await post("/v1/chat/completions", { ...chat, response_format: { type: "xml" } }), "response_format.type", /expected text, json_object or json_schema/);
  for (const [extra, param] of [[{ suffix: "the end" }, "suffix"], [{ tools: [] }, "tools"], [{ logit_bias: { "1": -100 } }, "logit_bias"], [{ response_format: { type: "json_object" } }, "response_format"]] as const) {
    refused(await post("/v1/completions", { ...completion, ...extra }), param);
  }
  refused(await post("/v1/embeddings", { model: "tiny", input: "x", user_id: "u" }), "user_id");
  refused(await post("/v1/fine_tuning/jobs", { model: "tiny", training_file: "file-x", integrations: [{ type: "wandb" }] }), "integrations");
  // Neutral values of what is not implemented pass (the official client sends what a caller spells out).
  for (const extra of [{ presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, user: "u1", store: false, tool_choice: "none" }, { response_format: { type: "text" } }, { metadata: {} }]) {
    const r = await post("/v1/chat/completions", { ...chat, ...extra });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  assert.equal((await post("/v1/completions", { ...completion, suffix: "", best_of: 1, echo: false, user: "u" })).status, 200);
});

test("completions: echo prepends the prompt (streamed too); echo with logprobs is refused", async () => {
  const plain = await client.completions.create(completion);
  const echoed = await client.completions.create({ ...completion, echo: true });
  assert.equal(echoed.choices[0].text, completion.prompt + plain.choices[0].text);
  const stream = await client.completions.create({ ...completion, echo: true, stream: true });
  let text = "";
  for await (const c of stream) text += c.choices.map((ch) => ch.text).join("");
  assert.equal(text, echoed.choices[0].text);
  refused(await post("/v1/completions", { ...completion, echo: true, logprobs: 1 }), "echo");
});

test("completions: best_of keeps the n choices of highest mean token log-probability", async () => {
  const req = { model: "tiny", prompt: "the plot was", max_tokens: 6, temperature: 1.5, seed: 11 };
  const all = await client.completions.create({ ...req, n: 4, logprobs: 0 });
  const mean = all.choices.map((c) => { const l = c.logprobs!.token_logprobs!; return l.reduce((s, x) => s + x, 0) / l.length; });
  const order = mean.map((_, i) => i).sort((a, b) => mean[b] - mean[a] || a - b);
  const best = await client.completions.create({ ...req, best_of: 4 });
  assert.equal(best.choices.length, 1);
  assert.equal(best.choices[0].text, all.choices[order[0]].text);
  assert.equal(best.choices[0].logprobs, null, "logprobs only when asked");
  assert.equal(best.usage!.completion_tokens, all.usage!.completion_tokens, "every candidate is billed");
  const two = await client.completions.create({ ...req, best_of: 4, n: 2, logprobs: 0 });
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
  assert.deepEqual(two.choices.map((c) => c.text), [all.choices[order[0]].text, all.choices[order[1]].text]);
  refused(await post("/v1/completions", { ...req, n: 3, best_of: 2 }), "best_of", /at least n/);
  refused(await post("/v1/completions", { ...req, best_of: 2, stream: true }), "best_of", /cannot be streamed/);
  // n alone streams as before (best_of defaults to n).
  const streamed = await client.completions.create({ ...req, n: 2, stream: true });
  const seen = new Set<number>();
  for await (const c of streamed) for (const ch of c.choices) seen.add(ch.index);
  assert.deepEqual([...seen].sort(), [0, 1]);
});

test("embeddings: dimensions truncates to the first d and re-normalises", async () => {
  const full = (await client.embeddings.create({ model: "tiny", input: "the movie was good" })).data[0].embedding;
  const short = (await client.embeddings.create({ model: "tiny", input: "the movie was good", dimensions: 8 })).data[0].embedding;
  assert.equal(short.length, 8);
  assert.ok(Math.abs(Math.hypot(...short) - 1) < 1e-5);
  const head = full.slice(0, 8), n = Math.hypot(...head);
  short.forEach((x, i) => assert.ok(Math.abs(x - head[i] / n) < 1e-5));
  assert.equal((await client.embeddings.create({ model: "tiny", input: "x", dimensions: 32 })).data[0].embedding.length, 32);
  for (const d of [0, 33, 2.5, "8"]) refused(await post("/v1/embeddings", { model: "tiny", input: "x", dimensions: d }), "dimensions", /dimensions/);
});

test("json prefix validator: accepts compact JSON objects, refuses the rest, and can always close within its cost", () => {
  const feed = (s: string) => { const p = new JsonPrefix(); const ok = [...Buffer.from(s)].every((b) => p.feed(b)); return { ok, p }; };
  for (const s of ['{}', '{"a":1}', '{"a":[1,-2.5e+3,"x",true,null,{}],"b":{"c":"\\u00e9\\n"}}', '{"é":"ü"}']) {
    const { ok, p } = feed(s);
    assert.ok(ok && p.done && p.cost() === 0, s);
  }
  for (const s of ['[]', '{ }', '{"a" :1}', '{"a":01}', '{"a":1,}', '{a:1}', '{"a":tru}x', '{"a":"\x01"}', '{"a":1}}', '"x"', '{"a":-}']) assert.ok(!feed(s).ok, s);
  // Random walks over allowed bytes that respect the budget always end in a parseable object.
  const rng = new Rng(3);
  for (let trial = 0; trial < 300; trial++) {
    const budget = 2 + Math.floor(rng.uniform() * 30);
    const p = new JsonPrefix();
    const out: number[] = [];
    while (!p.done) {
      const left = budget - out.length;
      const ok = Array.from({ length: 128 }, (_, b) => b).filter((b) => { const c = p.clone(); return c.feed(b) && c.cost() <= left - 1; });
      assert.ok(ok.length > 0, `stuck after ${Buffer.from(out).toString()}`);
      const b = ok[Math.floor(rng.uniform() * ok.length)];
      p.feed(b);
      out.push(b);
    }
    assert.ok(out.length <= budget);
    const v = JSON.parse(Buffer.from(out).toString());
    assert.ok(v !== null && typeof v === "object" && !Array.isArray(v));
  }
});

test("chat: response_format json_object yields a parseable JSON object (sampled, greedy, streamed, tight budgets)", async () => {
  const messages = [{ role: "user" as const, content: "hello" }];
  for (const [temperature, seed, max_tokens] of [[1, 1, 30], [1.3, 2, 30], [1, 3, 12], [0, 0, 20], [1, 4, 2]] as const) {
    const r = await client.chat.completions.create({ model: "tiny", messages, temperature, seed, max_tokens, n: 2, response_format: { type: "json_object" } });
    for (const c of r.choices) {
      assert.equal(c.finish_reason, "stop", JSON.stringify(c));
      const v = JSON.parse(c.message.content!);
      assert.ok(v !== null && typeof v === "object" && !Array.isArray(v), c.message.content!);
      assert.ok(r.usage!.completion_tokens <= 2 * max_tokens);
    }
  }
  const stream = await client.chat.completions.create({ model: "tiny:style", messages, temperature: 1, seed: 9, max_tokens: 25, stream: true, response_format: { type: "json_object" } });
  let text = "", finish: string | null = null;
  for await (const c of stream) for (const ch of c.choices) { text += ch.delta.content ?? ""; finish = ch.finish_reason ?? finish; }
  assert.equal(finish, "stop");
  assert.equal(typeof JSON.parse(text), "object");
  // One token cannot hold an object: nothing is sampled.
  const none = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 1, response_format: { type: "json_object" } });
  assert.equal(none.choices[0].finish_reason, "length");
});

/** The schema below, checked by hand: required keys, no others, each value's type. */
const SCHEMA = {
  type: "object", additionalProperties: false, required: ["name", "age", "mood"],
  properties: {
    name: { type: "string" }, age: { type: "integer" }, mood: { enum: ["good", "bad", 3] }, ok: { type: "boolean" },
    tags: { type: "array", items: { type: "string" } }, score: { type: "number" }, extra: { type: "object", properties: { x: { type: "null" } }, required: ["x"] },
  },
} as const;
function matchesSchema(v: unknown): string | null {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return "not an object";
  const o = v as Record<string, unknown>;
  for (const k of SCHEMA.required) if (!(k in o)) return `missing ${k}`;
  for (const [k, x] of Object.entries(o)) {
    const ok = k === "name" ? typeof x === "string" : k === "age" ? Number.isInteger(x) : k === "mood" ? ["good", "bad", 3].includes(x as string) : k === "ok" ? typeof x === "boolean"
      : k === "tags" ? Array.isArray(x) && x.every((t) => typeof t === "string") : k === "score" ? typeof x === "number"
        : k === "extra" ? x !== null && typeof x === "object" && JSON.stringify(x) === '{"x":null}' : false;
    if (!ok) return `bad ${k}: ${JSON.stringify(x)}`;
  }
  return null;
}

test("json schema validator: random walks within the budget always end in an object that matches the schema", () => {
  const schema = compileSchema(SCHEMA);
  const rng = new Rng(5);
  const fresh = new JsonPrefix(schema);
  const minimum = fresh.cost();
  assert.equal(minimum, '{"name":"","age":0,"mood":3}'.length);
  for (let trial = 0; trial < 200; trial++) {
    const budget = minimum + Math.floor(rng.uniform() * 40);
    const p = new JsonPrefix(schema);
    const out: number[] = [];
    while (!p.done) {
      const left = budget - out.length;
      const ok = Array.from({ length: 128 }, (_, b) => b).filter((b) => { const c = p.clone(); return c.feed(b) && c.cost() <= left - 1; });
      assert.ok(ok.length > 0, `stuck after ${Buffer.from(out).toString()}`);
      const b = ok[Math.floor(rng.uniform() * ok.length)];
      p.feed(b);
      out.push(b);
    }
    const text = Buffer.from(out).toString();
    assert.equal(matchesSchema(JSON.parse(text)), null, text);
  }
});

test("chat: response_format json_schema yields objects that match the schema", async () => {
  const messages = [{ role: "user" as const, content: "hi" }];
  const response_format = { type: "json_schema" as const, json_schema: { name: "person", strict: true, schema: SCHEMA as unknown as Record<string, unknown> } };
  for (const [temperature, seed] of [[1, 1], [1.2, 2], [0, 0]] as const) {
    const r = await client.chat.completions.create({ model: "tiny", messages, temperature, seed, max_tokens: 45, n: 2, response_format });
    for (const c of r.choices) {
      assert.equal(c.finish_reason, "stop", JSON.stringify(c));
      assert.equal(matchesSchema(JSON.parse(c.message.content!)), null, c.message.content!);
    }
  }
  // Fewer tokens than the smallest matching object: nothing can be sampled.
  const short = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 5, response_format });
  assert.equal(short.choices[0].finish_reason, "length");
  assert.equal(short.choices[0].message.content, "");
});

test("fine-tuning: validation_file is the caller's generative file, recorded on the job; others are refused", async () => {
  const chats = join(fx.root, "chats.jsonl");
  writeFileSync(chats, Array.from({ length: 6 }, (_, i) => JSON.stringify({ messages: [{ role: "user", content: `hi ${i}` }, { role: "assistant", content: `hello ${i}` }] })).join("\n") + "\n");
  writeDataset(join(fx.root, "labeled.jsonl"), 12);
  const upload = async (c: OpenAI, path: string) => (await c.files.create({ file: await toFile(readFileSync(path), path.split("/").pop()!), purpose: "fine-tune" })).id;
  const clientB = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyB, maxRetries: 0 });
  const train = await upload(client, chats), valid = await upload(client, chats), labeled = await upload(client, join(fx.root, "labeled.jsonl"));
  const foreign = await upload(clientB, chats);
  const job = await post("/v1/fine_tuning/jobs", { model: "tiny", training_file: train, validation_file: valid, hyperparameters: { steps: 1 } });
  assert.equal(job.status, 200, JSON.stringify(job.body));
  assert.equal(job.body.validation_file, valid);
  assert.equal((await call("GET", `/v1/fine_tuning/jobs/${job.body.id}`)).body.validation_file, valid);
  assert.equal((await server.registry.jobs.job(job.body.id))!.validationFile, valid);
  refused(await post("/v1/fine_tuning/jobs", { model: "tiny", training_file: train, validation_file: foreign }), "validation_file", /invalid validation_file/);
  refused(await post("/v1/fine_tuning/jobs", { model: "tiny", training_file: train, validation_file: "file-nope" }), "validation_file", /invalid validation_file/);
  refused(await post("/v1/fine_tuning/jobs", { model: "tiny", training_file: train, validation_file: labeled }), "validation_file", /labeled file/);
  refused(await post("/v1/fine_tuning/jobs", { model: "tiny", training_file: labeled, validation_file: valid, method: { type: "probe" } }), "validation_file", /not supported by this server for classifier jobs/);
  // The validation file is kept with the job, like its training file.
  assert.equal((await call("DELETE", `/v1/files/${valid}`)).status, 400);
});

let fineTuned = "";
test("fine-tuning: a generative job trains on all of its training file and validates on its validation_file", async () => {
  const dir = join(fx.root, "vf");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(dir, { recursive: true });
  const write = (name: string, rows: number, tag: string) => {
    writeFileSync(join(dir, name), Array.from({ length: rows }, (_, i) => JSON.stringify({ messages: [{ role: "user", content: `${tag} ${i}` }, { role: "assistant", content: `ok ${i}` }] })).join("\n") + "\n");
    return join(dir, name);
  };
  // The server's runner starts a worker for each job it is given (runJobs: false only skips recovery at start).
  const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyB, maxRetries: 0 });
  {
    const upload = async (path: string) => (await c.files.create({ file: await toFile(readFileSync(path), path.split("/").pop()!), purpose: "fine-tune" })).id;
    const train = await upload(write("train.jsonl", 10, "hi")), valid = await upload(write("valid.jsonl", 3, "hey"));
    const job = await c.fineTuning.jobs.create({ model: "tiny", training_file: train, validation_file: valid, suffix: "vf", hyperparameters: { n_epochs: 1, batch_size: 4 } });
    let j = job;
    for (const t0 = Date.now(); !["succeeded", "failed", "cancelled"].includes(j.status); await new Promise((r) => setTimeout(r, 200))) {
      if (Date.now() - t0 > 120_000) throw new Error(`job still ${j.status}`);
      j = await c.fineTuning.jobs.retrieve(job.id);
    }
    assert.equal(j.status, "succeeded", JSON.stringify(j.error));
    assert.equal(j.validation_file, valid);
    const ev = (await server.registry.results.evaluations("globex")).find((e) => e.model === j.fine_tuned_model)!;
    assert.equal(ev.metrics.valid_examples, 3, JSON.stringify(ev.metrics));
    assert.equal(ev.metrics.train_examples, 10, "no split is taken from the training file");
    fineTuned = j.fine_tuned_model!;
  }
});

test("DELETE /v1/models/{model}: the tenant's own adapter leaves the catalog and the cache; a base is 403, another tenant's 404", async () => {
  assert.equal((await post("/v1/completions", { ...completion, model: "tiny:style" })).status, 200);
  const adapterId = (await server.registry.catalog.adapter("acme", "tiny", "style"))!.id;
  // In process the adapter is in the host's cache (through the replicas, in one replica's).
  if (server.server !== null) assert.ok(server.server.host.cachedAdapters().ids.includes(adapterId));
  const base = await call("DELETE", "/v1/models/tiny");
  assert.equal(base.status, 403);
  assert.equal(base.body.error.type, "permission_error");
  const foreign = await call("DELETE", "/v1/models/tiny:secret");
  assert.equal(foreign.status, 404);
  assert.equal(foreign.body.error.code, "model_not_found");
  assert.ok(await server.registry.catalog.adapter("globex", "tiny", "secret") !== undefined, "the other tenant's adapter is untouched");
  const deleted = await client.models.delete("tiny:style");
  assert.deepEqual(deleted, { id: "tiny:style", object: "model", deleted: true });
  if (server.server !== null) assert.ok(!server.server.host.cachedAdapters().ids.includes(adapterId));
  assert.equal((await call("GET", "/v1/models/tiny:style")).status, 404);
  assert.equal((await post("/v1/completions", { ...completion, model: "tiny:style" })).status, 404);
  const ids = (await client.models.list()).data.map((m) => m.id);
  assert.ok(ids.includes("tiny") && !ids.includes("tiny:style"), JSON.stringify(ids));
  assert.equal((await call("DELETE", "/v1/models/tiny:style")).status, 404, "deleted twice");
  assert.equal((await call("DELETE", "/v1/models/nothing")).status, 404);
  // A fine-tuned model (ft:...) of the other tenant: not found for this one, deleted by its owner.
  assert.match(fineTuned, /^ft:tiny:globex:vf:/);
  assert.equal((await call("DELETE", `/v1/models/${fineTuned}`)).status, 404);
  const own = await call("DELETE", `/v1/models/${fineTuned}`, undefined, fx.keyB);
  assert.deepEqual(own.body, { id: fineTuned, object: "model", deleted: true });
  assert.equal((await post("/v1/chat/completions", { ...chat, model: fineTuned }, fx.keyB)).status, 404);
});
