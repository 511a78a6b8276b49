// Tenancy and bad requests: key A cannot list, use or read key B's adapters, files or jobs;
// malformed JSON, oversized bodies, unknown models, invalid parameters, bad keys, rate limits
// and quotas each get OpenAI's error body with the right status; a client that disconnects
// mid-stream cancels its sequences.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import OpenAI, { toFile } from "openai";
import { Registry } from "../src/registry/index.js";
import { makeFixture, type ServeFixture } from "./helpers/serve_fixture.js";
import { type TestServer, replicaMode, startTestServer } from "./helpers/test_server.js";

let fx: ServeFixture;
let server: TestServer;
let url: string;
let A: OpenAI, B: OpenAI;

before(async () => {
  fx = await makeFixture();
  server = await startTestServer(fx, { runJobs: false, bodyLimit: 64 * 1024, adminKey: "admin-secret" });
  url = server.url;
  A = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
  B = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyB, maxRetries: 0 });
});
after(async () => {
  await server.close();
  await fx.cleanup();
});

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string } };
async function post(path: string, body: string, { key = fx.keyA, type = "application/json" } = {}): Promise<{ status: number; body: ErrorBody }> {
  const res = await fetch(`${url}${path}`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": type }, body });
  return { status: res.status, body: await res.json() as ErrorBody };
}
function isOpenAIError(r: { status: number; body: ErrorBody }, status: number, code: string, param?: string | null): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body.error).sort(), ["code", "message", "param", "type"]);
  assert.equal(r.body.error.code, code);
  assert.ok(r.body.error.message.length > 10);
  if (param !== undefined) assert.equal(r.body.error.param, param);
}

async function rejects(p: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    const err = e as InstanceType<typeof OpenAI.APIError>;
    assert.ok(err instanceof OpenAI.APIError, String(e));
    assert.equal(err.status, status, err.message);
    assert.equal(err.code, code);
    return true;
  });
}

test("isolation: adapters, files and jobs of one tenant are invisible to another", async () => {
  assert.deepEqual((await B.models.list()).data.map((m) => m.id), ["tiny", "tiny:secret"]);
  assert.ok(!(await A.models.list()).data.some((m) => m.id === "tiny:secret"));
  await rejects(A.models.retrieve("tiny:secret"), 404, "model_not_found");
  await rejects(A.chat.completions.create({ model: "tiny:secret", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }), 404, "model_not_found");
  await rejects(A.completions.create({ model: "tiny:secret", prompt: "hi", max_tokens: 2 }), 404, "model_not_found");

  const lines = Array.from({ length: 6 }, (_, i) => JSON.stringify({ text: `row ${i}`, label: i % 2 ? "x" : "y" })).join("\n");
  const fileB = await B.files.create({ file: await toFile(Buffer.from(lines), "b.jsonl"), purpose: "fine-tune" });
  assert.equal(fileB.object, "file");
  assert.equal((await B.files.list()).data.length, 1);
  assert.equal((await A.files.list()).data.length, 0);
  await rejects(A.files.retrieve(fileB.id), 404, "not_found");
  await rejects(A.files.content(fileB.id), 404, "not_found");
  assert.equal(await (await B.files.content(fileB.id)).text(), lines);
  // A cannot train on B's file; B's job is B's alone.
  await rejects(A.fineTuning.jobs.create({ model: "tiny", training_file: fileB.id }), 400, "invalid_value");
  const jobB = await B.fineTuning.jobs.create({ model: "tiny", training_file: fileB.id, method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 2, batch_size: "auto" } } } });
  assert.equal(jobB.status, "queued");  // the runner is off in this test
  assert.equal(jobB.method?.type, "lora");  // OpenAI's supervised fine-tuning runs as LoRA
  assert.deepEqual(jobB.hyperparameters, { n_epochs: 2 });
  assert.equal((await A.fineTuning.jobs.list()).data.length, 0);
  await rejects(A.fineTuning.jobs.retrieve(jobB.id), 404, "not_found");
  await rejects(A.fineTuning.jobs.cancel(jobB.id), 404, "not_found");
  await rejects(A.fineTuning.jobs.listEvents(jobB.id), 404, "not_found");
  await rejects(A.fineTuning.jobs.checkpoints.list(jobB.id), 404, "not_found");
  assert.equal((await B.fineTuning.jobs.cancel(jobB.id)).status, "cancelled");
  // Deleting: not another tenant's file, not a file a job trained on; an unused one, yes.
  await rejects(A.files.delete(fileB.id), 404, "not_found");
  await rejects(B.files.delete(fileB.id), 400, "invalid_value");
  const spare = await B.files.create({ file: await toFile(Buffer.from(lines), "spare.jsonl"), purpose: "fine-tune" });
  assert.deepEqual(await B.files.delete(spare.id), { id: spare.id, object: "file", deleted: true });
  await rejects(B.files.retrieve(spare.id), 404, "not_found");
  await rejects(B.fineTuning.jobs.cancel(jobB.id), 400, "job_not_cancellable");
});

