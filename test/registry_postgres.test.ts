// The registry on PostgreSQL as several replicas see it: the same migrations as SQLite; two
// registries (two replicas' pools) claiming jobs at once never take the same job and keep each
// tenant's cap; token reservations from both never exceed a key's quota; a job whose replica
// stopped heartbeating is re-queued by another replica's sweep (and failed once out of
// attempts); a database restart is a clean 503 that recovers without restarting the server.
// Skipped, saying why, without the PostgreSQL server binaries.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { MIGRATIONS, Registry, RegistryUnavailableError, openArtifactStore, registryDigest } from "../src/registry/index.js";
import { JobRunner, createServer, pickJob } from "../src/serve/index.js";
import { type PgCluster, pgSkipReason, startPostgres } from "./helpers/postgres.js";
import { makeFixture } from "./helpers/serve_fixture.js";

const skip = pgSkipReason() ?? false;
if (skip !== false && process.env.PLINTH_REQUIRE_POSTGRES) throw new Error(`PLINTH_REQUIRE_POSTGRES is set (CI): ${skip}`);
let pgc: PgCluster;
let dir: string;
before(async () => {
  if (skip !== false) return;
  pgc = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), "plinth-regpg-"));
});
after(async () => {
  await pgc?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** A registry with a base model row and a training file row (jobs reference both). */
async function world(url: string): Promise<{ reg: Registry; fileId: string }> {
  const reg = await Registry.open(url);
  await reg.db.run("INSERT INTO models (name, dir, model_type, sha256, created) VALUES ('tiny', '/nowhere', 'gpt2', ?, 0)", ["0".repeat(64)]);
  const file = await reg.jobs.addFile({ tenant: "t0", filename: "t.jsonl", purpose: "fine-tune", bytes: 1, path: "/dev/null", rows: 1, labels: ["a"], sha256: "0".repeat(64) });
  return { reg, fileId: file.id };
}

test("the same migrations on SQLite and PostgreSQL, recorded once each, applied once by replicas starting together", { skip }, async () => {
  const url = await pgc.database();
  const regs = await Promise.all([Registry.open(url), Registry.open(url), Registry.open(url)]);
  const lite = await Registry.open(join(dir, "same.db"));
  try {
    const versions = async (r: Registry) => (await r.db.all<{ version: number; name: string }>("SELECT version, name FROM migrations ORDER BY version")).map((m) => `${m.version} ${m.name}`);
    const want = MIGRATIONS.map((m) => `${m.version} ${m.name}`);
    assert.deepEqual(await versions(regs[0]), want);
    assert.deepEqual(await versions(lite), want);
    assert.equal(regs[0].engine, "postgres");
    assert.equal(lite.engine, "sqlite");
  } finally {
    for (const r of [...regs, lite]) await r.close();
  }
});

test("two replicas claiming at once never take the same job, and each tenant's cap holds across them", { skip }, async () => {
  const url = await pgc.database();
  const { reg: a, fileId } = await world(url);
  const b = await Registry.open(url);
  try {
    for (let i = 0; i < 16; i++) {
      await a.jobs.createJob({ tenant: `t${i % 4}`, keyId: "k", model: "tiny", trainingFile: fileId, method: "lora", hyperparameters: {}, suffix: null, seed: i });
    }
    const cap = () => 1;
    const choose = (q: Parameters<typeof pickJob>[0], running: Map<string, number>) => pickJob(q, running, new Map(), cap);
    const claims = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).jobs.claimNext(i % 2 === 0 ? "host-a" : "host-b", choose, cap)));
    const got = claims.filter((j) => j !== undefined);
    assert.equal(got.length, 4, "one job per tenant: the cap of 1 holds over both replicas");
    assert.equal(new Set(got.map((j) => j!.id)).size, 4);
    assert.deepEqual(got.map((j) => j!.tenant).sort(), ["t0", "t1", "t2", "t3"]);
    const running = await a.db.all<{ tenant: string; n: number }>("SELECT tenant, COUNT(*) AS n FROM jobs WHERE status = 'running' GROUP BY tenant ORDER BY tenant");
    assert.deepEqual(running, ["t0", "t1", "t2", "t3"].map((tenant) => ({ tenant, n: 1 })));
    // Each claimed job is its replica's: the worker attaches only on that machine.
    const one = got[0]!;
    assert.equal(await a.jobs.attach(one.id, 4242, one.workerHost === "host-a" ? "host-b" : "host-a"), false);
    assert.equal(await a.jobs.attach(one.id, 4242, one.workerHost!), true);
  } finally {
    await a.close();
    await b.close();
  }
});

