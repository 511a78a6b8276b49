/**
 * The server: `createServer(opts)` builds a Fastify app over a registry file — the auth gate
 * on /v1, the routes, the one error funnel, and the job runner — ready for `inject()` in
 * tests or `listen()` (127.0.0.1 by default) for real clients.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { dirname } from "node:path";
import { type ArtifactStore, Registry, openArtifactStore, parseLocation } from "../registry/index.js";
import { Gate } from "./auth.js";
import { ApiError, apiError, protocolErrorResponse, toApiError } from "./errors.js";
import { ModelHost } from "./host.js";
import { type JobPolicy, JobRunner } from "./jobs.js";
import { type QuerySpec, parseJsonBody, query } from "./params.js";
import { EncoderQueue, type EncoderQueueOptions } from "./encoder_queue.js";
import { type EncoderLimits, encoderRoutes } from "./routes/encoders.js";
import { fileRoutes } from "./routes/files.js";
import { type GenerationLimits, generationRoutes } from "./routes/generation.js";
import { jobRoutes } from "./routes/jobs.js";
import { modelRoutes } from "./routes/models.js";
import { plinthRoutes } from "./routes/plinth.js";
import { webRoutes } from "./routes/web.js";
import { processAlive } from "./pids.js";
import type { WeightFormat } from "../models/inference_weights.js";

export interface ServerOptions {
  /** The registry: a SQLite file (the default engine) or a postgres:// URL. */
  registry: string;
  /** Where uploads, adapters and checkpoints go: the artifact store's folder (default: the registry's folder; required with PostgreSQL). */
  dataDir?: string;
  /** Secret for admin routes (creating keys, registering models); none: admin routes are off. */
  adminKey?: string | null;
  /** Most sequences decoded together per base (1 = one request at a time). */
  maxBatch?: number;
  /** Most adapters kept loaded (default 256; the least recently used leave first). */
  maxAdapters?: number;
  /** This replica's name among several behind a balancer: sent as x-plinth-replica and in /healthz. */
  replica?: string;
  /** The bases' matrices for inference: fp32 (default), bf16 or int8 (models/inference_weights.ts). */
  weights?: WeightFormat;
  /** JSON body limit in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Upload limit for /v1/files in bytes (default 32 MiB). */
  maxFileBytes?: number;
  maxWorkers?: number;
  /** Start the job runner (default true). */
  runJobs?: boolean;
  logger?: boolean;
  /** The encoder queue (piece time, share while generating, requests per tenant) and per-request limits (encoder_queue.ts, routes/encoders.ts). */
  encoder?: Omit<EncoderQueueOptions, "generating"> & EncoderLimits;
  /** Fair sharing of the fine-tuning workers between tenants: per-tenant cap, job size limit, time slice (jobs.ts). */
  jobs?: JobPolicy;
  /** Per-request bounds of the generation routes: choices (n, best_of) and tokens per choice. */
  generation?: GenerationLimits;
  /** Limits for keys that have none of their own: requests per minute and a token quota (registry/keys.ts). */
  keyDefaults?: { rpm?: number | null; tokenQuota?: number | null };
}

export interface PlinthServer {
  app: FastifyInstance;
  registry: Registry;
  /** Uploads, adapters and checkpoints (registry/artifacts.ts), in dataDir. */
  artifacts: ArtifactStore;
  host: ModelHost;
  runner: JobRunner;
  encoders: EncoderQueue;
  /** Listens (127.0.0.1 by default) and returns the base URL. */
  listen(options?: { port?: number; host?: string }): Promise<string>;
  /** Stops listening; with killWorkers (default) running jobs are re-queued for the next start. */
  close(options?: { killWorkers?: boolean }): Promise<void>;
}