test("bad requests: malformed JSON, oversized bodies, unknown models, invalid parameters", async () => {
  isOpenAIError(await post("/v1/chat/completions", '{"model": "tiny", "messages": ['), 400, "invalid_json");
  isOpenAIError(await post("/v1/chat/completions", "[1, 2]"), 400, "invalid_value");
  isOpenAIError(await post("/v1/completions", JSON.stringify({ model: "tiny", prompt: "x".repeat(100_000) })), 413, "body_too_large");
  isOpenAIError(await post("/v1/completions", "model=tiny", { type: "text/plain" }), 415, "unsupported_media_type");
  isOpenAIError(await post("/v1/completions", JSON.stringify({ model: "nope", prompt: "hi" })), 404, "model_not_found", "model");
  isOpenAIError(await post("/v1/completions", JSON.stringify({ prompt: "hi" })), 400, "missing_required_parameter", "model");
  isOpenAIError(await post("/v1/completions", JSON.stringify({ model: "tiny", prompt: "hi", temperature: 3 })), 400, "invalid_value", "temperature");
  isOpenAIError(await post("/v1/completions", JSON.stringify({ model: "tiny", prompt: "hi", max_tokens: 2.5 })), 400, "invalid_value", "max_tokens");
  isOpenAIError(await post("/v1/completions", JSON.stringify({ model: "tiny", prompt: "hi", n: 0 })), 400, "invalid_value", "n");
  isOpenAIError(await post("/v1/completions", JSON.stringify({ model: "tiny", prompt: "hi", top_p: 0 })), 400, "invalid_value", "top_p");
  isOpenAIError(await post("/v1/chat/completions", JSON.stringify({ model: "tiny", messages: [{ role: "wizard", content: "x" }] })), 400, "invalid_value", "messages[0].role");
  isOpenAIError(await post("/v1/chat/completions", JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "the movie was ".repeat(30) }] })), 400, "context_length_exceeded");
  isOpenAIError(await post("/v1/embeddings", JSON.stringify({ model: "tiny", input: [] })), 400, "invalid_value", "input");
  isOpenAIError(await post("/v1/fine_tuning/jobs", JSON.stringify({ model: "tiny", training_file: "file-x", method: { type: "dpo" } })), 400, "invalid_value", "method.type");
  const bad = await fetch(`${url}/v1/nothing-here`, { headers: { authorization: `Bearer ${fx.keyA}` } });
  assert.equal(bad.status, 404);
  // A list cursor that names nothing is an error, not silently page one.
  await rejects(A.fineTuning.jobs.list({ after: "ftjob-nope" }), 400, "invalid_value");
  const cursor = await fetch(`${url}/v1/fine_tuning/jobs?after=ftjob-nope`, { headers: { authorization: `Bearer ${fx.keyA}` } });
  assert.equal(((await cursor.json()) as { error: { param: string } }).error.param, "after");
  // Uploads are validated line by line.
  await rejects(A.files.create({ file: await toFile(Buffer.from('{"text": "a", "label": "x"}\n{oops\n'), "d.jsonl"), purpose: "fine-tune" }), 400, "invalid_file");
  await rejects(A.files.create({ file: await toFile(Buffer.from('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n'), "d.jsonl"), purpose: "fine-tune" }), 400, "invalid_file");
  await rejects(A.files.create({ file: await toFile(Buffer.from('{"prompt": "a"}\n'), "d.jsonl"), purpose: "fine-tune" }), 400, "invalid_file");
  await rejects(A.files.create({ file: await toFile(Buffer.from("a,b\n"), "d.csv"), purpose: "fine-tune" }), 400, "invalid_file");
});

