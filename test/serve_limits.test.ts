// Serving limits under hostile tenants (issue 15): token quotas are hard limits (reserved at
// admission, generation capped at what is left, settled to what was delivered), an exhausted
// quota blocks work but not reads, every query parameter is validated, keys can be listed,
// rotated and revoked (admin API and `plinth keys`) and tenant names are checked, the admin key
// stays off the command line, and a server killed mid-stream keeps the billing of what it delivered.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { runAdaptation } from "../src/adapt/run.js";
import { Registry } from "../src/registry/index.js";
import { RequestMeter, admitPrompt, lineBytesOf, plannedTrainingTokens, METER_EVERY_TOKENS } from "../src/serve/quota.js";
import { adminKeyFrom } from "../src/cli/serve.js";
import { makeBase, makeFixture, writeDataset, type ServeFixture } from "./helpers/serve_fixture.js";
import { type TestServer, killServe, replicaMode, spawnTestServe, startTestServer } from "./helpers/test_server.js";

const ADMIN = "admin-secret-for-limits";
let fx: ServeFixture;
let server: TestServer;
let url: string;

before(async () => {
  fx = await makeFixture();
  writeDataset(join(fx.root, "train.jsonl"), 40);
  server = await startTestServer(fx, { runJobs: false, adminKey: ADMIN });
  url = server.url;
});
after(async () => {
  await server.close();
  await fx.cleanup();
});

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string } };
async function call(path: string, { key, method = "GET", body }: { key: string; method?: string; body?: unknown }): Promise<{ status: number; body: Record<string, unknown> & Partial<ErrorBody> }> {
  const res = await fetch(`${url}${path}`, {
    method, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}
async function keyWith(tokenQuota: number | null, tenant = "acme"): Promise<{ id: string; secret: string }> {
  const { key, secret } = await server.registry.keys.create(tenant, { tokenQuota });
  return { id: key.id, secret };
}
const client = (key: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
const isQuotaError = (e: unknown) => (e as { status?: number }).status === 429 && (e as { code?: string }).code === "insufficient_quota";

/** One request's outcome: the usage the client was told (what was delivered), or a 429. */
async function chat(key: string, { n = 1, maxTokens = 40, stream = false } = {}): Promise<number | "429"> {
  const c = client(key);
  const messages = [{ role: "user" as const, content: "the movie was" }];
  try {
    if (!stream) {
      const r = await c.chat.completions.create({ model: "tiny", messages, n, max_tokens: maxTokens, temperature: 1, seed: 3 });
      return r.usage!.total_tokens;
    }
    const s = await c.chat.completions.create({ model: "tiny", messages, n, max_tokens: maxTokens, temperature: 1, seed: 3, stream: true, stream_options: { include_usage: true } });
    let total = -1;
    for await (const chunk of s) if (chunk.usage) total = chunk.usage.total_tokens;
    assert.ok(total >= 0, "a stream with include_usage ends with its usage");
    return total;
  } catch (e) {
    if (isQuotaError(e)) return "429";
    throw e;
  }
}

test("quota: 20 concurrent chats against a 200-token quota use at most 200 tokens, exactly what was delivered", async () => {
  const k = await keyWith(200);
  const results = await Promise.all(Array.from({ length: 20 }, () => chat(k.secret, { maxTokens: 40 })));
  const delivered = results.reduce<number>((s, r) => s + (r === "429" ? 0 : r), 0);
  const used = await server.registry.keys.tokensUsed(k.id);
  assert.ok(used <= 200, `used ${used} of a 200-token quota`);
  assert.equal(used, delivered);
  assert.ok(results.some((r) => r === "429") && results.some((r) => r !== "429"), results.join(" "));
  assert.equal(await server.registry.keys.tokensReserved(k.id), 0);
});

test("quota: n × max_tokens is reserved up front; what does not fit is cut to what is left, or refused", async () => {
  const small = await keyWith(10);
  assert.equal(await chat(small.secret, { n: 8, maxTokens: 50 }), "429");  // prompt + 8 choices cannot fit in 10 tokens
  assert.equal(await server.registry.keys.tokensUsed(small.id), 0);
  // 60 tokens: the prompt plus n × a max_tokens cut to fit; every choice ends by length or stop.
  const k = await keyWith(60);
  const r = await client(k.secret).chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "the movie was" }], n: 4, max_tokens: 50, temperature: 1, seed: 1 });
  assert.equal(r.choices.length, 4);
  const used = await server.registry.keys.tokensUsed(k.id);
  assert.ok(used <= 60 && used === r.usage!.total_tokens, `used ${used}, reported ${r.usage!.total_tokens}`);
  const perChoice = Math.floor((60 - r.usage!.prompt_tokens) / 4);
  assert.ok(r.usage!.completion_tokens <= 4 * perChoice);
});

