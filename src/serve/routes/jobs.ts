/**
 * /v1/fine_tuning/jobs: create (method lora, full, head, probe, setfit, prototype or knn on a
 * base and an uploaded file), list, retrieve, cancel, events (the loss curve as metrics
 * events), checkpoints, and Plinth's loss curve picture (SVG). A tenant sees only its own jobs.
 *
 * The method is given OpenAI-style: `method: { type: "lora", lora: { hyperparameters: {...} } }`
 * (or top-level `hyperparameters`), with steps, n_epochs, batch_size, learning_rate, rank,
 * alpha, labels_per_class and max_test; setfit takes pairs, batch_pairs, learning_rate,
 * rank/alpha (a LoRA body), labels_per_class and max_test; prototype labels_per_class and
 * max_test; knn those and knn_k (JOB_HYPERPARAMETERS). OpenAI's `supervised` runs as lora.
 * A chat job's `role_tokens: 1` adds the chat template's role markers as tokens the adapter trains.
 * Plinth's `audit` names a probe suite (probes/<name>.json) the trained adapter is audited
 * with against its base.
 */
import { existsSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { listSuites, suitePath } from "../../eval/probes.js";
import { lineChartSvg } from "../../train/plot.js";
import { supports } from "../../models/registry.js";
import type { JobEntry, Registry } from "../../registry/index.js";
import { apiError } from "../errors.js";
import type { JobRunner } from "../jobs.js";
import { type Body, bodyOf, num, q, str } from "../params.js";
import { reserveJobTokens } from "../quota.js";
import { acceptOnly } from "../openai_params.js";


export const JOB_METHODS = ["lora", "full", "head", "probe", "setfit", "prototype", "knn"] as const;
export type JobMethod = (typeof JOB_METHODS)[number];
const HYPER: Record<string, { min: number; max: number; integer: boolean }> = {
  steps: { min: 1, max: 100_000, integer: true }, n_epochs: { min: 1, max: 100, integer: true }, batch_size: { min: 1, max: 512, integer: true },
  learning_rate: { min: 1e-7, max: 1, integer: false }, rank: { min: 1, max: 256, integer: true }, alpha: { min: 1e-3, max: 1e4, integer: false },
  labels_per_class: { min: 1, max: 1e6, integer: true }, max_test: { min: 1, max: 1e6, integer: true },
  learning_rate_multiplier: { min: 1e-3, max: 100, integer: false },
  pairs: { min: 1, max: 100_000, integer: true }, batch_pairs: { min: 1, max: 256, integer: true }, knn_k: { min: 1, max: 1000, integer: true },
  role_tokens: { min: 0, max: 1, integer: true },
};
const TRAINED = ["steps", "n_epochs", "batch_size", "learning_rate", "rank", "alpha", "labels_per_class", "max_test", "learning_rate_multiplier", "role_tokens"];
/**
 * The hyperparameters each method uses (those of `plinth adapt`'s options for it). setfit tunes
 * every body weight, or LoRA factors when `rank` or `alpha` is given; prototype and knn train nothing.
 */
export const JOB_HYPERPARAMETERS: Record<JobMethod, readonly string[]> = {
  lora: TRAINED, full: TRAINED, head: TRAINED, probe: TRAINED,
  setfit: ["pairs", "batch_pairs", "learning_rate", "rank", "alpha", "labels_per_class", "max_test"],
  prototype: ["labels_per_class", "max_test"],
  knn: ["knn_k", "labels_per_class", "max_test"],
};

export function jobObject(j: JobEntry) {
  return {
    id: j.id, object: "fine_tuning.job", model: j.model, created_at: j.created, finished_at: j.finished, fine_tuned_model: j.fineTunedModel,
    organization_id: j.tenant, result_files: [], status: j.status, validation_file: j.validationFile, training_file: j.trainingFile,
    hyperparameters: j.hyperparameters, trained_tokens: j.trainedTokens, error: j.error, seed: j.seed, estimated_finish: null, integrations: [],
    method: { type: j.method, [j.method]: { hyperparameters: j.hyperparameters } }, suffix: j.suffix, attempts: j.attempts, audit: j.auditSuite,
  };
}

function hyperparameters(b: Body, method: string, type: JobMethod): Record<string, number> {
  const m = b.method === undefined ? {} : bodyOf(b.method);
  const inner = m[method] === undefined ? {} : bodyOf(m[method]);
  const raw = { ...(b.hyperparameters === undefined ? {} : bodyOf(b.hyperparameters)), ...(inner.hyperparameters === undefined ? {} : bodyOf(inner.hyperparameters)) };
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === "auto" || v === undefined) continue;
    const spec = HYPER[k];
    if (spec === undefined) throw apiError("unknown_parameter", `Unknown hyperparameter '${k}'; known: ${Object.keys(HYPER).join(", ")}.`, `hyperparameters.${k}`);
    if (!JOB_HYPERPARAMETERS[type].includes(k)) {
      throw apiError("invalid_value", `Invalid hyperparameter '${k}' for method ${type}: it takes ${JOB_HYPERPARAMETERS[type].join(", ")}.`, `hyperparameters.${k}`);
    }
    out[k] = num({ [k]: v }, k, { ...spec, fallback: 0 });
  }
  return out;
}