test("keys: missing and wrong keys get 401; rate limits and token quotas get 429", async () => {
  const noKey = await fetch(`${url}/v1/models`);
  isOpenAIError({ status: noKey.status, body: await noKey.json() as ErrorBody }, 401, "missing_api_key");
  await rejects(new OpenAI({ baseURL: `${url}/v1`, apiKey: "pk-wrong", maxRetries: 0 }).models.list(), 401, "invalid_api_key");
  // Keys are stored hashed: the secret itself is nowhere in the registry file's key table.
  const reg = await Registry.open(fx.dbPath, { readonly: true });
  const rows = await reg.db.all<{ hash: string }>("SELECT hash FROM api_keys");
  assert.ok(rows.length >= 2 && rows.every((r) => /^[0-9a-f]{64}$/.test(r.hash) && r.hash !== fx.keyA));
  await reg.close();

  const made = await post("/v1/plinth/keys", JSON.stringify({ tenant: "acme", rpm: 2, token_quota: 1000 }), { key: "admin-secret" }) as unknown as { status: number; body: { key: string } };
  assert.equal(made.status, 200);
  isOpenAIError(await post("/v1/plinth/keys", JSON.stringify({ tenant: "acme" })), 403, "admin_only");
  const limited = new OpenAI({ baseURL: `${url}/v1`, apiKey: made.body.key, maxRetries: 0 });
  await limited.models.list();
  await limited.models.list();
  await rejects(limited.models.list(), 429, "rate_limit_exceeded");

  const quota = (await post("/v1/plinth/keys", JSON.stringify({ tenant: "acme", token_quota: 5 }), { key: "admin-secret" }) as unknown as { body: { key: string } }).body.key;
  const q = new OpenAI({ baseURL: `${url}/v1`, apiKey: quota, maxRetries: 0 });
  await q.completions.create({ model: "tiny", prompt: "the movie was", max_tokens: 4, temperature: 0 });  // cut to the 5 tokens the quota holds
  await rejects(q.completions.create({ model: "tiny", prompt: "the movie", max_tokens: 4 }), 429, "insufficient_quota");
});

test("a client that disconnects mid-stream cancels its sequences", async () => {
  // The base's scheduler, from /v1/plinth/stats of the replica that serves tiny:style (X-Plinth-Model routes as the body does).
  const stats = async () => {
    const r = await fetch(`${url}/v1/plinth/stats`, { headers: { authorization: `Bearer ${fx.keyA}`, "x-plinth-model": "tiny:style" } });
    const body = await r.json() as { loaded: { name: string; scheduler: { tokens: number; active: number; waiting: number } | null }[] };
    return { replica: r.headers.get("x-plinth-replica"), ...body.loaded.find((b) => b.name === "tiny")?.scheduler ?? { tokens: 0, active: 0, waiting: 0 } };
  };
  await A.chat.completions.create({ model: "tiny:style", messages: [{ role: "user", content: "hi" }], max_tokens: 1 });  // loaded there
  const before = (await stats()).tokens;
  const ac = new AbortController();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST", signal: ac.signal, headers: { authorization: `Bearer ${fx.keyA}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny:style", messages: [{ role: "user", content: "hi" }], max_tokens: 50, n: 8, temperature: 1, stream: true }),
  });
  const streamedBy = res.headers.get("x-plinth-replica");
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  await new Promise((r) => setTimeout(r, 300));
  const s = await stats();
  assert.equal(s.replica, streamedBy, "the stats are the streaming replica's");
  assert.equal(s.active + s.waiting, 0);
  assert.ok(s.tokens - before < 8 * 50 / 2, `generated ${s.tokens - before} of ${8 * 50} tokens after the disconnect`);
  // The server still answers.
  assert.equal((await A.models.list()).data.length, 2);
});

test("a percent-encoded path cannot skip the key check; stats list only the caller's jobs; a wrong admin key is refused", async () => {
  for (const path of ["/%761/plinth/stats", "/v1/plinth/%73tats", "/v1/models"]) {
    const res = await fetch(`${url}${path}`);
    assert.equal(res.status, 401, `${path}: ${res.status}`);
    assert.equal(((await res.json()) as ErrorBody).error.code, "missing_api_key");
  }
  const res = await fetch(`${url}/v1/plinth/stats`, { headers: { authorization: `Bearer ${fx.keyA}` } });
  assert.equal(res.status, 200);
  assert.ok(Array.isArray(((await res.json()) as { running_jobs: unknown[] }).running_jobs));
  const admin = await fetch(`${url}/v1/plinth/keys`, { method: "POST", headers: { authorization: "Bearer admin-secreT", "content-type": "application/json" }, body: JSON.stringify({ tenant: "x" }) });
  assert.equal(admin.status, 403);
});

