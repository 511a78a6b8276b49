/**
 * OpenAI-compatible serving of one base to many tenants' adapters: continuous batching with
 * per-row LoRA (one base forward for every adapter in the batch), SSE streaming, embeddings,
 * classification, files and fine-tuning jobs in worker processes, keys, rate limits, quotas
 * and metering, and the dashboard.
 *
 *     const server = await createServer({ registry: "runs/registry.db", adminKey: "admin-secret" });
 *     server.registry.catalog.addModel("tiny", "runs/default");
 *     const url = await server.listen({ port: 8080 });   // http://127.0.0.1:8080
 *     // new OpenAI({ baseURL: `${url}/v1`, apiKey }).chat.completions.create({ model: "tiny", messages, stream: true })
 */
export { createServer } from "./app.js";
export type { PlinthServer, ServerOptions } from "./app.js";
export { ApiError, ERRORS, apiError, toApiError } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { ModelHost } from "./host.js";
export { JobRunner, pickJob, plannedExamples } from "./jobs.js";
export type { JobPolicy, JobRunnerOptions } from "./jobs.js";
export { EncoderQueue, EncoderAbortError } from "./encoder_queue.js";
export type { EncoderQueueOptions, EncoderQueueStats, EncoderTask, EncoderOutcome } from "./encoder_queue.js";
export { Scheduler } from "./scheduler.js";
export type { SequenceRequest, TokenEvent, SequenceEnd, SchedulerOptions, SchedulerStats } from "./scheduler.js";
export { forwardPacked, loraWeights } from "./packed.js";
export type { LoRAWeights, PackedRow } from "./packed.js";
export { textDeltas } from "./textgen.js";
