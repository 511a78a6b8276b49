// Fine-tuning as a service through the openai client: upload, create, events (loss curve),
// checkpoints, retrieve, the adapter served at once under the tenant's model list, usage of
// training tokens and compute; the server answers promptly while the worker trains; and
// kill -9 of the server mid-job loses nothing: the job is adopted or resumed after a restart.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { Registry } from "../src/registry/index.js";
import { makeFixture, writeDataset, type ServeFixture } from "./helpers/serve_fixture.js";
import { alive, killServe, spawnTestServe, startTestServer } from "./helpers/test_server.js";

let fx: ServeFixture;
before(async () => {
  fx = await makeFixture();
  writeDataset(join(fx.root, "train.jsonl"), 40);
});
after(() => fx.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Job = Awaited<ReturnType<OpenAI["fineTuning"]["jobs"]["retrieve"]>>;
async function waitFor(client: OpenAI, id: string, done: (j: Job) => boolean, timeoutMs = 90_000): Promise<Job> {
  const t0 = Date.now();
  for (;;) {
    const j = await client.fineTuning.jobs.retrieve(id);
    if (done(j)) return j;
    if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} still ${j.status} after ${timeoutMs} ms`);
    await sleep(100);
  }
}
const loraJob = (file: string, steps: number) => ({
  model: "tiny", training_file: file, suffix: "sentiment",
  // Plinth's methods (lora, full, head, probe) go where OpenAI puts supervised/dpo; the client passes the body through.
  method: { type: "lora", lora: { hyperparameters: { steps, batch_size: 8, rank: 2, max_test: 8 } } } as unknown as OpenAI.FineTuning.JobCreateParams["method"],
});

test("a LoRA fine-tuning job runs in a worker while the server keeps answering, then its adapter serves", async () => {
  const server = await startTestServer(fx);
  const url = server.url;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
  try {
    const file = await client.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
    // `audit` (Plinth's): audit the trained adapter against its base with probes/sentiment.json.
    const job = await client.fineTuning.jobs.create({ ...loraJob(file.id, 300), audit: "sentiment" } as OpenAI.FineTuning.JobCreateParams);
    assert.equal(job.object, "fine_tuning.job");
    const running = await waitFor(client, job.id, (j) => j.status !== "queued");
    assert.equal(running.status, "running");
    // Responsiveness: requests are served while the worker trains.
    const latencies: number[] = [];
    let during = 0;
    while ((await client.fineTuning.jobs.retrieve(job.id)).status === "running") {
      const t0 = performance.now();
      const r = await client.completions.create({ model: "tiny", prompt: "the movie was", max_tokens: 4, temperature: 0 });
      latencies.push(performance.now() - t0);
      assert.equal(r.choices.length, 1);
      during++;
      await sleep(20);
    }
    assert.ok(during >= 3, `only ${during} requests answered while training`);
    latencies.sort((a, b) => a - b);
    assert.ok(latencies[Math.floor(latencies.length / 2)] < 1000, `median latency ${latencies[Math.floor(latencies.length / 2)]} ms while training`);

    const done = await client.fineTuning.jobs.retrieve(job.id);
    assert.equal(done.status, "succeeded", JSON.stringify(done.error));
    assert.equal(done.fine_tuned_model, "tiny:sentiment");
    assert.ok(done.trained_tokens! > 0);
    const events = await client.fineTuning.jobs.listEvents(job.id, { limit: 1000 });
    const losses = events.data.filter((e) => e.type === "metrics" && (e.data as { train_loss?: number }).train_loss !== undefined);
    assert.ok(losses.length >= 3, `${losses.length} loss events`);
    assert.ok(events.data.some((e) => /successfully completed/.test(e.message)));
    assert.ok(events.data.some((e) => /^Audit sentiment: \d+ /.test(e.message)), events.data.map((e) => e.message).join("\n"));
    const audits = await (await fetch(`${url}/v1/plinth/audits`, { headers: { authorization: `Bearer ${fx.keyA}` } })).json() as { data: { model: string; name: string; result: { verdict: string } }[] };
    const mine = audits.data.filter((a) => a.model === "tiny:sentiment");
    assert.equal(mine.length, 9);  // one row per probe of the suite
    assert.ok(mine.every((a) => a.name.startsWith("sentiment/") && ["ok", "inherited", "fixed", "introduced", "n/a"].includes(a.result.verdict)));
    assert.ok(mine.some((a) => a.name === "sentiment/negation-good" && a.result.verdict !== "n/a"), "label probes apply in the dataset's own labels");
    await assert.rejects(client.fineTuning.jobs.create({ ...loraJob(file.id, 10), audit: "no-such-suite" } as OpenAI.FineTuning.JobCreateParams),
      (e: unknown) => (e as { status?: number; param?: string }).status === 400 && (e as { param?: string }).param === "audit");
    const ckpts = await client.fineTuning.jobs.checkpoints.list(job.id);
    assert.equal(ckpts.data.length, 1);
    assert.equal(ckpts.data[0].fine_tuned_model_checkpoint, "tiny:sentiment");
    const svg = await (await fetch(`${url}/v1/fine_tuning/jobs/${job.id}/loss.svg`, { headers: { authorization: `Bearer ${fx.keyA}` } })).text();
    assert.match(svg, /<svg[\s\S]*<path d="M/);

    const models = (await client.models.list()).data as unknown as { id: string; parent: string; root: string }[];
    const m = models.find((x) => x.id === "tiny:sentiment")!;
    assert.equal(m.parent, "tiny");
    assert.equal(m.root, "tiny");
    const chat = await client.chat.completions.create({ model: "tiny:sentiment", messages: [{ role: "user", content: "hello" }], max_tokens: 4 });
    assert.equal(chat.choices.length, 1);
    const cls = await (await fetch(`${url}/v1/classifications`, {
      method: "POST", headers: { authorization: `Bearer ${fx.keyA}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny:sentiment", input: ["the movie was good", "the movie was bad"] }),
    })).json() as { data: { label: string; scores: Record<string, number> }[] };
    assert.equal(cls.data.length, 2);
    for (const d of cls.data) assert.ok(Math.abs(d.scores.negative + d.scores.positive - 1) < 1e-6 && ["negative", "positive"].includes(d.label));
    const usage = await (await fetch(`${url}/v1/usage`, { headers: { authorization: `Bearer ${fx.keyA}` } })).json() as { data: { kind: string; training_tokens: number; compute_seconds: number }[] };
    const ft = usage.data.find((u) => u.kind === "fine_tuning")!;
    assert.ok(ft.training_tokens > 0 && ft.compute_seconds > 0);
    // Key B sees none of it.
    const other = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyB, maxRetries: 0 });
    assert.ok(!(await other.models.list()).data.some((x) => x.id === "tiny:sentiment"));
  } finally {
    await server.close();
  }
});


