// `plinth serve --replicas 3`: three replicas over one PostgreSQL registry and one artifact
// store, HAProxy in front (adapter-aware routing). Through the balancer with the official openai
// client: models, chat, completions, embeddings, files, tenant isolation; requests for an
// adapter stay on one replica while a base's are spread. kill -9 of the replica running a
// fine-tuning job (and of its worker, as when a machine dies) with streams in flight: streams on
// the other replicas finish, new requests succeed, the job finishes on a replica,
// every committed event kept, its usage counted once. Stopping the command stops every process.
// Skipped, saying why, without PostgreSQL's server binaries or haproxy; CI installs both (.ci/run).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createServer as createNetServer } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { Registry } from "../src/registry/index.js";
import { freePort } from "../src/cli/replicas.js";
import { haproxyConfig } from "../src/serve/balancer.js";
import { spawnServe } from "../src/serve/spawn.js";
import { pgSkipReason } from "./helpers/postgres.js";
import { makeFixture, writeDataset, type ServeFixture } from "./helpers/serve_fixture.js";
import { alive, childrenOf, haproxySkipReason } from "./helpers/test_server.js";

const skip = pgSkipReason() ?? haproxySkipReason();
if (skip !== null && process.env.PLINTH_REQUIRE_POSTGRES) throw new Error(`PLINTH_REQUIRE_POSTGRES is set (CI): ${skip}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let fx: ServeFixture;
let child: ChildProcess;
let url: string;
before(async () => {
  if (skip !== null) return;
  fx = await makeFixture({ engine: "postgres" });
  writeDataset(join(fx.root, "train.jsonl"), 40);
  ({ child, url } = await spawnServe(["--replicas", "3", "--registry", fx.dbPath, "--data-dir", fx.dataDir, "--port", "0"]));
});
after(async () => {
  if (skip !== null) return;
  if (child.exitCode === null) {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
  await fx.cleanup();
});

/** A raw request through the balancer, with the replica that answered. */
async function call(key: string, path: string, body?: unknown): Promise<{ status: number; replica: string | null; json: Record<string, unknown> }> {
  const r = await fetch(`${url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, replica: r.headers.get("x-plinth-replica"), json: await r.json() as Record<string, unknown> };
}

