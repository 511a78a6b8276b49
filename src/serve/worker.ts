/**
 * A fine-tuning job's worker process (forked by jobs.ts):
 *
 *     node dist/src/serve/worker.js <registry> <job id> <artifact store> [<host>]
 *
 * With <host> (the job runner's machine), the runner has claimed the job for that machine and
 * the worker attaches to it; without, the worker claims the queued job itself. It runs the adaptation library's runAdaptation with the job's
 * method and hyperparameters, and commits every step's metrics as a job event (the loss
 * curve) and its heartbeat to the registry. Success commits, in one transaction, the adapter
 * (registered for the job's tenant), a checkpoint, an evaluation and the training usage. The
 * worker writes the registry itself, so it finishes and commits even if the server dies; a
 * job cancelled in the registry (or re-queued to another replica after this worker stopped
 * heartbeating) stops at the next step, and nothing is committed unless the job is still this
 * worker's (its row locked while the commit checks).
 *
 * The adapter is written to a staging folder of the artifact store and stored there by content
 * (a tree) when the job commits; the registry names the tree's checkout.
 *
 * Time-slicing: training checkpoints into the store's checkpoints/<job id> (every 100 steps, and
 * when preempted). SIGUSR2 from the job runner (its slice is over and another tenant's job
 * waits) makes the worker checkpoint after the current step, put the job back in the queue and
 * exit; whichever worker claims the job next resumes from that checkpoint, exactly.
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { hostname } from "node:os";
import { type FileEntry, type JobEntry, Registry, openArtifactStore, redact } from "../registry/index.js";
import type { AdaptOutcome, AdaptProgress, AdaptSpec } from "../adapt/run.js";
import { listCheckpoints } from "../train/checkpoint.js";

// Installed first: a preemption request that arrives while the worker starts is kept, not fatal.
const preempt = new AbortController();
process.on("SIGUSR2", () => preempt.abort());

const [dbPath, jobId, storeAt, claimedFor] = process.argv.slice(2);
if (dbPath === undefined || jobId === undefined || storeAt === undefined) {
  console.error("usage: worker.js <registry> <job id> <artifact store> [<host>]");
  process.exit(2);
}

const registry = await Registry.open(dbPath);
const job = await registry.jobs.job(jobId);
if (job === undefined) {
  console.error(`worker: no job ${jobId} in ${redact(dbPath)}`);
  process.exit(2);
}
const host = claimedFor ?? hostname();
const took = claimedFor === undefined ? await registry.jobs.claim(jobId, process.pid, host) : await registry.jobs.attach(jobId, process.pid, host);
if (!took) process.exit(0);  // cancelled, or another worker has it

/** Whether the job is still this worker's (not cancelled, not re-queued and claimed elsewhere). */
const owns = (j: JobEntry | undefined): boolean => j?.status === "running" && j.workerPid === process.pid && j.workerHost === host;

/** Registry writes from progress callbacks, in order; awaited before the worker commits or exits. */
let writes: Promise<unknown> = Promise.resolve();
const write = (f: () => Promise<unknown>): void => {
  writes = writes.then(f).catch((e: unknown) => console.error(`worker ${jobId}: ${(e as Error).message}`));
};

process.on("disconnect", () => write(() => registry.jobs.addEvent(jobId, "warn", "The server went away; the worker carries on and commits its result")));
const ac = new AbortController();
let lastEvent = 0, lastCheck = 0;
// The heartbeat: every 2 s while the event loop turns, and at steps (training yields between
// them). A job no longer this worker's is abandoned at the next step.
const beat = (): void => write(async () => {
  if (!(await registry.jobs.heartbeat(jobId, process.pid, host))) ac.abort();
});
setInterval(beat, 2000).unref();