test("kill -9 of the server mid-job loses no committed data; after restart the job finishes (adopted, or resumed)", async () => {
  const tenant = await Registry.open(fx.dbPath);
  const key = (await tenant.keys.create("durable")).secret;
  await tenant.close();
  for (const killWorker of [false, true]) {
    let { child, url } = await spawnTestServe(fx);
    let client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
    const file = await client.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
    const job = await client.fineTuning.jobs.create(loraJob(file.id, 300));
    // Wait for committed progress, then kill the server without warning.
    let seen = 0;
    while (seen < 2) {
      seen = (await client.fineTuning.jobs.listEvents(job.id, { limit: 1000 })).data.filter((e) => e.type === "metrics").length;
      await sleep(50);
    }
    await killServe(child);
    const reg = await Registry.open(fx.dbPath, { readonly: true });
    const atKill = (await reg.jobs.job(job.id))!;
    const eventsAtKill = await reg.jobs.events(job.id, { order: "asc", limit: 100_000 });
    await reg.close();
    assert.equal(atKill.status, "running");
    assert.ok(eventsAtKill.filter((e) => e.type === "metrics").length >= 2);
    // The orphaned worker either dies too, or is paused until the new server is up (so the
    // job is still running when the server comes back, however slow the restart).
    process.kill(atKill.workerPid!, killWorker ? "SIGKILL" : "SIGSTOP");
    ({ child, url } = await spawnTestServe(fx));
    if (!killWorker) process.kill(atKill.workerPid!, "SIGCONT");
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
    try {
      const done = await waitFor(client, job.id, (j) => ["succeeded", "failed", "cancelled"].includes(j.status));
      assert.equal(done.status, "succeeded", JSON.stringify(done.error));
      const after = (await client.fineTuning.jobs.listEvents(job.id, { limit: 100_000 })).data;
      const ids = new Set(after.map((e) => e.id));
      for (const e of eventsAtKill) assert.ok(ids.has(`ftevent-${e.id}`), `event ${e.id} (${e.message}) was lost`);
      const text = after.map((e) => e.message).join("\n");
      if (killWorker) {
        assert.match(text, /Resuming: the server restarted and the job's worker is gone; training restarts from step 0 \(attempt 2 of 3\)/);
        assert.equal((done as unknown as { attempts: number }).attempts, 2);
      } else {
        assert.match(text, /adopted the running worker/);
      }
      assert.ok((await client.models.list()).data.some((m) => m.id === done.fine_tuned_model));
    } finally {
      await killServe(child);
    }
  }
});

test("cancelling a running job stops its worker and registers nothing", async () => {
  const server = await startTestServer(fx);
  const url = server.url;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
  try {
    const file = await client.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
    const job = await client.fineTuning.jobs.create({ ...loraJob(file.id, 100_000), suffix: "never" });
    await waitFor(client, job.id, (j) => j.status === "running");
    while ((await client.fineTuning.jobs.listEvents(job.id)).data.every((e) => e.type !== "metrics")) await sleep(50);
    const worker = (await server.registry.jobs.job(job.id))!.workerPid!;  // a child of whichever replica claimed the job
    assert.ok(alive(worker));
    assert.equal((await client.fineTuning.jobs.cancel(job.id)).status, "cancelled");
    const t0 = Date.now();
    while (alive(worker)) {
      assert.ok(Date.now() - t0 < 10_000, "the worker did not stop within 10 s");
      await sleep(50);
    }
    assert.ok(Date.now() - t0 < 4000, `the worker took ${Date.now() - t0} ms to stop (it should see the cancel at its next step)`);
    const after = await client.fineTuning.jobs.retrieve(job.id);
    assert.equal(after.status, "cancelled");
    assert.equal(after.fine_tuned_model, null);
    assert.ok(!(await client.models.list()).data.some((m) => m.id === "tiny:never"));
  } finally {
    await server.close();
  }
});

test("probe, head and full jobs give classifier adapters served by /v1/classifications", async () => {
  const server = await startTestServer(fx, { maxWorkers: 2 });
  const url = server.url;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
  try {
    const file = await client.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
    const jobs = [];
    for (const type of ["probe", "head", "full"]) {
      jobs.push(await client.fineTuning.jobs.create({
        model: "tiny", training_file: file.id, suffix: type,
        method: { type, [type]: { hyperparameters: { steps: 20, batch_size: 8, max_test: 8 } } } as unknown as OpenAI.FineTuning.JobCreateParams["method"],
      }));
    }
    for (const job of jobs) {
      const done = await waitFor(client, job.id, (j) => ["succeeded", "failed", "cancelled"].includes(j.status));
      assert.equal(done.status, "succeeded", `${job.method?.type}: ${JSON.stringify(done.error)}`);
      const res = await fetch(`${url}/v1/classifications`, {
        method: "POST", headers: { authorization: `Bearer ${fx.keyA}`, "content-type": "application/json" },
        body: JSON.stringify({ model: done.fine_tuned_model, input: ["the movie was good 3", "the movie was bad 4"] }),
      });
      const body = await res.json() as { data: { label: string; scores: Record<string, number> }[] };
      assert.equal(res.status, 200, JSON.stringify(body));
      for (const d of body.data) assert.ok(Math.abs(d.scores.negative + d.scores.positive - 1) < 1e-5);
    }
    // A classifier without LoRA weights cannot generate: a clear 400.
    await assert.rejects(client.chat.completions.create({ model: "tiny:head", messages: [{ role: "user", content: "hi" }] }),
      (e: unknown) => (e as { status?: number; code?: string }).status === 400 && (e as { code?: string }).code === "unsupported_model");
  } finally {
    await server.close();
  }
});

test("setfit, prototype and knn jobs: validated like plinth adapt's options, the method in the job and its events, adapters served by /v1/classifications", async () => {
  const server = await startTestServer(fx, { maxWorkers: 2, jobs: { maxPerTenant: 3 } });
  const url = server.url;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
  const as = (method: object) => method as unknown as OpenAI.FineTuning.JobCreateParams["method"];
  const refused = (param: string, pattern: RegExp) => (e: unknown) => {
    const err = e as { status?: number; param?: string; message?: string };
    return err.status === 400 && err.param === param && pattern.test(err.message ?? "");
  };
  try {
    const file = await client.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
    // Each method takes the hyperparameters it uses, no others; values are range-checked.
    await assert.rejects(client.fineTuning.jobs.create({ model: "tiny", training_file: file.id, method: as({ type: "knn", knn: { hyperparameters: { steps: 10 } } }) }),
      refused("hyperparameters.steps", /for method knn: it takes knn_k, labels_per_class, max_test/));
    await assert.rejects(client.fineTuning.jobs.create({ model: "tiny", training_file: file.id, method: as({ type: "lora", lora: { hyperparameters: { knn_k: 3 } } }) }),
      refused("hyperparameters.knn_k", /for method lora/));
    await assert.rejects(client.fineTuning.jobs.create({ model: "tiny", training_file: file.id, method: as({ type: "setfit", setfit: { hyperparameters: { batch_pairs: 0 } } }) }),
      refused("batch_pairs", /batch_pairs/));
    await assert.rejects(client.fineTuning.jobs.create({ model: "tiny", training_file: file.id, method: as({ type: "prototypes" }) }),
      refused("method.type", /expected one of lora, full, head, probe, setfit, prototype, knn/));
    // A setfit job's size counts the texts its pairs read: 100,000 pairs of 256 plan 391 steps × 40 texts.
    const small = await startTestServer(fx, { runJobs: false, jobs: { maxJobExamples: 10_000 } });
    try {
      const c2 = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
      await assert.rejects(c2.fineTuning.jobs.create({ model: "tiny", training_file: file.id, method: as({ type: "setfit", setfit: { hyperparameters: { pairs: 100_000, batch_pairs: 256 } } }) }),
        refused("hyperparameters.pairs", /plans 15,640 training examples \(steps × the texts of a step's pairs\)/));
    } finally {
      await small.close();
    }

    const specs = [
      { type: "setfit", hp: { pairs: 48, batch_pairs: 8, rank: 2, max_test: 8 } },
      { type: "prototype", hp: { labels_per_class: 6, max_test: 8 } },
      { type: "knn", hp: { knn_k: 3, max_test: 8 } },
    ];
    const jobs = [];
    for (const { type, hp } of specs) {
      const job = await client.fineTuning.jobs.create({ model: "tiny", training_file: file.id, suffix: type, method: as({ type, [type]: { hyperparameters: hp } }) });
      assert.equal(job.method?.type, type);
      assert.deepEqual((job.method as unknown as Record<string, { hyperparameters: object }>)[type].hyperparameters, hp);
      jobs.push(job);
    }
    for (const job of jobs) {
      const type = job.method!.type as string;
      const done = await waitFor(client, job.id, (j) => ["succeeded", "failed", "cancelled"].includes(j.status));
      assert.equal(done.status, "succeeded", `${type}: ${JSON.stringify(done.error)}`);
      assert.equal(done.method?.type, type);
      const messages = (await client.fineTuning.jobs.listEvents(job.id, { limit: 1000 })).data.map((e) => e.message);
      assert.ok(messages.some((m) => m === `Created fine-tuning job (${type} on tiny)`), messages.join("\n"));
      assert.ok(messages.some((m) => m.startsWith(`Method ${type}: `)), messages.join("\n"));
      assert.ok(messages.some((m) => new RegExp(`successfully completed: tiny:${type} \\(${type}, \\d+ trainable parameters`).test(m)), messages.join("\n"));
      if (type === "setfit") {
        // Trained on pairs: 6 steps of 8 pairs, every step's loss an event; LoRA factors and a head, not every weight.
        const losses = (await client.fineTuning.jobs.listEvents(job.id, { limit: 1000 })).data.filter((e) => (e.data as { train_loss?: number }).train_loss !== undefined);
        assert.ok(losses.length >= 2, `${losses.length} loss events`);
        assert.ok(done.trained_tokens! > 0);
        assert.ok(messages.some((m) => /\(setfit, ([1-9]\d{0,4}) trainable parameters/.test(m)), "a LoRA body (rank 2) trains a few thousand parameters");
      } else {
        assert.equal(done.trained_tokens, 0, `${type} trains nothing`);
      }
      const res = await fetch(`${url}/v1/classifications`, {
        method: "POST", headers: { authorization: `Bearer ${fx.keyA}`, "content-type": "application/json" },
        body: JSON.stringify({ model: done.fine_tuned_model, input: ["the movie was good 3", "the movie was bad 4"] }),
      });
      const body = await res.json() as { data: { label: string; scores: Record<string, number> }[] };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.data.length, 2);
      for (const d of body.data) assert.ok(Math.abs(d.scores.negative + d.scores.positive - 1) < 1e-5 && ["negative", "positive"].includes(d.label));
    }
  } finally {
    await server.close();
  }
});