test("quota accounting: 32 concurrent requests with n and streams never exceed the quota and bill exactly what they delivered", async () => {
  const quota = 1500;
  const k = await keyWith(quota);
  let peak = 0;
  const watch = setInterval(() => void server.registry.keys.tokensUsed(k.id).then((n) => { peak = Math.max(peak, n); }), 2);
  const results = await Promise.all(Array.from({ length: 32 }, (_, i) => chat(k.secret, { n: 1 + (i % 4), maxTokens: 10 + (i % 5) * 10, stream: i % 2 === 0 })));
  clearInterval(watch);
  const delivered = results.reduce<number>((s, r) => s + (r === "429" ? 0 : r), 0);
  const used = await server.registry.keys.tokensUsed(k.id);
  assert.ok(used <= quota && peak <= quota, `used ${used} (peak ${peak}) of ${quota}`);
  assert.equal(used, delivered, `billed ${used}, delivered ${delivered}`);
  assert.ok(results.filter((r) => r !== "429").length >= 8, results.join(" "));
  assert.equal(await server.registry.keys.tokensReserved(k.id), 0);
  // One usage row per request that delivered anything (batched commits update it, they do not add rows).
  const rows = await server.registry.keys.usage("acme", { keyId: k.id });
  assert.equal(rows.reduce((s, r) => s + r.requests, 0), results.filter((r) => r !== "429" && r > 0).length);
});

test("quota: a fine-tuning job reserves its planned training tokens; too many for the quota is a 429 and no job", async () => {
  const k = await keyWith(100);
  const c = client(k.secret);
  const file = await c.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
  const job = (steps: number) => c.fineTuning.jobs.create({
    model: "tiny", training_file: file.id,
    method: { type: "lora", lora: { hyperparameters: { steps, batch_size: 8 } } } as unknown as OpenAI.FineTuning.JobCreateParams["method"],
  });
  await assert.rejects(job(100), isQuotaError);
  assert.equal((await c.fineTuning.jobs.list()).data.length, 0);
  // With room for it, the job holds its plan until it ends (here: cancelled), then nothing.
  const big = await keyWith(1_000_000);
  const cb = client(big.secret);
  const file2 = await cb.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
  const queued = await cb.fineTuning.jobs.create({ model: "tiny", training_file: file2.id, method: { type: "lora", lora: { hyperparameters: { steps: 10, batch_size: 4 } } } as unknown as OpenAI.FineTuning.JobCreateParams["method"] });
  const planned = plannedTrainingTokens({ method: "lora", hyperparameters: { steps: 10, batch_size: 4 } }, lineBytesOf(join(fx.root, "train.jsonl")));
  assert.equal(await server.registry.keys.tokensReserved(big.id), planned);
  const usage = await call("/v1/usage", { key: big.secret });
  assert.equal((usage.body.keys as { id: string; tokens_reserved: number }[]).find((x) => x.id === big.id)!.tokens_reserved, planned);
  await cb.fineTuning.jobs.cancel(queued.id);
  assert.equal(await server.registry.keys.tokensReserved(big.id), 0);
});