test("the API through HAProxy over 3 replicas: models, chat, completions, embeddings, files, tenancy", { skip: skip ?? false }, async () => {
  const acme = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
  const globex = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyB, maxRetries: 0 });
  const ids = (await acme.models.list()).data.map((m) => m.id);
  assert.ok(ids.includes("tiny") && ids.includes("tiny:style") && !ids.includes("tiny:secret"), ids.join(","));

  const chat = await acme.chat.completions.create({ model: "tiny:style", messages: [{ role: "user", content: "hello" }], max_tokens: 5, temperature: 0 });
  assert.equal(chat.choices.length, 1);
  assert.ok(chat.usage!.completion_tokens > 0);
  const stream = await acme.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 5, temperature: 0, stream: true });
  let streamed = "";
  for await (const c of stream) streamed += c.choices[0]?.delta?.content ?? "";
  const plain = await acme.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 5, temperature: 0 });
  assert.equal(streamed, plain.choices[0].message.content, "streaming and not: the same greedy text, whichever replica");
  const emb = await acme.embeddings.create({ model: "tiny", input: ["the movie was good", "bad"] });
  assert.equal(emb.data.length, 2);

  // The same greedy completion from every replica (each loads the adapter itself from the shared store).
  const byReplica = new Map<string, string>();
  for (let i = 0; i < 9; i++) {
    const r = await call(fx.keyA, "/v1/completions", { model: "tiny", prompt: "the movie was", max_tokens: 6, temperature: 0 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    byReplica.set(r.replica!, (r.json.choices as { text: string }[])[0].text);
  }
  assert.equal(byReplica.size, 3, `a base's requests are spread round robin: ${[...byReplica.keys()]}`);
  assert.equal(new Set(byReplica.values()).size, 1);
  // An adapter's requests stay on one replica (its adapter cache), one at a time under no load.
  const adapterReplicas = new Set<string>();
  for (let i = 0; i < 6; i++) adapterReplicas.add((await call(fx.keyA, "/v1/completions", { model: "tiny:style", prompt: "the movie was", max_tokens: 3, temperature: 0 })).replica!);
  assert.equal(adapterReplicas.size, 1, [...adapterReplicas].join(","));
  // The X-Plinth-Model header routes as the body does.
  const viaHeader = await fetch(`${url}/v1/completions`, {
    method: "POST", body: JSON.stringify({ model: "tiny:style", prompt: "the", max_tokens: 2 }),
    headers: { authorization: `Bearer ${fx.keyA}`, "content-type": "application/json", "x-plinth-model": "tiny:style" },
  });
  assert.equal(viaHeader.headers.get("x-plinth-replica"), [...adapterReplicas][0]);

  // Files: uploaded through one replica, listed and read through the others.
  const bytes = readFileSync(join(fx.root, "train.jsonl"));
  const file = await acme.files.create({ file: await toFile(bytes, "train.jsonl"), purpose: "fine-tune" });
  for (let i = 0; i < 3; i++) {
    assert.ok((await acme.files.list()).data.some((f) => f.id === file.id));
    assert.deepEqual(Buffer.from(await (await acme.files.content(file.id)).arrayBuffer()), bytes);
  }
  // Tenancy holds on every replica: another tenant's adapter and file are not found.
  for (let i = 0; i < 3; i++) {
    const foreign = await call(fx.keyB, "/v1/completions", { model: "tiny:style", prompt: "x", max_tokens: 1 });
    assert.equal(foreign.status, 404);
    assert.equal((foreign.json.error as { code: string }).code, "model_not_found");
    await assert.rejects(globex.files.retrieve(file.id), (e: { status?: number }) => e.status === 404);
  }
  assert.equal((await call("sk-wrong", "/v1/models")).status, 401);

  // A key's rate limit is one limit over all replicas (counted in the registry), not one per replica.
  const reg = await Registry.open(fx.dbPath);
  const { secret: limited } = await reg.keys.create("acme", { name: "limited", rpm: 4 });
  await reg.close();
  const seen = await Promise.all(Array.from({ length: 9 }, () => call(limited, "/v1/models")));
  assert.equal(new Set(seen.map((r) => r.replica)).size, 3, "spread over every replica");
  assert.deepEqual(seen.map((r) => r.status).sort(), [200, 200, 200, 200, 429, 429, 429, 429, 429]);
  const refused = seen.find((r) => r.status === 429)!;
  assert.equal((refused.json.error as { code: string }).code, "rate_limit_exceeded");
});