test("token reservations from two replicas at once never exceed a key's quota", { skip }, async () => {
  const url = await pgc.database();
  const a = await Registry.open(url), b = await Registry.open(url);
  try {
    const { key } = await a.keys.create("acme", { tokenQuota: 1000 });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).keys.reserve(key, { kind: "chat", model: "tiny", min: 50, max: 50 })));
    const granted = results.filter((r) => r !== null);
    assert.equal(granted.length, 20);
    assert.equal(granted.reduce((s, r) => s + r!.granted, 0), 1000);
    assert.deepEqual(await b.keys.quota(key.id), { quota: 1000, used: 0, reserved: 1000, available: 0 });
    // Settling meters once: the usage is recorded whichever replica settles.
    for (const [i, r] of granted.entries()) await (i % 2 === 0 ? b : a).keys.settle(r!.id, { promptTokens: 10, completionTokens: 5 });
    assert.deepEqual(await a.keys.quota(key.id), { quota: 1000, used: 300, reserved: 0, available: 700 });
    assert.equal((await a.keys.usage("acme"))[0].requests, 20);
    // Reserving while other replicas settle (tokens moving from reserved to used): still never over.
    const { key: k2 } = await a.keys.create("busy", { tokenQuota: 1000 });
    await Promise.all(Array.from({ length: 60 }, async (_, i) => {
      const r = await (i % 2 === 0 ? a : b).keys.reserve(k2, { kind: "chat", model: "tiny", min: 40, max: 60 });
      if (r !== null) await (i % 2 === 0 ? b : a).keys.settle(r.id, { promptTokens: 10, completionTokens: r.granted - 10 });
    }));
    const q = await a.keys.quota(k2.id);
    assert.ok(q.used <= 1000 && q.used >= 960, `used ${q.used} of 1000`);
    assert.equal(q.reserved, 0);
  } finally {
    await a.close();
    await b.close();
  }
});

test("a key's requests per minute are one limit across replicas: hits from two at once, on the database's clock", { skip }, async () => {
  const url = await pgc.database();
  const a = await Registry.open(url), b = await Registry.open(url);
  try {
    const { key } = await a.keys.create("acme", { rpm: 25 });
    const hits = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).keys.hit(key)));
    assert.equal(hits.filter((h) => h.allowed).length, 25);
    assert.deepEqual(hits.filter((h) => h.allowed).map((h) => h.used).sort((x, y) => x - y), Array.from({ length: 25 }, (_, i) => i + 1));
    for (const h of hits.filter((h) => !h.allowed)) {
      assert.equal(h.used, 25);
      assert.ok(!h.allowed && h.retryMs > 50_000 && h.retryMs <= 60_000, `retry in ${JSON.stringify(h)}`);
    }
    // Another key's window is its own; a key without a limit is never counted.
    const { key: other } = await b.keys.create("acme", { rpm: 1 });
    assert.deepEqual(await a.keys.hit(other), { allowed: true, used: 1 });
    assert.equal((await b.keys.hit(other)).allowed, false);
    const { key: free } = await a.keys.create("acme");
    assert.deepEqual(await b.keys.hit(free), { allowed: true, used: 0 });
    assert.equal((await a.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM rate_hits WHERE key_id = ?", [free.id]))!.n, 0);
    // Hits older than a minute leave the window (the database's clock times it).
    await a.db.run("UPDATE rate_hits SET at = at - 61000 WHERE key_id = ?", [key.id]);
    assert.deepEqual(await b.keys.hit(key), { allowed: true, used: 1 });
  } finally {
    await a.close();
    await b.close();
  }
});