function onProgress(p: AdaptProgress & { valLoss?: number }): void {
  const t = Date.now();
  if (t - lastCheck > 300) {
    lastCheck = t;
    beat();
  }
  if (t - lastEvent < 100 && p.step < p.total) return;
  lastEvent = t;
  const data: Record<string, number> = { step: p.step, total_steps: p.total, elapsed_seconds: p.elapsedSeconds };
  if (p.loss !== undefined) data.train_loss = p.loss;
  if (p.tokens !== undefined) data.tokens = p.tokens;
  if (p.valLoss !== undefined) data.valid_loss = p.valLoss;
  const eta = p.step > 0 ? (p.elapsedSeconds * (p.total - p.step)) / p.step : NaN;
  write(() => registry.jobs.addEvent(jobId, "info",
    `Step ${p.step}/${p.total}${p.loss !== undefined ? `: training loss=${p.loss.toFixed(4)}` : ""}${p.valLoss !== undefined ? `, validation loss=${p.valLoss.toFixed(4)}` : ""}${Number.isFinite(eta) ? `, ETA ${eta.toFixed(0)}s` : ""}`, data));
}

const artifacts = openArtifactStore(storeAt);
/**
 * A local file with an upload's bytes, named .jsonl as the task loaders want: a link to its blob
 * in the job's staging folder, or (a file uploaded before the artifact store) the path it was written to.
 */
const localFile = async (f: FileEntry): Promise<string> => {
  if (!(await artifacts.has(f.sha256))) return f.path;
  const dir = artifacts.scratch("staging", `${jobId}.data`);
  const path = join(dir, `${f.sha256}.jsonl`);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    try {
      linkSync(await artifacts.localPath(f.sha256), path);
    } catch {
      copyFileSync(await artifacts.localPath(f.sha256), path);
    }
  }
  return path;
};
process.on("exit", () => rmSync(artifacts.scratch("staging", `${jobId}.data`), { recursive: true, force: true }));
const model = (await registry.catalog.model(job.model))!;
const file = { ...(await registry.jobs.file(job.trainingFile))! };
file.path = await localFile(file);
const validation = job.validationFile === null ? undefined : await localFile((await registry.jobs.file(job.validationFile))!);
const out = artifacts.scratch("staging", jobId);
const checkpointDir = artifacts.scratch("checkpoints", jobId);
/** The trained adapter, stored by content: the folder the registry names (the tree's checkout). */
const stored = async (dir: string): Promise<string> => {
  const checkout = await artifacts.checkout(await artifacts.putTree(dir));
  rmSync(dir, { recursive: true, force: true });
  return checkout;
};
const resumeAt = listCheckpoints(checkpointDir).at(-1)?.step;
if (resumeAt !== undefined) await registry.jobs.addEvent(jobId, "info", `Resuming from the checkpoint at step ${resumeAt}`);
const hp = job.hyperparameters;
const spec: AdaptSpec = {
  base: model.dir, method: job.method as AdaptSpec["method"], task: file.path, out, seed: job.seed, checkpointDir,
  steps: hp.steps, epochs: hp.n_epochs, lr: hp.learning_rate, batchSize: hp.batch_size, maxTest: hp.max_test,
  labelsPerClass: hp.labels_per_class,
  lora: job.method === "lora" ? { rank: hp.rank, alpha: hp.alpha } : undefined,
  // setfit tunes every body weight, or LoRA factors when rank or alpha is given (as plinth adapt does).
  setfit: job.method === "setfit" ? { pairs: hp.pairs, batchPairs: hp.batch_pairs, rank: hp.rank, alpha: hp.alpha } : undefined,
  knnK: job.method === "knn" ? hp.knn_k : undefined,
};

/** A run that threw: a job still running is marked failed (a cancelled one stays cancelled); the worker exits. */
async function exitFailed(e: unknown): Promise<never> {
  await writes;
  const mine = owns(await registry.jobs.job(jobId));
  if (mine) {
    const message = (e as Error).message ?? String(e);
    await registry.jobs.transition(jobId, ["running"], "failed", { error: { code: "training_failed", message }, message: `Fine-tuning failed: ${message}`, level: "error" });
  }
  await registry.close();
  process.exit(mine ? 1 : 0);
}

/**
 * Runs the training and commits it. Preempted (its time slice is over): the job goes back to the
 * queue and its checkpoint stays for the next worker; failed or cancelled: the checkpoint goes.
 */
async function train(run: () => Promise<void>): Promise<never> {
  try {
    await run();
    rmSync(checkpointDir, { recursive: true, force: true });
  } catch (e) {
    if ((e as Error).name === "PreemptedError") {
      const { step, total } = e as Error & { step: number; total: number };
      await writes;
      if (owns(await registry.jobs.job(jobId))) await registry.jobs.requeuePreempted(jobId, `Preempted at step ${step}/${total} so that other tenants' jobs can run; checkpointed, back in the queue, and resumes from step ${step}`);
      await registry.close();
      process.exit(0);
    }
    rmSync(checkpointDir, { recursive: true, force: true });  // nothing will resume
    await exitFailed(e);
  }
  await writes;
  await registry.close();
  process.exit(0);
}

