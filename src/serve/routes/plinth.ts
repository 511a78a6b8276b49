/**
 * Plinth's own API beside OpenAI's: usage meters (GET /v1/usage), evaluations and audits
 * (GET, and POST to record an audit of one's own model), server stats, and admin routes
 * (create keys, register base models, register a tenant's adapter made by `plinth adapt`)
 * that need the server's admin key.
 */
import type { FastifyInstance } from "fastify";
import type { Registry } from "../../registry/index.js";
import { AdapterImportError, NAME_PATTERN, importAdapter } from "../../registry/index.js";
import type { Gate } from "../auth.js";
import { apiError } from "../errors.js";
import type { ModelHost } from "../host.js";
import type { JobRunner } from "../jobs.js";
import { bodyOf, bool, num, str } from "../params.js";

/** How a refused adapter folder reads as an API error: a missing base is "not found", the rest are bad values. */
function adapterImportError(e: AdapterImportError) {
  return apiError(e.code === "base_not_found" ? "model_not_found" : "invalid_value", e.message, e.param);
}

export function plinthRoutes(deps: { registry: Registry; host: ModelHost; runner: JobRunner; gate: Gate; dataDir: string }) {
  const { registry, host, runner, gate, dataDir } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    app.get<{ Querystring: { since?: string; until?: string; key?: string } }>("/v1/usage", async (req) => {
      const since = req.query.since === undefined ? 0 : Number(req.query.since);
      const until = req.query.until === undefined ? Number.MAX_SAFE_INTEGER : Number(req.query.until);
      if (!Number.isFinite(since) || !Number.isFinite(until)) throw apiError("invalid_value", "'since' and 'until' are unix seconds.", "since");
      const rows = registry.keys.usage(req.apiKey.tenant, { since, until, keyId: req.query.key });
      const keys = registry.keys.list(req.apiKey.tenant).map((k) => ({ id: k.id, name: k.name, prefix: k.prefix, rpm: k.rpm, token_quota: k.tokenQuota, tokens_used: registry.keys.tokensUsed(k.id) }));
      return { object: "list", tenant: req.apiKey.tenant, keys, data: rows };
    });
    app.get("/v1/plinth/evaluations", async (req) => ({ object: "list", data: registry.results.evaluations(req.apiKey.tenant) }));
    app.get("/v1/plinth/audits", async (req) => ({ object: "list", data: registry.results.audits(req.apiKey.tenant) }));
    app.post("/v1/plinth/audits", async (req) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      host.resolve(req.apiKey.tenant, model);  // the caller's own model (or a base)
      const result = b.result === undefined ? {} : bodyOf(b.result);
      registry.results.addAudit(req.apiKey.tenant, model, str(b, "name", { required: true }), bool(b, "passed", false), result);
      return { object: "audit", model, recorded: true };
    });
    app.get("/v1/plinth/stats", async (req) => ({
      loaded: host.loaded().map((name) => ({ name, scheduler: host.base(name).scheduler?.stats() ?? null })),
      // Only the caller's own jobs: other tenants' job ids are theirs.
      running_jobs: runner.running().filter((id) => registry.jobs.job(id)?.tenant === req.apiKey.tenant),
    }));

    app.post("/v1/plinth/keys", async (req) => {
      gate.admin(req);
      const b = bodyOf(req.body);
      const tenant = str(b, "tenant", { required: true });
      const rpm = b.rpm === undefined ? null : num(b, "rpm", { min: 1, max: 1e7, integer: true, fallback: 0 });
      const tokenQuota = b.token_quota === undefined ? null : num(b, "token_quota", { min: 1, max: 1e15, integer: true, fallback: 0 });
      try {
        const { key, secret } = registry.keys.create(tenant, { name: str(b, "name") ?? "default", rpm, tokenQuota });
        return { object: "api_key", id: key.id, tenant: key.tenant, key: secret, rpm: key.rpm, token_quota: key.tokenQuota };
      } catch (e) {
        throw apiError("invalid_value", (e as Error).message, "tenant");
      }
    });
    app.post("/v1/plinth/models", async (req) => {
      gate.admin(req);
      const b = bodyOf(req.body);
      const name = str(b, "name", { required: true });
      if (!NAME_PATTERN.test(name)) throw apiError("invalid_value", "Invalid value for 'name': 1-64 characters of letters, digits, _ . -", "name");
      try {
        const m = registry.catalog.addModel(name, str(b, "dir", { required: true }));
        return { object: "model", id: m.name, sha256: m.sha256, model_type: m.modelType };
      } catch (e) {
        throw apiError("invalid_value", (e as Error).message, "dir");
      }
    });
    // An adapter folder on the server's disk (from `plinth adapt`), for one tenant: checked against
    // its base by the hash of the base's weights, then copied into the server's data folder.
    app.post("/v1/plinth/adapters", async (req) => {
      gate.admin(req);
      const b = bodyOf(req.body);
      const tenant = str(b, "tenant", { required: true }), dir = str(b, "dir", { required: true });
      try {
        const { entry, created } = importAdapter(registry.catalog, { tenant, dir, name: str(b, "name"), base: str(b, "base"), dataDir });
        return {
          object: "adapter", id: `${entry.base}:${entry.name}`, tenant: entry.tenant, name: entry.name, base: entry.base, base_sha256: entry.baseSha256,
          sha256: entry.sha256, method: entry.method, task: entry.task, labels: entry.labels, created_at: entry.created, created,
        };
      } catch (e) {
        if (e instanceof AdapterImportError) throw adapterImportError(e);
        throw e;
      }
    });
  };
}