test("a job whose replica stopped heartbeating is re-queued by another replica's sweep, and failed once out of attempts", { skip }, async () => {
  const url = await pgc.database();
  const { reg: dead, fileId } = await world(url);
  const live = await Registry.open(url);
  // maxWorkers 0: this runner sweeps but starts no worker, so the test sees the queue as the sweep left it.
  const runner = new JobRunner(live, { dbPath: url, artifacts: openArtifactStore(dir), maxWorkers: 0, staleMs: 300, maxAttempts: 2 });
  try {
    const job = await dead.jobs.createJob({ tenant: "t0", keyId: "k", model: "tiny", trainingFile: fileId, method: "lora", hyperparameters: {}, suffix: null, seed: 1 });
    const claim = () => dead.jobs.claimNext("machine-that-dies", (q) => q[0], () => 1);
    assert.equal((await claim())?.id, job.id);
    assert.equal(await dead.jobs.attach(job.id, 999_999, "machine-that-dies"), true);
    await dead.jobs.addEvent(job.id, "info", "Step 1/10", { step: 1, total_steps: 10 });
    assert.deepEqual(await runner.sweep(), [], "a fresh heartbeat is left alone");
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(await runner.sweep(), [job.id]);
    let now = (await live.jobs.job(job.id))!;
    assert.equal(now.status, "queued");
    assert.equal(now.attempts, 1);
    assert.equal(now.workerHost, null);
    const events = (await live.jobs.events(job.id, { order: "asc" })).map((e) => e.message);
    assert.ok(events.includes("Step 1/10"), "every committed event is kept");
    assert.match(events.at(-1)!, /stopped heartbeating .*attempt 2 of 2/);
    // The second attempt dies too: out of attempts, the job fails.
    assert.equal((await claim())?.id, job.id);
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(await runner.sweep(), [job.id]);
    now = (await live.jobs.job(job.id))!;
    assert.equal(now.status, "failed");
    assert.equal(now.error?.code, "worker_lost");
  } finally {
    await runner.close();
    await dead.close();
    await live.close();
  }
});