export async function createServer(opts: ServerOptions): Promise<PlinthServer> {
  const where = parseLocation(opts.registry);
  if (where.kind === "postgres" && opts.dataDir === undefined) throw new Error("createServer: a PostgreSQL registry needs a dataDir (the folder every replica shares for uploads and adapters)");
  const dataDir = opts.dataDir ?? dirname(where.kind === "sqlite" ? where.path : ".");
  const artifacts = openArtifactStore(dataDir);
  const registry = await Registry.open(opts.registry);
  if (opts.keyDefaults !== undefined) registry.keys.setDefaults(opts.keyDefaults);
  const host = new ModelHost(registry, { maxBatch: opts.maxBatch ?? 32 }, opts.maxAdapters ?? 256, undefined, opts.weights ?? "fp32");
  // Encoder pieces yield to generation: a scheduler with sequences running or waiting comes first.
  const encoders = new EncoderQueue({
    ...opts.encoder,
    generating: () => host.schedulers().some((scheduler) => {
      const s = scheduler.stats();
      return s.active + s.waiting > 0;
    }),
  });
  const runner = new JobRunner(registry, { dbPath: opts.registry, artifacts, maxWorkers: opts.maxWorkers, ...opts.jobs });
  const gate = new Gate(registry, opts.adminKey ?? null);
  // Work metered by a server killed mid-request: its usage rows keep what was metered, its reservations go back to the quota.
  await registry.keys.releaseOrphans((pid) => processAlive(pid));
  const app = Fastify({
    logger: opts.logger ?? false, bodyLimit: opts.bodyLimit ?? 1 << 20,
    // Errors Node's HTTP parser raises before routing (oversized headers, a body that disagrees
    // with Content-Length) and Fastify's own routing errors (a malformed URL) get the same body as the rest.
    clientErrorHandler(err, socket) {
      if ((err as { code?: string }).code === "ECONNRESET" || socket.destroyed) return;
      if (socket.writable) socket.write(protocolErrorResponse(err as { code?: string; message?: string }));
      socket.destroy(err);
    },
    frameworkErrors(err, _req, reply) {
      const e = toApiError(err);
      void (reply as unknown as FastifyReply).status(e.status).send(e.body());
    },
  });
  app.removeContentTypeParser(["text/plain", "application/json"]);  // JSON (and multipart for /v1/files) only: anything else is a 415
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.decorateRequest("apiKey", null as unknown as never);  // set by the hook below before any /v1 handler runs

  if (opts.replica !== undefined) {
    const replica = opts.replica;
    app.addHook("onRequest", async (_req, reply) => {
      void reply.header("x-plinth-replica", replica);
    });
  }
  // Liveness for a load balancer's health checks (no key, no registry read: a registry outage is
  // answered per request with 503, and the replica stays in rotation to answer it), and the
  // adapter cache's counters (what adapter-aware routing is for).
  app.get("/healthz", async () => ({
    status: "ok", replica: opts.replica ?? null, pid: process.pid,
    adapter_cache: { hits: host.adapterCache.hits, misses: host.adapterCache.misses, loaded: host.loadedAdapters() },
  }));

  app.setErrorHandler((err, req, reply) => {
    const e = toApiError(err);
    if (e.status >= 500) req.log.error(err);
    void reply.status(e.status).headers(e.headers).send(e.body());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = apiError("not_found", `Unknown request URL: ${req.method} ${req.url.split("?")[0]}. Please check the URL for typos.`);
    void reply.status(e.status).send(e.body());
  });
  // Gate on the route the router matched, not the raw URL: the router decodes the path, so a
  // percent-encoded "/%761/..." reaches a /v1/ handler while failing a raw-URL prefix check.
  app.addHook("onRequest", async (req) => {
    const route = req.routeOptions.url;
    if (route === undefined || !route.startsWith("/v1/")) return;
    if (!ADMIN_ROUTES.some((prefix) => route === prefix || route.startsWith(`${prefix}/`))) {
      req.apiKey = await gate.admit(req, { work: req.method === "POST" && !NOT_WORK.has(route) });
    }
    // Every query parameter of every /v1 route is checked against what the route declares (config.query).
    req.query = query(req.query, (req.routeOptions.config as { query?: QuerySpec }).query ?? {});
  });

  await app.register(modelRoutes(registry, host));
  await app.register(generationRoutes({ host, registry, limits: opts.generation }));
  await app.register(encoderRoutes({ host, registry, queue: encoders, limits: opts.encoder }));
  await app.register(fileRoutes({ registry, artifacts, maxFileBytes: opts.maxFileBytes ?? 32 << 20 }));
  await app.register(jobRoutes({ registry, runner }));
  await app.register(plinthRoutes({ registry, host, runner, gate, artifacts, encoders }));
  await app.register(webRoutes());
  if (opts.runJobs ?? true) await runner.recover();

  return {
    app, registry, artifacts, host, runner, encoders,
    async listen({ port = 8080, host: address = "127.0.0.1" } = {}) {
      return await app.listen({ port, host: address });
    },
    async close({ killWorkers = true } = {}) {
      await runner.close({ killWorkers });
      encoders.close();
      host.close();
      await app.close();
      await registry.close();
    },
  };
}

export { ApiError };

/** Admin routes (the server's admin key, no tenant key), by path prefix. */
const ADMIN_ROUTES = ["/v1/plinth/keys", "/v1/plinth/models", "/v1/plinth/adapters"];
/** POST routes that spend no tokens: the token quota does not gate them (it gates work, not reads or bookkeeping). */
const NOT_WORK = new Set(["/v1/fine_tuning/jobs/:id/cancel", "/v1/plinth/audits", "/v1/files"]);