// A training file without labels is a chat or prompt/completion file: generative fine-tuning
// (adapt/generative.ts), time-sliced like the classifier methods (checkpoints, preemption, exact resume).
if (file.labels.length === 0) {
  await train(async () => {
    const { runGenerative } = await import("../adapt/generative.js");
    const o = await runGenerative({
      base: model.dir, method: job.method === "full" ? "full" : "lora", data: file.path, out, seed: job.seed, checkpointDir,
      ...(validation !== undefined ? { validation } : {}),
      steps: hp.steps, epochs: hp.n_epochs, lr: hp.learning_rate, lrMultiplier: hp.learning_rate_multiplier, batchSize: hp.batch_size, maxTest: hp.max_test ?? 16,
      lora: job.method === "full" ? undefined : { rank: hp.rank, alpha: hp.alpha }, roleTokens: hp.role_tokens === 1,
    }, { onProgress: (p) => onProgress({ ...p, ...(p.valLoss !== undefined ? { valLoss: p.valLoss } : {}) }), signal: ac.signal, preempt: preempt.signal });
    await commitGenerative(o);
  });
}

/** What each classifier method does, for the job's events. */
const METHOD_TEXT: Record<string, string> = {
  lora: "low-rank updates of the body's projections and a classification head",
  full: "every weight of the body and a classification head",
  head: "a classification head on the frozen body",
  probe: "logistic regression on the frozen body's pooled embeddings",
  setfit: "contrastive tuning of the body on pairs of the labels (same label close, different labels apart), then a logistic head on its embeddings",
  prototype: "the nearest class mean of the frozen embeddings (cosine; no training)",
  knn: "a vote of the nearest labeled examples in the frozen embeddings (cosine; no training)",
};
const given = Object.entries(hp).map(([k, v]) => `${k}=${v}`).join(", ");
if (resumeAt === undefined) await registry.jobs.addEvent(jobId, "info", `Method ${job.method}: ${METHOD_TEXT[job.method] ?? job.method}${given === "" ? "" : ` (${given})`}`);

await train(async () => {
  const { runAdaptation } = await import("../adapt/run.js");
  const outcome: AdaptOutcome = await runAdaptation(spec, { onProgress, signal: ac.signal, preempt: preempt.signal });
  await commit(outcome, job.auditSuite === null ? [] : await audit(job.auditSuite, outcome.out ?? out));
});

interface AuditRecord { name: string; passed: boolean; result: Record<string, unknown> }

/**
 * The inherited-defect audit of the new adapter against its base, with the suite's probes
 * asked in the terms of the job's own dataset (its labels and prompt). A failing audit run is
 * reported as an event; it does not fail the training that succeeded.
 */
async function audit(suiteName: string, adapterDir: string): Promise<AuditRecord[]> {
  try {
    const { readProbeSuite, suitePath } = await import("../eval/probes.js");
    const { runAudit } = await import("../eval/audit.js");
    const suite = { ...readProbeSuite(suitePath(suiteName)), task: file.path };
    const report = runAudit({ base: model.dir, adapters: [adapterDir], suite });
    const rows = report.rows.map((r) => {
      const a = r.adapters[adapterDir];
      return { name: `${suiteName}/${r.probe}`, passed: a.verdict === "ok" || a.verdict === "fixed", result: { verdict: a.verdict, kind: r.kind, blocking: r.blocking, base: r.base.detail, adapter: a.detail } };
    });
    const counts = new Map<string, number>();
    for (const r of rows) counts.set(String(r.result.verdict), (counts.get(String(r.result.verdict)) ?? 0) + 1);
    await registry.jobs.addEvent(jobId, report.blockingFailures.length > 0 ? "warn" : "info",
      `Audit ${suiteName}: ${[...counts].map(([v, n]) => `${n} ${v}`).join(", ")}${report.blockingFailures.length > 0 ? `; ${report.blockingFailures.length} blocking failure(s)` : ""}`);
    return rows;
  } catch (e) {
    await registry.jobs.addEvent(jobId, "warn", `Audit ${suiteName} could not run: ${(e as Error).message}`);
    return [];
  }
}