test("a PostgreSQL restart: requests fail cleanly with 503 meanwhile and succeed after, with no restart of the server", { skip }, async () => {
  const fx = await makeFixture({ engine: "postgres" });
  const server = await createServer({ registry: fx.dbPath, dataDir: fx.dataDir, runJobs: false });
  try {
    const url = await server.listen({ port: 0 });
    const models = () => fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${fx.keyA}` } });
    assert.equal((await models()).status, 200);
    const down = fx.pg!.restart(1500);
    await new Promise((r) => setTimeout(r, 300));
    const during = await models();
    assert.equal(during.status, 503);
    assert.equal(((await during.json()) as { error: { code: string } }).error.code, "unavailable");
    assert.equal(during.headers.get("retry-after"), "1");
    await assert.rejects(server.registry.keys.verify("pk-x"), RegistryUnavailableError);
    await down;
    let ok = 0;
    for (let i = 0; i < 20 && ok === 0; i++) {
      const r = await models();
      if (r.status === 200) ok++;
      else await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(ok, 1, "the server's pool reconnects by itself");
  } finally {
    await server.close();
    await fx.cleanup();
  }
});

test("a PostgreSQL restart while a transaction holds its connection between statements: a RegistryUnavailableError, not the end of the process", { skip }, async () => {
  const url = await pgc.database();
  const reg = await Registry.open(url);
  const uncaught: Error[] = [];
  const onUncaught = (e: Error) => { uncaught.push(e); };
  // node:test would report the uncaught error as well; this listener names it.
  process.on("uncaughtException", onUncaught);
  try {
    let restarted!: Promise<void>;
    const tx = reg.tx(async () => {
      await reg.db.get("SELECT 1 AS ok");
      // The server goes away while the transaction's connection is checked out and idle (no statement running).
      restarted = pgc.restart(300);
      await new Promise((r) => setTimeout(r, 100));
      await reg.db.get("SELECT 1 AS ok");
    });
    await assert.rejects(tx, RegistryUnavailableError);
    await restarted;
    assert.deepEqual(uncaught.map((e) => e.message), []);
    // The dropped connection went back to the pool as broken: the next statements run on fresh ones.
    for (let i = 0; i < 12; i++) assert.equal((await reg.db.get<{ ok: number }>("SELECT 1 AS ok"))!.ok, 1);
    assert.equal(await reg.tx(async () => (await reg.db.get<{ ok: number }>("SELECT 2 AS ok"))!.ok), 2);
  } finally {
    process.off("uncaughtException", onUncaught);
    await reg.close();
  }
});

test("plinth registry migrate moves a SQLite registry into PostgreSQL: counts and checksums match, ids continue", { skip }, async () => {
  const fx = await makeFixture({ engine: "sqlite" });
  try {
    // Some of everything: a job with events, usage, an evaluation, a reservation.
    const src = await Registry.open(fx.dbPath);
    const key = (await src.keys.list("acme"))[0];
    const file = await src.jobs.addFile({ tenant: "acme", filename: "t.jsonl", purpose: "fine-tune", bytes: 1, path: "/dev/null", rows: 1, labels: ["a"], sha256: "0".repeat(64) });
    const job = await src.jobs.createJob({ tenant: "acme", keyId: key.id, model: "tiny", trainingFile: file.id, method: "lora", hyperparameters: { steps: 3 }, suffix: null, seed: 1 });
    await src.jobs.addEvent(job.id, "info", "Step 1/3", { step: 1, total_steps: 3, train_loss: 0.5 });
    await src.keys.record({ keyId: key.id, tenant: "acme", kind: "chat", model: "tiny", promptTokens: 3, completionTokens: 4, computeSeconds: 0.125 });
    await src.results.addEvaluation("acme", "tiny:style", "toy", { accuracy: 0.75 });
    await src.keys.reserve(key, { kind: "chat", model: "tiny", min: 1, max: 5 });
    const before = await registryDigest(src);
    await src.close();
    const url = await pgc.database();
    const cli = join(import.meta.dirname, "../src/cli/main.js");
    const out = execFileSync(process.execPath, [cli, "registry", "migrate", "--from", `sqlite:${fx.dbPath}`, "--to", url, "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const report = JSON.parse(out) as { table: string; rows: number; match: boolean }[];
    assert.ok(report.every((r) => r.match), out);
    assert.equal(report.find((r) => r.table === "jobs")!.rows, 1);
    const dst = await Registry.open(url);
    try {
      assert.deepEqual(await registryDigest(dst), before, "the same rows, byte for byte");
      assert.equal((await dst.keys.verify(fx.keyA))?.tenant, "acme");
      // New rows continue after the copied ids (identity counters moved), and the job pages in its old order.
      await dst.jobs.addEvent(job.id, "info", "Step 2/3");
      const events = await dst.jobs.events(job.id, { order: "asc" });
      assert.deepEqual(events.map((e) => e.message).slice(-2), ["Step 1/3", "Step 2/3"]);
      assert.equal((await dst.jobs.jobs("acme")).data[0].id, job.id);
      // Into a registry that is not empty: refused, nothing written.
      assert.throws(() => execFileSync(process.execPath, [cli, "registry", "migrate", "--from", fx.dbPath, "--to", url], { stdio: "pipe" }), /not empty/);
    } finally {
      await dst.close();
    }
  } finally {
    await fx.cleanup();
  }
});