test("quota: the planned training tokens bound what a job really trains (lora, head, probe, setfit, prototype, knn)", async () => {
  const data = join(fx.root, "train.jsonl");
  const runs = [["lora", { steps: 6, batch_size: 8 }], ["head", { steps: 4 }], ["probe", {}], ["setfit", { pairs: 40, batch_pairs: 4 }], ["setfit", {}], ["prototype", {}], ["knn", {}]] as const;
  for (const [method, hp] of runs) {
    const h = hp as { steps?: number; batch_size?: number; pairs?: number; batch_pairs?: number };
    const o = await runAdaptation({
      base: fx.baseDir, method, task: data, steps: h.steps, batchSize: h.batch_size, maxTest: 4, lora: { rank: 2 },
      setfit: { pairs: h.pairs, batchPairs: h.batch_pairs, rank: 2 },
    });
    const planned = plannedTrainingTokens({ method, hyperparameters: hp }, lineBytesOf(data));
    assert.ok(o.trainingTokens <= planned, `${method}: trained ${o.trainingTokens} tokens, planned ${planned}`);
    if (method === "setfit") assert.ok(o.trainingTokens > 0);
    if (method === "prototype" || method === "knn") assert.equal(planned, 0);
  }
});

test("metering: a request's tokens are committed every 16 delivered tokens or within a second, and settled exactly", async () => {
  const k = await keyWith(100, "meters");
  const keyRow = (await server.registry.keys.get(k.id))!;
  const res = (await server.registry.keys.reserve(keyRow, { kind: "chat", model: "tiny", min: 5, max: 45 }))!;
  assert.equal(res.granted, 45);
  const meter = new RequestMeter(server.registry, res, 5, { tokens: 16, ms: 50 });
  const used = () => server.registry.keys.tokensUsed(k.id);
  meter.deliver(3);
  await meter.flushed();
  assert.equal(await used(), 0);  // 8 pending (prompt + 3)
  await new Promise((r) => setTimeout(r, 120));
  await meter.flushed();
  assert.equal(await used(), 8);  // the timer committed them
  meter.deliver(15);
  await meter.flushed();
  assert.equal(await used(), 23);  // 16 pending or more: committed at once
  assert.equal(await server.registry.keys.tokensReserved(k.id), 45 - 23);
  await meter.settle({ promptTokens: 5, completionTokens: 20 });
  assert.equal(await used(), 25);
  assert.equal(await server.registry.keys.tokensReserved(k.id), 0);
  // Work of a known size (an encoder's inputs) reserves exactly that, or is refused.
  await assert.rejects(() => admitPrompt(server.registry, keyRow, { kind: "embedding", model: "tiny", tokens: 76 }), isQuotaError);
  await (await admitPrompt(server.registry, keyRow, { kind: "embedding", model: "tiny", tokens: 75 })).settle({ promptTokens: 75 });
  assert.equal(await used(), 100);
});