async function commit(o: AdaptOutcome, audits: AuditRecord[]): Promise<void> {
  await writes;
  const dir = await stored(o.out ?? out);
  await registry.tx(async () => {
    if (!owns(await registry.jobs.jobForUpdate(jobId))) return;  // cancelled (or taken over) while finishing
    const name = await registry.catalog.freshName(job!.tenant, job!.model, job!.suffix ?? `ft-${jobId.slice(6, 14)}`);
    const adapter = await registry.catalog.addAdapter(job!.tenant, name, job!.model, dir, { jobId });
    const id = `${adapter.base}:${adapter.name}`;
    const metrics = { accuracy: o.metrics.accuracy, macro_f1: o.metrics.macroF1, ece: o.metrics.ece, log_loss: o.metrics.logLoss };
    await registry.jobs.addCheckpoint(jobId, o.losses.length, { ...metrics, train_loss: o.losses.at(-1) ?? NaN }, id);
    await registry.results.addEvaluation(job!.tenant, id, o.task, { ...metrics, test_examples: o.testExamples, train_examples: o.trainExamples });
    for (const a of audits) await registry.results.addAudit(job!.tenant, id, a.name, a.passed, a.result);
    await registry.keys.record({ keyId: job!.keyId, tenant: job!.tenant, kind: "fine_tuning", model: id, trainingTokens: o.trainingTokens, computeSeconds: o.seconds });
    await registry.jobs.addEvent(jobId, "info", `Held-out accuracy ${(o.metrics.accuracy * 100).toFixed(1)}%, macro-F1 ${o.metrics.macroF1.toFixed(3)} on ${o.testExamples} examples`, metrics);
    await registry.jobs.transition(jobId, ["running"], "succeeded", { fineTunedModel: id, trainedTokens: o.trainingTokens, message: `The job has successfully completed: ${id} (${o.method}, ${o.trainableParameters} trainable parameters, ${o.seconds.toFixed(1)}s)` });
  });
}

/** A generative adapter: registered as ft-<id> for the tenant, served as ft:<base>:<tenant>:<suffix>:<id>. */
async function commitGenerative(o: import("../adapt/generative.js").GenerativeOutcome): Promise<void> {
  await writes;
  const dir = await stored(o.out ?? out);
  await registry.tx(async () => {
    if (!owns(await registry.jobs.jobForUpdate(jobId))) return;
    const short = jobId.replace(/^ftjob-/, "").slice(0, 12);
    const adapter = await registry.catalog.addAdapter(job!.tenant, await registry.catalog.freshName(job!.tenant, job!.model, `ft-${short}`), job!.model, dir, { jobId });
    const id = `ft:${adapter.base}:${job!.tenant}:${job!.suffix ?? ""}:${adapter.name.slice(3)}`;
    const metrics = { valid_loss: o.after.loss, valid_loss_before: o.before.loss, valid_exact_match: o.after.exactMatch, valid_similarity: o.after.similarity };
    const finite = Object.fromEntries(Object.entries(metrics).filter(([, v]) => Number.isFinite(v)));
    await registry.jobs.addCheckpoint(jobId, o.steps, { ...finite, train_loss: o.losses.at(-1) ?? NaN }, id);
    await registry.results.addEvaluation(job!.tenant, id, "lm", { ...finite, valid_examples: o.valExamples, train_examples: o.trainExamples });
    await registry.keys.record({ keyId: job!.keyId, tenant: job!.tenant, kind: "fine_tuning", model: id, trainingTokens: o.trainingTokens, computeSeconds: o.seconds });
    await registry.jobs.addEvent(jobId, "info", `Held-out assistant-token loss ${o.before.loss.toFixed(4)} before, ${o.after.loss.toFixed(4)} after; exact match ${(o.after.exactMatch * 100).toFixed(1)}% on ${o.valExamples} examples`, finite);
    await registry.jobs.transition(jobId, ["running"], "succeeded", { fineTunedModel: id, trainedTokens: o.trainingTokens, message: `The job has successfully completed: ${id} (${o.trainableParameters} trainable parameters, ${o.seconds.toFixed(1)}s)` });
  });
}
