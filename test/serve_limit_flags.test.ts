// Every limit the server enforces is a `plinth serve` flag, listed in --help with the server's
// own default, checked before the server starts (exit 2, no registry created), and enforced by
// a server started with it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LIMIT_FLAGS, limitOptions, limitsHelp } from "../src/cli/serve_limits.js";
import { serveHelp } from "../src/cli/serve.js";
import { UsageError } from "../src/cli/args.js";
import { DEFAULT_ENCODER_QUEUE } from "../src/serve/encoder_queue.js";
import { DEFAULT_JOB_POLICY } from "../src/serve/jobs.js";
import { DEFAULT_ENCODER_LIMITS } from "../src/serve/routes/encoders.js";
import { DEFAULT_GENERATION_LIMITS } from "../src/serve/routes/generation.js";
import { createServer } from "../src/serve/index.js";
import { makeFixture, type ServeFixture } from "./helpers/serve_fixture.js";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
let fx: ServeFixture;
before(async () => {
  fx = await makeFixture();
});
after(() => fx.cleanup());

test("every limit the server enforces has a flag, and --help lists each with the server's default", () => {
  const has = (section: string, key: string) => LIMIT_FLAGS.some((f) => f.section === section && f.key === key);
  for (const key of Object.keys(DEFAULT_ENCODER_LIMITS)) assert.ok(has("encoder", key), `encoder limit ${key} has no flag`);
  for (const key of Object.keys(DEFAULT_ENCODER_QUEUE)) assert.ok(has("encoder", key), `encoder queue option ${key} has no flag`);
  for (const key of Object.keys(DEFAULT_JOB_POLICY)) assert.ok(has("jobs", key), `job policy ${key} has no flag`);
  for (const key of Object.keys(DEFAULT_GENERATION_LIMITS)) assert.ok(has("generation", key), `generation limit ${key} has no flag`);
  for (const key of ["bodyLimit", "maxFileBytes"]) assert.ok(has("top", key));
  for (const key of ["rpm", "tokenQuota"]) assert.ok(has("keyDefaults", key));
  const help = spawnSync(process.execPath, [main, "serve", "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0);
  assert.ok(help.stdout.includes(limitsHelp()) && serveHelp.includes(limitsHelp()));
  for (const f of LIMIT_FLAGS) assert.match(help.stdout, new RegExp(`--${f.flag} [NX] .*\\[${typeof f.fallback === "number" ? f.fallback.toLocaleString("en-US") : "none"}\\]`));
  assert.match(help.stdout, /--max-inputs N +inputs of one embeddings.*\[256\]/);
  assert.match(help.stdout, /--slice-seconds X .*\[60\]/);
});

test("limit flags become server options; a bad value is a usage error naming the flag", () => {
  assert.deepEqual(limitOptions({}), {});
  assert.deepEqual(limitOptions({
    "max-inputs": "64", "encoder-share": "0.5", "slice-seconds": "2.5", "body-limit-mb": "2", "max-choices": "4", "default-token-quota": "1000", "worker-nice": "0",
  }), {
    encoder: { maxInputs: 64, generatingShare: 0.5 }, jobs: { sliceSeconds: 2.5, workerNice: 0 }, bodyLimit: 2 << 20, generation: { maxChoices: 4 }, keyDefaults: { tokenQuota: 1000 },
  });
  const bad: [string, string, RegExp][] = [
    ["max-inputs", "0", /--max-inputs must be an integer >= 1, got "0"/],
    ["max-inputs", "2.5", /--max-inputs must be an integer/],
    ["encoder-share", "0", /--encoder-share must be a number > 0 and <= 1/],
    ["encoder-share", "1.5", /--encoder-share must be a number > 0 and <= 1/],
    ["worker-nice", "20", /--worker-nice must be an integer >= 0 and <= 19/],
    ["slice-seconds", "-1", /--slice-seconds must be a number >= 0/],
    ["body-limit-mb", "0", /--body-limit-mb must be a number > 0/],
    ["default-rpm", "lots", /--default-rpm must be an integer >= 1, got "lots"/],
    ["max-pairs", "", /--max-pairs must be an integer/],
  ];
  for (const [flag, value, message] of bad) assert.throws(() => limitOptions({ [flag]: value }), (e: unknown) => e instanceof UsageError && message.test((e as Error).message), `${flag}=${value}`);
});

test("plinth serve refuses a bad limit before it opens (or creates) the registry", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-limits-"));
  try {
    const db = join(dir, "registry.db");
    const r = spawnSync(process.execPath, [main, "serve", "--registry", db, "--port", "0", "--encoder-share", "2"], { encoding: "utf8", timeout: 20_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--encoder-share must be a number > 0 and <= 1, got "2"/);
    assert.equal(existsSync(db), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a server started with limit flags enforces them", async () => {
  const server = await createServer({
    registry: fx.dbPath, runJobs: false,
    ...limitOptions({ "max-inputs": "2", "max-choices": "2", "max-completion-tokens": "5", "default-token-quota": "40", "default-rpm": "100", "encoder-per-tenant": "1" }),
  });
  const url = await server.listen({ port: 0 });
  try {
    const { secret, key } = await server.registry.keys.create("acme");  // no limits of its own: the defaults apply
    const own = await server.registry.keys.create("acme", { tokenQuota: 1_000_000 });
    const post = async (path: string, body: unknown, k = secret) => {
      const res = await fetch(`${url}${path}`, { method: "POST", headers: { authorization: `Bearer ${k}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: res.status, body: await res.json() as { error?: { param: string | null; code: string } } };
    };
    const three = await post("/v1/embeddings", { model: "tiny", input: ["a", "b", "c"] }, own.secret);
    assert.equal(three.status, 400);
    assert.equal(three.body.error!.param, "input");
    const n3 = await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hi" }], n: 3 }, own.secret);
    assert.equal(n3.status, 400);
    assert.equal(n3.body.error!.param, "n");
    const long = await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 6 }, own.secret);
    assert.equal(long.status, 400);
    assert.equal(long.body.error!.param, "max_tokens");
    // The default quota (40 tokens) binds the key without its own; the key with its own is not bound by it.
    let refused = 0;
    for (let i = 0; i < 12 && refused === 0; i++) {
      const r = await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hello there" }], max_tokens: 5 });
      if (r.status === 429) {
        assert.equal(r.body.error!.code, "insufficient_quota");
        refused++;
      } else assert.equal(r.status, 200);
    }
    assert.equal(refused, 1, "the default token quota was reached");
    assert.ok(await server.registry.keys.tokensUsed(key.id) <= 40);
    assert.equal((await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hello there" }], max_tokens: 5 }, own.secret)).status, 200);
    // One encoder request in flight per tenant.
    const labels = Array.from({ length: 64 }, (_, i) => `label${i}`);
    const first = post("/v1/zero-shot", { model: "tiny", input: ["the movie was good ".repeat(40), "the plot was bad ".repeat(40)], labels }, own.secret);
    while (server.encoders.stats().requests === 0) await new Promise((r) => setImmediate(r));
    const second = await post("/v1/embeddings", { model: "tiny", input: ["bad"] }, own.secret);
    assert.equal(second.status, 429);
    assert.equal(second.body.error!.code, "rate_limit_exceeded");
    assert.equal((await first).status, 200);
  } finally {
    await server.close();
  }
});

test("--queued-per-tenant: a tenant's requests waiting for a batch slot beyond the cap get OpenAI's 429; other tenants still queue", async () => {
  const server = await createServer({ registry: fx.dbPath, runJobs: false, maxBatch: 1, ...limitOptions({ "queued-per-tenant": "2" }) });
  const url = await server.listen({ port: 0 });
  const filler = new AbortController();
  try {
    const chat = (key: string, extra: object = {}) => fetch(`${url}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hello there" }], max_tokens: 3, ...extra }),
    });
    // The one batch slot is held: sequences of a third tenant keep it busy for thousands of steps (until aborted).
    const base = await server.host.base("tiny");
    const scheduler = base.scheduler!;
    const prompt = Array.from(base.tok.encode("the movie was"));
    const fillers = Array.from({ length: 60 }, async () => {
      for await (const _ of scheduler.submit({ prompt, adapter: null, maxTokens: 60, tenant: "filler", signal: filler.signal })) { /* drain */ }
    });
    const queuedOf = (tenant: string) => scheduler.queuedRequests(tenant);
    const until = async (ok: () => boolean) => {
      const t0 = Date.now();
      while (!ok()) {
        assert.ok(Date.now() - t0 < 10_000, "timed out");
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    // Two requests of acme wait (one with n = 2: its choices count as one request).
    const waiting = [chat(fx.keyA, { n: 2 }), chat(fx.keyA)];
    await until(() => queuedOf("acme") === 2);
    const keyA = (await server.registry.keys.verify(fx.keyA))!.id;
    const reserved = await server.registry.keys.tokensReserved(keyA);
    const third = await chat(fx.keyA);
    assert.equal(third.status, 429);
    assert.equal(third.headers.get("retry-after"), "1");
    const body = await third.json() as { error: { message: string; type: string; param: string | null; code: string } };
    assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
    assert.equal(body.error.code, "rate_limit_exceeded");
    assert.equal(body.error.type, "rate_limit_error");
    assert.equal(body.error.param, null);
    assert.match(body.error.message, /2 queued, at most 2 at once/);
    assert.equal(await server.registry.keys.tokensReserved(keyA), reserved, "a refused request reserves nothing");
    // Completions count too; another tenant is not limited by acme's queue.
    const completion = await fetch(`${url}/v1/completions`, {
      method: "POST", headers: { authorization: `Bearer ${fx.keyA}`, "content-type": "application/json" }, body: JSON.stringify({ model: "tiny", prompt: "hi", max_tokens: 2 }),
    });
    assert.equal(completion.status, 429);
    const other = chat(fx.keyB);
    await until(() => queuedOf("globex") === 1);
    // Once the slot frees, the queued requests run, and acme may queue again.
    filler.abort();
    await Promise.all(fillers);
    for (const r of [...waiting, other]) assert.equal((await r).status, 200);
    assert.equal(queuedOf("acme"), 0);
    assert.equal((await chat(fx.keyA)).status, 200);
  } finally {
    filler.abort();
    await server.close();
  }
});
