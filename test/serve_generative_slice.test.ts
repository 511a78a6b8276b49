// Generative fine-tuning jobs are time-sliced like classifier jobs (issue 15, fault 3): a
// preempted run checkpoints (the LoRA factors, the optimizer, the packed rows not yet drawn and
// the dropout generators) and resumes exactly: the same losses, tokens and adapter as a run that
// was never stopped; a long chat job yields its worker to another tenant's job and resumes from
// its checkpoint.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { runGenerative } from "../src/adapt/generative.js";
import { PreemptedError } from "../src/adapt/finetune.js";
import { createServer } from "../src/serve/index.js";
import { makeFixture, writeDataset, type ServeFixture } from "./helpers/serve_fixture.js";

let fx: ServeFixture;
let chats: string;
before(async () => {
  fx = await makeFixture();
  chats = join(fx.root, "chats.jsonl");
  const words = ["good", "bad", "great", "awful", "plot", "movie", "hello", "there"];
  const lines = words.flatMap((a) => words.map((b) => JSON.stringify({ messages: [{ role: "user", content: `${a} ${b}` }, { role: "assistant", content: `${b} ${a}` }] })));
  writeFileSync(chats, lines.join("\n") + "\n");
  writeDataset(join(fx.root, "train.jsonl"), 40);
});
after(() => fx.cleanup());

type Job = Awaited<ReturnType<OpenAI["fineTuning"]["jobs"]["retrieve"]>>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a preempted generative fine-tune resumes from its checkpoint exactly: the same losses, tokens and adapter", async () => {
  const spec = (out: string, checkpointDir?: string) => ({
    base: fx.baseDir, method: "lora" as const, data: chats, out, steps: 14, batchSize: 4, lr: 5e-3, maxTest: 2, seed: 3,
    lora: { rank: 2, dropout: 0.1 }, ...(checkpointDir === undefined ? {} : { checkpointDir }),
  });
  const whole = await runGenerative(spec(join(fx.root, "whole")));
  const ckpt = join(fx.root, "gen-ckpt");
  const preempt = new AbortController();
  await assert.rejects(runGenerative(spec(join(fx.root, "resumed"), ckpt), { preempt: preempt.signal, onProgress: (p) => { if (p.step === 6) preempt.abort(); } }),
    (e: unknown) => e instanceof PreemptedError && e.step === 6 && e.total === 14);
  const steps: number[] = [];
  const resumed = await runGenerative(spec(join(fx.root, "resumed"), ckpt), { onProgress: (p) => steps.push(p.step) });
  assert.equal(steps[0], 7, "the second run starts after the checkpoint");
  assert.equal(resumed.steps, 14);
  assert.deepEqual(resumed.losses, whole.losses);
  assert.equal(resumed.trainingTokens, whole.trainingTokens);
  assert.deepEqual(readFileSync(join(fx.root, "resumed", "adapter.safetensors")), readFileSync(join(fx.root, "whole", "adapter.safetensors")));
  assert.equal(resumed.after.loss, whole.after.loss);
});

test("a long generative job is time-sliced: another tenant's job runs, then it resumes from its checkpoint", async () => {
  const server = await createServer({ registry: fx.dbPath, maxWorkers: 1, jobs: { sliceSeconds: 1 } });
  const url = await server.listen({ port: 0 });
  const A = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
  const B = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyB, maxRetries: 0 });
  const waitFor = async (c: OpenAI, id: string, ok: (j: Job) => boolean, ms = 60_000): Promise<Job> => {
    const t0 = Date.now();
    for (;;) {
      const j = await c.fineTuning.jobs.retrieve(id);
      if (ok(j)) return j;
      assert.ok(Date.now() - t0 < ms, `job ${id} stayed ${j.status}`);
      await sleep(50);
    }
  };
  const messages = async (id: string) => (await A.fineTuning.jobs.listEvents(id, { limit: 1000 })).data.map((e) => e.message);
  try {
    const chatFile = (await A.files.create({ file: await toFile(readFileSync(chats), "chats.jsonl"), purpose: "fine-tune" })).id;
    const labeled = (await B.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" })).id;
    const job = await A.fineTuning.jobs.create({ model: "tiny", training_file: chatFile, method: { type: "lora", lora: { hyperparameters: { steps: 5000, batch_size: 4, rank: 2, max_test: 2 } } } } as unknown as OpenAI.FineTuning.JobCreateParams);
    await waitFor(A, job.id, (j) => j.status === "running");
    while (!(await messages(job.id)).some((m) => /^Step \d+\/5000/.test(m))) await sleep(50);
    const small = await B.fineTuning.jobs.create({ model: "tiny", training_file: labeled, method: { type: "lora", lora: { hyperparameters: { steps: 10, batch_size: 8, rank: 2, max_test: 8 } } } } as unknown as OpenAI.FineTuning.JobCreateParams);
    const submitted = Date.now();
    await waitFor(B, small.id, (j) => j.status !== "queued", 30_000);
    assert.ok((Date.now() - submitted) / 1000 < 15, "tenant B's job waited behind the generative job");
    const preempted = (await messages(job.id)).find((m) => /^Preempted at step \d+\/5000/.test(m));
    assert.ok(preempted !== undefined, "the generative job was preempted");
    const step = Number(/step (\d+)/.exec(preempted)![1]);
    assert.ok(step > 0);
    assert.equal((await waitFor(B, small.id, (j) => ["succeeded", "failed"].includes(j.status))).status, "succeeded");
    await waitFor(A, job.id, (j) => j.status === "running");
    const t0 = Date.now();
    for (;;) {
      const ms = await messages(job.id);
      if (ms.some((m) => /^Step (\d+)\/5000/.test(m) && Number(/^Step (\d+)/.exec(m)![1]) > step)) {
        assert.ok(ms.includes(`Resuming from the checkpoint at step ${step}`), ms.slice(0, 12).join("\n"));
        break;
      }
      assert.ok(Date.now() - t0 < 30_000, "the generative job did not resume");
      await sleep(100);
    }
    await A.fineTuning.jobs.cancel(job.id);
  } finally {
    await server.close();
  }
});