/** Sends raw bytes and returns the whole response (the connection ends it). */
function raw(text: string, { end = true } = {}): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const c = net.connect(Number(port), "127.0.0.1", () => (end ? c.end(text) : c.write(text)));
    let got = "";
    c.on("data", (d) => (got += d.toString()));
    c.on("error", () => {});
    c.on("close", () => resolve(got));
  });
}
function rawError(response: string, status: number, code: string): void {
  assert.match(response, new RegExp(`^HTTP/1.1 ${status} `), response);
  const body = JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4)) as ErrorBody;
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
  assert.equal(body.error.code, code);
}

test("protocol errors, odd JSON, uploads with a BOM or a bad name, and the dashboard's headers", async () => {
  const auth = `Authorization: Bearer ${fx.keyA}\r\n`;
  // Protocol errors get OpenAI's error body too: an oversized header, a body shorter or longer than its Content-Length, a malformed URL.
  rawError(await raw(`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`), 431, "headers_too_large");
  const short = await raw(`POST /v1/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":"tiny"}`);
  const extra = await raw(`POST /v1/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}garbage-after-the-body`);
  if (replicaMode) {
    // Through the balancer HTTP itself is HAProxy's: a body cut short by the client's end is dropped
    // unanswered, and bytes that are not a request get HAProxy's own 400 page (balancer.ts).
    assert.equal(short, "");
    assert.match(extra.slice(extra.lastIndexOf("HTTP/1.1 ")), /^HTTP\/1.1 400 /);
  } else {
    rawError(short, 400, "invalid_request");
    rawError(extra.slice(extra.lastIndexOf("HTTP/1.1 ")), 400, "invalid_request");
  }
  const badUrl = await fetch(`${url}/v1/models/%E0%A4%A`, { headers: { authorization: `Bearer ${fx.keyA}` } });
  isOpenAIError({ status: badUrl.status, body: await badUrl.json() as ErrorBody }, 400, "invalid_request");
  // JSON that parses to something odd says what it was.
  const nul = await post("/v1/completions", "null");
  isOpenAIError(nul, 400, "invalid_value");
  assert.match(nul.body.error.message, /got null/);
  const huge = await post("/v1/completions", '{"model": "tiny", "prompt": "hi", "max_tokens": 1e999}');
  isOpenAIError(huge, 400, "invalid_value", "max_tokens");
  assert.match(huge.body.error.message, /too large to represent/);
  const proto = await post("/v1/completions", '{"model": "tiny", "prompt": "hi", "stream_options": {"__proto__": {"include_usage": true}}}');
  isOpenAIError(proto, 400, "invalid_value", "stream_options.__proto__");
  assert.match(proto.body.error.message, /__proto__/);
  assert.doesNotMatch(proto.body.error.message, /not valid JSON/);
  isOpenAIError(await post("/v1/completions", ""), 400, "invalid_json");
  // An upload that starts with a UTF-8 byte-order mark is read without it.
  const lines = Array.from({ length: 6 }, (_, i) => JSON.stringify({ text: `row ${i}`, label: i % 2 ? "x" : "y" })).join("\n");
  const bom = await A.files.create({ file: await toFile(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(lines)]), "bom.jsonl"), purpose: "fine-tune" });
  assert.equal(bom.bytes, Buffer.byteLength(lines));
  assert.equal(await (await A.files.content(bom.id)).text(), lines);
  // File names: no control characters, at most 255 bytes.
  await rejects(A.files.create({ file: await toFile(Buffer.from(lines), "a\u0000b.jsonl"), purpose: "fine-tune" }), 400, "invalid_file");
  await rejects(A.files.create({ file: await toFile(Buffer.from(lines), `${"n".repeat(300)}.jsonl`), purpose: "fine-tune" }), 400, "invalid_file");
  // The dashboard: a content security policy and no framing.
  for (const path of ["/dashboard/", "/dashboard/app.js", "/dashboard/nope.html"]) {
    const res = await fetch(`${url}${path}`);
    assert.match(res.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/, path);
    assert.match(res.headers.get("content-security-policy") ?? "", /script-src 'self'/, path);
    assert.equal(res.headers.get("x-frame-options"), "DENY", path);
  }
});
