/**
 * The server: `createServer(opts)` builds a Fastify app over a registry file — the auth gate
 * on /v1, the routes, the one error funnel, and the job runner — ready for `inject()` in
 * tests or `listen()` (127.0.0.1 by default) for real clients.
 */
import Fastify, { type FastifyInstance } from "fastify";
import { dirname } from "node:path";
import { Registry } from "../registry/index.js";
import { Gate } from "./auth.js";
import { ApiError, apiError, toApiError } from "./errors.js";
import { ModelHost } from "./host.js";
import { JobRunner } from "./jobs.js";
import { encoderRoutes } from "./routes/encoders.js";
import { fileRoutes } from "./routes/files.js";
import { generationRoutes } from "./routes/generation.js";
import { jobRoutes } from "./routes/jobs.js";
import { modelRoutes } from "./routes/models.js";
import { plinthRoutes } from "./routes/plinth.js";
import { webRoutes } from "./routes/web.js";

export interface ServerOptions {
  /** The registry's SQLite file. */
  registry: string;
  /** Where uploads and trained adapters go (default: the registry's folder). */
  dataDir?: string;
  /** Secret for admin routes (creating keys, registering models); none: admin routes are off. */
  adminKey?: string | null;
  /** Most sequences decoded together per base (1 = one request at a time). */
  maxBatch?: number;
  /** JSON body limit in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Upload limit for /v1/files in bytes (default 32 MiB). */
  maxFileBytes?: number;
  maxWorkers?: number;
  /** Start the job runner (default true). */
  runJobs?: boolean;
  logger?: boolean;
}

export interface PlinthServer {
  app: FastifyInstance;
  registry: Registry;
  host: ModelHost;
  runner: JobRunner;
  /** Listens (127.0.0.1 by default) and returns the base URL. */
  listen(options?: { port?: number; host?: string }): Promise<string>;
  /** Stops listening; with killWorkers (default) running jobs are re-queued for the next start. */
  close(options?: { killWorkers?: boolean }): Promise<void>;
}

export async function createServer(opts: ServerOptions): Promise<PlinthServer> {
  const registry = Registry.open(opts.registry);
  const dataDir = opts.dataDir ?? dirname(opts.registry);
  const host = new ModelHost(registry, { maxBatch: opts.maxBatch ?? 32 });
  const runner = new JobRunner(registry, { dbPath: opts.registry, dataDir, maxWorkers: opts.maxWorkers });
  const gate = new Gate(registry, opts.adminKey ?? null);
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: opts.bodyLimit ?? 1 << 20 });
  app.removeContentTypeParser("text/plain");  // JSON (and multipart for /v1/files) only: anything else is a 415
  app.decorateRequest("apiKey", null as unknown as never);  // set by the hook below before any /v1 handler runs

  app.setErrorHandler((err, req, reply) => {
    const e = toApiError(err);
    if (e.status >= 500) req.log.error(err);
    void reply.status(e.status).headers(e.headers).send(e.body());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = apiError("not_found", `Unknown request URL: ${req.method} ${req.url.split("?")[0]}. Please check the URL for typos.`);
    void reply.status(e.status).send(e.body());
  });
  const adminRoutes = new Set(["/v1/plinth/keys", "/v1/plinth/models", "/v1/plinth/adapters"]);
  // Gate on the route the router matched, not the raw URL: the router decodes the path, so a
  // percent-encoded "/%761/..." reaches a /v1/ handler while failing a raw-URL prefix check.
  app.addHook("onRequest", async (req) => {
    const route = req.routeOptions.url;
    if (route === undefined || !route.startsWith("/v1/") || adminRoutes.has(route)) return;
    req.apiKey = gate.admit(req);
  });

  await app.register(modelRoutes(registry));
  await app.register(generationRoutes({ host, registry }));
  await app.register(encoderRoutes({ host, registry }));
  await app.register(fileRoutes({ registry, dataDir, maxFileBytes: opts.maxFileBytes ?? 32 << 20 }));
  await app.register(jobRoutes({ registry, runner }));
  await app.register(plinthRoutes({ registry, host, runner, gate, dataDir }));
  await app.register(webRoutes());
  if (opts.runJobs ?? true) runner.recover();

  return {
    app, registry, host, runner,
    async listen({ port = 8080, host: address = "127.0.0.1" } = {}) {
      return await app.listen({ port, host: address });
    },
    async close({ killWorkers = true } = {}) {
      runner.close({ killWorkers });
      host.close();
      await app.close();
      registry.close();
    },
  };
}

export { ApiError };