test("kill -9 of the replica running a fine-tuning job, streams in flight: the others' streams finish, the job finishes on a replica, events kept, usage counted once", { skip: skip ?? false }, async () => {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 2 });
  const file = await client.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
  const job = await client.fineTuning.jobs.create({
    model: "tiny", training_file: file.id,
    method: { type: "lora", lora: { hyperparameters: { steps: 300, batch_size: 8, rank: 2, max_test: 8 } } } as unknown as OpenAI.FineTuning.JobCreateParams["method"],
  });
  const reg = await Registry.open(fx.dbPath);
  try {
    let j = (await reg.jobs.job(job.id))!;
    for (let t = 0; j.status !== "running" || (await reg.jobs.events(job.id, { order: "asc", limit: 100_000 })).filter((e) => e.type === "metrics").length < 2; t++) {
      assert.ok(t < 1200, `job still ${j.status}`);
      await sleep(50);
      j = (await reg.jobs.job(job.id))!;
    }
    const worker = j.workerPid!;
    const stat = readFileSync(`/proc/${worker}/stat`, "utf8");
    const replica = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    assert.ok(childrenOf(child.pid!).includes(replica), "the worker's parent is one of the replicas");
    // Streams in flight on every replica when one of them dies: those on the others finish.
    const killedName = /(?:^|\0)PLINTH_REPLICA=([^\0]+)/.exec(readFileSync(`/proc/${replica}/environ`, "utf8"))![1];
    const streams = await Promise.all(Array.from({ length: 6 }, () => fetch(`${url}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${fx.keyA}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 40, stream: true }),
    })));
    // The machine dies: the replica and its worker at once.
    process.kill(replica, "SIGKILL");
    process.kill(worker, "SIGKILL");
    let others = 0;
    for (const r of streams) {
      if (r.headers.get("x-plinth-replica") === killedName) {
        await r.text().catch(() => "");  // cut off with its replica
        continue;
      }
      others++;
      assert.equal(r.status, 200);
      assert.match(await r.text(), /data: \[DONE\]\s*$/, "a stream on a live replica finishes");
    }
    assert.ok(others >= 3, `streams spread over the replicas: ${others} of 6 on live ones`);
    const eventsAtKill = await reg.jobs.events(job.id, { order: "asc", limit: 100_000 });
    // Clients keep being served meanwhile (the balancer retries a refused connection elsewhere).
    for (let i = 0; i < 6; i++) assert.equal((await call(fx.keyA, "/v1/completions", { model: "tiny", prompt: "the", max_tokens: 2 })).status, 200);
    for (let t = 0; !["succeeded", "failed", "cancelled"].includes(j.status); t++) {
      assert.ok(t < 2400, `job still ${j.status} after the kill`);
      await sleep(50);
      j = (await reg.jobs.job(job.id))!;
    }
    assert.equal(j.status, "succeeded", JSON.stringify(j.error));
    assert.notEqual(j.workerPid, worker);
    const after = await reg.jobs.events(job.id, { order: "asc", limit: 100_000 });
    const kept = new Set(after.map((e) => e.id));
    for (const e of eventsAtKill) assert.ok(kept.has(e.id), `event ${e.id} (${e.message}) was lost`);
    assert.match(after.map((e) => e.message).join("\n"), /Resuming: /);
    const n = await reg.db.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM usage WHERE kind = 'fine_tuning' AND model = ?", [j.fineTunedModel!]);
    assert.equal(Number(n!.n), 1, "the training is metered once");
    // The new adapter serves through the balancer.
    assert.equal((await call(fx.keyA, "/v1/completions", { model: j.fineTunedModel, prompt: "the", max_tokens: 2 })).status, 200);
  } finally {
    await reg.close();
  }
});

test("stopping plinth serve --replicas stops the balancer and every replica", { skip: skip ?? false }, async () => {
  let kids = childrenOf(child.pid!);
  for (let t = 0; kids.length < 4 && t < 100; t++) {  // a replica killed above is being started again
    await sleep(100);
    kids = childrenOf(child.pid!);
  }
  assert.equal(kids.length, 4, "3 replicas and haproxy");
  child.kill("SIGTERM");
  const code = await new Promise((r) => child.once("exit", r));
  assert.equal(code, 0);
  for (const pid of kids) assert.equal(alive(pid), false, `process ${pid} outlived plinth serve --replicas`);
  await assert.rejects(fetch(`${url}/healthz`));
});

test("deploy/haproxy.cfg is the configuration plinth serve --replicas writes, for 3 replicas, and HAProxy accepts it", () => {
  const shipped = readFileSync(join(import.meta.dirname, "..", "..", "deploy", "haproxy.cfg"), "utf8");
  const made = haproxyConfig({ bind: { host: "0.0.0.0", port: 8080 }, replicas: [1, 2, 3].map((i) => ({ name: `r${i}`, host: "127.0.0.1", port: 8080 + i })) });
  assert.equal(shipped, made, "regenerate deploy/haproxy.cfg from src/serve/balancer.ts");
  assert.match(made, /balance hash var\(txn.adapter\)/);
  assert.match(haproxyConfig({ bind: { host: "h", port: 1 }, replicas: [{ name: "r1", host: "h", port: 2 }], adapterAware: false }), /balance roundrobin/);
  assert.throws(() => haproxyConfig({ bind: { host: "h", port: 1 }, replicas: [] }), /no replicas/);
  assert.throws(() => haproxyConfig({ bind: { host: "h", port: 1 }, replicas: [{ name: "r1", host: "h", port: 2 }], balanceFactor: 90 }), /above 100/);
  if (haproxySkipReason() === null) execFileSync(process.env.PLINTH_HAPROXY || "haproxy", ["-c", "-q", "-f", join(import.meta.dirname, "..", "..", "deploy", "haproxy.cfg")]);
});

test("the balancer's own errors are OpenAI's error body: no replica up is a 503 with code unavailable", { skip: haproxySkipReason() ?? false }, async () => {
  const port = await freePort(), down = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "plinth-haproxy-test-"));
  writeFileSync(join(dir, "haproxy.cfg"), haproxyConfig({ bind: { host: "127.0.0.1", port }, replicas: [{ name: "r1", host: "127.0.0.1", port: down }] }));
  const haproxy = spawn(process.env.PLINTH_HAPROXY || "haproxy", ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: "ignore" });
  try {
    let res: Response | null = null;
    for (let t = 0; res === null; t++) {
      res = await fetch(`http://127.0.0.1:${port}/v1/models`).catch(() => null);
      if (res === null) {
        assert.ok(t < 200, "haproxy did not listen");
        await sleep(50);
      }
    }
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("content-type"), "application/json");
    const body = await res.json() as { error: { code: string; type: string; message: string; param: null } };
    assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
    assert.equal(body.error.code, "unavailable");
    assert.equal(body.error.type, "server_error");
  } finally {
    haproxy.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--replicas: bad flags are usage errors before anything starts; a replica that cannot listen stops everything", async () => {
  const cli = join(import.meta.dirname, "..", "src", "cli", "main.js");
  const plinth = (args: string[]) => spawnSync(process.execPath, [cli, "serve", ...args], { encoding: "utf8", env: { ...process.env, PLINTH_REGISTRY_URL: "" }, timeout: 60_000 });
  const sqlite = plinth(["--replicas", "3", "--registry", join(import.meta.dirname, "nowhere.db")]);
  assert.notEqual(sqlite.status, 0);
  assert.match(sqlite.stderr, /--replicas N runs replicas over one registry in PostgreSQL/);
  assert.match(plinth(["--route", "adapter"]).stderr, /--route goes with --replicas N/);
  assert.match(plinth(["--replicas", "0", "--registry", "postgres://u@h/db", "--data-dir", "."]).stderr, /--replicas/);
  assert.match(plinth(["--replicas", "2", "--route", "nearest", "--registry", "postgres://u@h/db", "--data-dir", "."]).stderr, /unknown --route "nearest"/);
  if (skip !== null) return;
  // The replica's port (the balancer's + 1) is taken: it fails three times, and the command exits 1.
  const blocker = createNetServer();
  const port = await new Promise<number>((r) => blocker.listen(0, "127.0.0.1", () => r((blocker.address() as { port: number }).port)));
  try {
    const reg = await fx.pg!.database();
    const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const c = spawnServeRaw(["--replicas", "1", "--registry", reg, "--data-dir", fx.dataDir, "--port", String(port - 1)]);
      let err = "";
      c.stderr!.on("data", (d: Buffer) => { err += d.toString(); });
      c.on("exit", (code) => resolve({ code, err }));
    });
    assert.equal(r.code, 1, r.err.slice(-2000));
    assert.match(r.err, /replica r1 exited \(code \d+\) before listening, 3 times in a row; stopping/);
  } finally {
    blocker.close();
  }
});

function spawnServeRaw(args: string[]): ChildProcess {
  return spawn(process.execPath, [join(import.meta.dirname, "..", "src", "cli", "main.js"), "serve", ...args], { stdio: ["ignore", "ignore", "pipe"] });
}