test("an exhausted quota blocks work, not reads: usage, models, jobs and files stay readable", async () => {
  const k = await keyWith(1_000_000, "readers");
  const c = client(k.secret);
  const file = await c.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
  const job = await c.fineTuning.jobs.create({ model: "tiny", training_file: file.id, method: { type: "probe" } as unknown as OpenAI.FineTuning.JobCreateParams["method"] });
  await server.registry.keys.record({ keyId: k.id, tenant: "readers", kind: "chat", model: "tiny", promptTokens: 1_000_000 });
  assert.equal(await chat(k.secret), "429");
  for (const path of ["/v1/usage", "/v1/models", "/v1/models/tiny", `/v1/fine_tuning/jobs/${job.id}`, `/v1/fine_tuning/jobs/${job.id}/events`, "/v1/fine_tuning/jobs", "/v1/files", `/v1/files/${file.id}`]) {
    const r = await call(path, { key: k.secret });
    assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body)}`);
  }
  const usage = await call("/v1/usage", { key: k.secret });
  assert.equal((usage.body.keys as { tokens_used: number; tokens_available: number }[])[0].tokens_available, 0);
  // Cancelling is not work either.
  assert.equal((await call(`/v1/fine_tuning/jobs/${job.id}/cancel`, { key: k.secret, method: "POST" })).status, 200);
});

test("query parameters are validated: a 400 naming the parameter for a bad, repeated or unknown one", async () => {
  const cases: [string, string][] = [
    ["/v1/fine_tuning/jobs?limit=0.5", "limit"], ["/v1/fine_tuning/jobs?limit=-5", "limit"], ["/v1/fine_tuning/jobs?limit=0", "limit"],
    ["/v1/fine_tuning/jobs?limit=101", "limit"], ["/v1/fine_tuning/jobs?limit=", "limit"], ["/v1/fine_tuning/jobs?limit=1&limit=2", "limit"],
    ["/v1/usage?key=a&key=b", "key"], ["/v1/usage?since=yesterday", "since"], ["/v1/usage?until=1e3", "until"], ["/v1/usage?since=10&until=5", "until"],
    ["/v1/models?limit=5", "limit"], ["/v1/files?order=sideways", "order"], ["/v1/fine_tuning/jobs?afterr=x", "afterr"],
  ];
  for (const [path, param] of cases) {
    const r = await call(path, { key: fx.keyA });
    assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error!.param, param, path);
    assert.match(r.body.error!.message, new RegExp(param), path);
  }
  // Events: -2 no longer returns every event.
  const c = client(fx.keyA);
  const file = await c.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
  const job = await c.fineTuning.jobs.create({ model: "tiny", training_file: file.id });
  const events = await call(`/v1/fine_tuning/jobs/${job.id}/events?limit=-2`, { key: fx.keyA });
  assert.equal(events.status, 400);
  assert.equal(events.body.error!.param, "limit");
  // Valid parameters still work.
  const page = await call("/v1/fine_tuning/jobs?limit=1", { key: fx.keyA });
  assert.equal(page.status, 200);
  assert.equal((page.body.data as unknown[]).length, 1);
  assert.equal((await call(`/v1/usage?since=0&until=${2 ** 40}`, { key: fx.keyA })).status, 200);
  assert.equal((await c.files.list({ purpose: "fine-tune", limit: 1 })).data.length, 1);
});

test("keys: the admin API lists, rotates and revokes keys; tenant names are checked wherever a tenant is made", async () => {
  const admin = (path: string, method = "GET", body?: unknown) => call(path, { key: ADMIN, method, body });
  const made = await admin("/v1/plinth/keys", "POST", { tenant: "rotor", name: "ci", token_quota: 5000 });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  const id = made.body.id as string, first = made.body.key as string;
  assert.equal((await chat(first, { maxTokens: 3 })) !== "429", true);
  const listed = await admin("/v1/plinth/keys?tenant=rotor");
  const entry = (listed.body.data as { id: string; tokens_used: number; key?: string; revoked: boolean }[]).find((k) => k.id === id)!;
  assert.ok(entry.tokens_used > 0 && entry.key === undefined && entry.revoked === false);
  assert.ok(!JSON.stringify(listed.body).includes(first));
  // Non-admins cannot.
  assert.equal((await call("/v1/plinth/keys", { key: first })).status, 403);
  assert.equal((await call(`/v1/plinth/keys/${id}/rotate`, { key: first, method: "POST" })).status, 403);
  // Rotation: same key id, same usage; the old secret stops working at once.
  const rotated = await admin(`/v1/plinth/keys/${id}/rotate`, "POST");
  assert.equal(rotated.status, 200);
  const second = rotated.body.key as string;
  assert.notEqual(second, first);
  assert.equal(rotated.body.id, id);
  assert.equal(rotated.body.tokens_used, entry.tokens_used);
  assert.equal((await call("/v1/models", { key: first })).status, 401);
  assert.equal((await call("/v1/models", { key: second })).status, 200);
  // Revocation.
  const revoked = await admin(`/v1/plinth/keys/${id}`, "DELETE");
  assert.equal(revoked.status, 200);
  assert.equal(revoked.body.revoked, true);
  assert.equal((await call("/v1/models", { key: second })).status, 401);
  assert.equal((await admin(`/v1/plinth/keys/${id}/rotate`, "POST")).status, 404);
  assert.equal((await admin("/v1/plinth/keys/key_nope", "DELETE")).status, 404);
  // Tenant names become folder names: "..", upper case, slashes and the like are refused.
  for (const tenant of ["..", ".", "Acme", "a/b", "-x", "", "a".repeat(65), "a b"]) {
    const r = await admin("/v1/plinth/keys", "POST", { tenant });
    assert.equal(r.status, 400, `${JSON.stringify(tenant)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error!.param, "tenant");
    const a = await admin("/v1/plinth/adapters", "POST", { tenant, dir: fx.adapterDirs[0] });
    assert.equal(a.status, 400, `${JSON.stringify(tenant)}: ${JSON.stringify(a.body)}`);
    assert.equal(a.body.error!.param, "tenant");
  }
  await assert.rejects(() => server.registry.keys.create(".."), /tenant "\.\." must be/);
});