export function jobRoutes(deps: { registry: Registry; runner: JobRunner }) {
  const { registry, runner } = deps;
  const own = async (tenant: string, id: string): Promise<JobEntry> => {
    const j = await registry.jobs.job(id);
    if (j === undefined || j.tenant !== tenant) throw apiError("not_found", `No such fine-tuning job: ${id}`, "fine_tuning_job_id");
    return j;
  };
  return async (app: FastifyInstance): Promise<void> => {
    app.post("/v1/fine_tuning/jobs", async (req) => {
      const b = bodyOf(req.body);
      acceptOnly(b, "fine_tuning");
      const model = str(b, "model", { required: true });
      const fileId = str(b, "training_file", { required: true });
      const m = b.method === undefined ? {} : bodyOf(b.method);
      // OpenAI's "supervised" (and no method at all) is served as LoRA, Plinth's default.
      const method = m.type === undefined || m.type === "supervised" ? "lora" : m.type;
      if (typeof method !== "string" || !(JOB_METHODS as readonly string[]).includes(method)) {
        throw apiError("invalid_value", `Invalid value for 'method.type': ${JSON.stringify(method)}; expected one of ${JOB_METHODS.join(", ")}.`, "method.type");
      }
      const baseEntry = await registry.catalog.model(model);
      if (baseEntry === undefined) {
        throw apiError("model_not_found", `The model '${model}' does not exist or is not a base model that can be fine-tuned.`, "model");
      }
      const file = await registry.jobs.file(fileId);
      if (file === undefined || file.tenant !== req.apiKey.tenant) throw apiError("invalid_value", `invalid training_file: ${fileId}`, "training_file");
      // A chat or prompt/completion file (no labels) is generative fine-tuning: LoRA (OpenAI's supervised) or full, on a causal LM.
      if (file.labels.length === 0) {
        if (method !== "lora" && method !== "full") throw apiError("invalid_value", `Invalid value for 'method.type': ${method} trains a classifier; a chat or prompt/completion file is fine-tuned with supervised (LoRA) or full.`, "method.type");
        if (!supports(baseEntry.modelType, "generate")) throw apiError("invalid_value", `The model '${model}' is a ${baseEntry.modelType} model; generative fine-tuning needs a causal LM (gpt2) base.`, "model");
      }
      const hp = hyperparameters(b, m.type === "supervised" ? "supervised" : method, method as JobMethod), seed = num(b, "seed", { integer: true, min: 0, max: 2 ** 31, fallback: 42 });
      if (hp.role_tokens !== undefined && file.labels.length > 0) {
        throw apiError("invalid_value", "Invalid hyperparameter 'role_tokens': it applies to chat fine-tuning (a chat file), not to a classifier job's labeled file.", "hyperparameters.role_tokens");
      }
      // validation_file: another of the caller's files, held out for the job's validation loss
      // (generative jobs: adapt/generative.ts's `validation`); classifier jobs split their own.
      const validationId = str(b, "validation_file");
      if (validationId !== undefined) {
        const v = await registry.jobs.file(validationId);
        if (v === undefined || v.tenant !== req.apiKey.tenant) throw apiError("invalid_value", `invalid validation_file: ${validationId}`, "validation_file");
        if (file.labels.length > 0) throw apiError("invalid_value", "'validation_file' is not supported by this server for classifier jobs (a labeled training file): they hold out a split of the training file. It is used with chat or prompt/completion files.", "validation_file");
        if (v.labels.length > 0) throw apiError("invalid_value", `Invalid value for 'validation_file': ${validationId} is a labeled file; a generative job's validation file is a chat or prompt/completion file like its training file.`, "validation_file");
        if (v.rows === 0) throw apiError("invalid_value", `Invalid value for 'validation_file': ${validationId} has no rows.`, "validation_file");
      }
      const audit = str(b, "audit");
      if (audit !== undefined && !existsSync(suitePath(audit))) {
        throw apiError("invalid_value", `Invalid value for 'audit': no probe suite ${JSON.stringify(audit)}; suites are ${listSuites().join(", ") || "(none)"}.`, "audit");
      }
      const suffix = str(b, "suffix");
      if (suffix !== undefined && !/^[A-Za-z0-9_.-]{1,40}$/.test(suffix)) throw apiError("invalid_value", "Invalid value for 'suffix': 1-40 characters of letters, digits, _ . -", "suffix");
      runner.checkJobSize(req.apiKey.tenant, method, hp, file);
      // The token quota is a hard limit: the job's planned training tokens are reserved with it (429, and no job, if they do not fit).
      const job = await registry.tx(async () => {
        const created = await registry.jobs.createJob({
          tenant: req.apiKey.tenant, keyId: req.apiKey.id, model, trainingFile: fileId, validationFile: validationId ?? null, method, hyperparameters: hp, suffix: suffix ?? null, seed, auditSuite: audit ?? null,
        });
        await reserveJobTokens(registry, req.apiKey, created, file);
        return created;
      });
      // The job as created (queued); a free worker claims it right after.
      const created = jobObject((await registry.jobs.job(job.id))!);
      void runner.pump().catch(() => {});
      return created;
    });

    app.get<{ Querystring: { after?: string; limit?: number } }>("/v1/fine_tuning/jobs", { config: { query: { after: q.str(64), limit: q.int(1, 100) } } }, async (req) => {
      const { data, hasMore } = await registry.jobs.jobs(req.apiKey.tenant, { after: req.query.after, limit: req.query.limit ?? 20 });
      return { object: "list", data: data.map(jobObject), has_more: hasMore };
    });
    app.get<{ Params: { id: string } }>("/v1/fine_tuning/jobs/:id", async (req) => jobObject(await own(req.apiKey.tenant, req.params.id)));
    app.post<{ Params: { id: string } }>("/v1/fine_tuning/jobs/:id/cancel", async (req) => {
      const j = await own(req.apiKey.tenant, req.params.id);
      if (!(await runner.cancel(j.id))) throw apiError("job_not_cancellable", `Job ${j.id} has already ${j.status === "succeeded" ? "completed" : j.status}; only queued or running jobs can be cancelled.`, "fine_tuning_job_id");
      return jobObject((await registry.jobs.job(j.id))!);
    });
    app.get<{ Params: { id: string }; Querystring: { after?: string; limit?: number } }>("/v1/fine_tuning/jobs/:id/events", { config: { query: { after: q.str(64), limit: q.int(1, 100_000) } } }, async (req) => {
      const j = await own(req.apiKey.tenant, req.params.id);
      const limit = req.query.limit ?? 20;
      const events = await registry.jobs.events(j.id, { after: req.query.after, limit: limit + 1 });
      return {
        object: "list", has_more: events.length > limit,
        data: events.slice(0, limit).map((e) => ({ id: `ftevent-${e.id}`, object: "fine_tuning.job.event", created_at: e.created, level: e.level, message: e.message, type: e.type, data: e.data ?? {} })),
      };
    });
    app.get<{ Params: { id: string } }>("/v1/fine_tuning/jobs/:id/checkpoints", async (req) => {
      const j = await own(req.apiKey.tenant, req.params.id);
      return {
        object: "list", has_more: false,
        data: (await registry.jobs.checkpoints(j.id)).map((c) => ({
          id: c.id, object: "fine_tuning.job.checkpoint", created_at: c.created, fine_tuned_model_checkpoint: c.model, fine_tuning_job_id: j.id,
          step_number: c.step, metrics: { step: c.step, train_loss: c.metrics.train_loss, full_valid_mean_token_accuracy: c.metrics.accuracy, ...c.metrics },
        })),
      };
    });
    app.get<{ Params: { id: string } }>("/v1/fine_tuning/jobs/:id/loss.svg", async (req, reply) => {
      const j = await own(req.apiKey.tenant, req.params.id);
      const all = await registry.jobs.events(j.id, { order: "asc", limit: 100_000 });
      const points = all.filter((e) => e.data?.train_loss !== undefined).map((e): [number, number] => [e.data!.step, e.data!.train_loss]);
      const valid = all
        .filter((e) => e.data?.valid_loss !== undefined).map((e): [number, number] => [e.data!.step, e.data!.valid_loss]);
      const series = [{ name: "training loss", points, color: "#1f77b4" }, ...(valid.length > 0 ? [{ name: "validation loss", points: valid, color: "#d62728" }] : [])];
      const svg = lineChartSvg(series, { title: `${j.id} (${j.method} on ${j.model}, ${j.status})`, xLabel: "step", yLabel: "loss", width: 560, height: 300 });
      return reply.type("image/svg+xml").send(svg);
    });
  };
}