test("plinth keys: list, create, rotate and revoke from the command line; the admin key comes from the environment or a file", async () => {
  const cli = join(import.meta.dirname, "../src/cli/main.js");
  const db = join(fx.root, "cli-keys.db");
  const run = (...args: string[]) => execFileSync(process.execPath, [cli, "keys", ...args, "--registry", db], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  const secret = run("create", "cli-tenant", "--token-quota", "100");
  assert.match(secret, /^pk-/);
  const listed = JSON.parse(run("list", "--json")) as { id: string; tenant: string; tokenQuota: number; revoked: boolean }[];
  assert.equal(listed.length, 1);
  assert.equal(listed[0].tenant, "cli-tenant");
  assert.equal(listed[0].tokenQuota, 100);
  const rotated = run("rotate", listed[0].id);
  assert.ok(rotated.startsWith("pk-") && rotated !== secret);
  const reg = await Registry.open(db, { readonly: true });
  assert.equal(await reg.keys.verify(secret), undefined);
  assert.equal((await reg.keys.verify(rotated))?.id, listed[0].id);
  await reg.close();
  run("revoke", listed[0].id);
  assert.equal((JSON.parse(run("list", "--json")) as { revoked: boolean }[])[0].revoked, true);
  assert.throws(() => run("create", ".."), (e: { status?: number; stderr?: string }) => e.status === 2 && /must be 1-64 characters/.test(e.stderr ?? ""));
  assert.throws(() => run("revoke", "key_nope"), (e: { status?: number }) => e.status === 2);

  // The admin key: environment, or a file; the old flag works with a warning that says why not.
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  assert.equal(adminKeyFrom({}, { PLINTH_ADMIN_KEY: "from-the-environment-123" }, warn), "from-the-environment-123");
  const file = join(fx.root, "admin.secret");
  writeFileSync(file, "from-a-file-0123456789\n");
  chmodSync(file, 0o600);
  assert.equal(adminKeyFrom({ "admin-key-file": file }, {}, warn), "from-a-file-0123456789");
  assert.deepEqual(warnings, []);
  assert.equal(adminKeyFrom({ "admin-key": "on-the-command-line-01" }, {}, warn), "on-the-command-line-01");
  assert.match(warnings[0], /--admin-key is deprecated.*PLINTH_ADMIN_KEY.*--admin-key-file/);
  assert.throws(() => adminKeyFrom({ "admin-key": "x".repeat(20) }, { PLINTH_ADMIN_KEY: "y".repeat(20) }, warn), /one way/);
  assert.equal(adminKeyFrom({}, {}, warn), null);
});

test("kill -9 mid-stream keeps the billing of what was delivered, within one metering batch per stream", async () => {
  const root = join(fx.root, "crash");
  makeBase(join(root, "long"), { n_positions: 512, trainSteps: 0, seed: 3 });  // untrained and greedy: " was was was ..." without an end-of-text
  // Through the replicas: the grid (every replica, HAProxy) dies at once, on a database of its own.
  const db = replicaMode ? await fx.pg!.database() : join(root, "registry.db");
  const reg = await Registry.open(db);
  await reg.catalog.addModel("long", join(root, "long"));
  const { key, secret } = await reg.keys.create("crash", { tokenQuota: 1_000_000 });
  await reg.close();
  const where = { dbPath: db, dataDir: root };
  let { child, url: base } = await spawnTestServe(where, { adminKey: ADMIN });
  try {
    const STREAMS = 12, MAX = 450;
    const seen = new Array<number>(STREAMS).fill(0);
    let killed: Promise<void> | null = null;
    const killedAt = new Promise<number[]>((resolve) => {
      const check = setInterval(() => {
        if (seen.every((n) => n >= 40)) {
          clearInterval(check);
          killed = killServe(child);
          resolve([...seen]);
        }
      }, 1);
    });
    const streams = Array.from({ length: STREAMS }, async (_, i) => {
      const res = await fetch(`${base}/v1/completions`, {
        method: "POST", headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "long", prompt: "the movie was", max_tokens: MAX, temperature: 0, logprobs: 0, stream: true }),
      });
      assert.equal(res.status, 200);
      let buf = "";
      try {
        for await (const chunk of res.body!) {
          buf += Buffer.from(chunk).toString();
          for (let at = buf.indexOf("\n\n"); at >= 0; at = buf.indexOf("\n\n")) {
            const line = buf.slice(0, at).replace(/^data: /, "");
            buf = buf.slice(at + 2);
            if (line === "[DONE]") continue;
            seen[i] += (JSON.parse(line) as { choices: { logprobs: { tokens: string[] } }[] }).choices[0].logprobs.tokens.length;
          }
        }
      } catch { /* the server died mid-stream */ }
    });
    const atKill = await killedAt;
    await Promise.all(streams);
    await killed;
    assert.ok(killed !== null && seen.every((n) => n < MAX), `the streams were in flight when the server died: ${seen.join(" ")}`);
    const delivered = seen.reduce((s, n) => s + n, 0);
    const after = await Registry.open(db, { readonly: true });
    const rows = await after.db.all<{ prompt_tokens: number; completion_tokens: number }>("SELECT prompt_tokens, completion_tokens FROM usage WHERE key_id = ?", [key.id]);
    await after.close();
    const billed = rows.reduce((s, r) => s + r.completion_tokens, 0);
    if (process.env.PLINTH_TEST_VERBOSE) console.error(`kill at ${atKill.join(" ")}; received ${seen.join(" ")}; billed ${rows.map((r) => r.completion_tokens).join(" ")}`);
    // Every stream had delivered >= 40 tokens: each has a usage row, billed at most one batch behind
    // what the client received (prompt included), and never more than one delta ahead of it.
    assert.equal(rows.length, STREAMS, JSON.stringify(rows));
    assert.ok(rows.every((r) => r.prompt_tokens === 3), JSON.stringify(rows));
    assert.ok(billed + 3 * STREAMS >= delivered + 3 * STREAMS - STREAMS * (METER_EVERY_TOKENS - 1), `billed ${billed} of ${delivered} delivered (at the kill: ${atKill.join(" ")})`);
    assert.ok(billed <= delivered + STREAMS * 4, `billed ${billed}, delivered ${delivered}`);
    // The restarted server gives the dead one's reservations back to the quota.
    ({ child, url: base } = await spawnTestServe(where, { adminKey: ADMIN }));
    const usage = await (await fetch(`${base}/v1/usage`, { headers: { authorization: `Bearer ${secret}` } })).json() as { keys: { tokens_used: number; tokens_reserved: number }[] };
    assert.deepEqual(usage.keys.map((k) => [k.tokens_used, k.tokens_reserved]), [[billed + 3 * STREAMS, 0]]);
    // The admin key came from the environment.
    assert.equal((await fetch(`${base}/v1/plinth/keys?tenant=crash`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 200);
  } finally {
    await killServe(child);
  }
});
