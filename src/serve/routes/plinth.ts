/**
 * Plinth's own API beside OpenAI's: usage meters (GET /v1/usage), evaluations and audits
 * (GET, and POST to record an audit of one's own model), server stats, and admin routes
 * (list, create, rotate and revoke keys; register base models; register a tenant's adapter
 * made by `plinth adapt`) that need the server's admin key.
 */
import type { FastifyInstance } from "fastify";
import type { ApiKey, ArtifactStore, Registry } from "../../registry/index.js";
import { AdapterImportError, NAME_PATTERN, importAdapter, tenantProblem } from "../../registry/index.js";
import type { Gate } from "../auth.js";
import { apiError } from "../errors.js";
import type { ModelHost } from "../host.js";
import type { EncoderQueue } from "../encoder_queue.js";
import type { JobRunner } from "../jobs.js";
import { bodyOf, bool, num, q, str } from "../params.js";

const USAGE_QUERY = { since: q.int(0, Number.MAX_SAFE_INTEGER), until: q.int(0, Number.MAX_SAFE_INTEGER), key: q.str(64) };

/** A key as the admin API shows it: never its secret or hash. */
async function keyObject(registry: Registry, k: ApiKey) {
  const s = await registry.keys.quota(k.id);
  return {
    object: "api_key", id: k.id, tenant: k.tenant, name: k.name, prefix: k.prefix, rpm: k.rpm, token_quota: k.tokenQuota,
    created_at: k.created, revoked: k.revoked, tokens_used: s.used, tokens_reserved: s.reserved,
  };
}

/** The ids among `ids` of the tenant's own jobs. */
async function ownJobs(registry: Registry, ids: string[], tenant: string): Promise<string[]> {
  const out: string[] = [];
  for (const id of ids) if ((await registry.jobs.job(id))?.tenant === tenant) out.push(id);
  return out;
}

/** How a refused adapter folder reads as an API error: a missing base is "not found", the rest are bad values. */
function adapterImportError(e: AdapterImportError) {
  return apiError(e.code === "base_not_found" ? "model_not_found" : "invalid_value", e.message, e.param);
}

export function plinthRoutes(deps: { registry: Registry; host: ModelHost; runner: JobRunner; gate: Gate; artifacts: ArtifactStore; encoders?: EncoderQueue }) {
  const { registry, host, runner, gate, artifacts } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    app.get<{ Querystring: { since?: number; until?: number; key?: string } }>("/v1/usage", { config: { query: USAGE_QUERY } }, async (req) => {
      const { since, until, key } = req.query;
      if (since !== undefined && until !== undefined && since > until) throw apiError("invalid_value", `Invalid value for query parameter 'until': ${until} is before 'since' (${since}).`, "until");
      const rows = await registry.keys.usage(req.apiKey.tenant, { since, until, keyId: key });
      const keys = [];
      for (const k of (await registry.keys.list(req.apiKey.tenant)).filter((k) => !k.revoked)) {
        const s = await registry.keys.quota(k.id);
        keys.push({ id: k.id, name: k.name, prefix: k.prefix, rpm: k.rpm, token_quota: k.tokenQuota, tokens_used: s.used, tokens_reserved: s.reserved, tokens_available: k.tokenQuota === null ? null : s.available });
      }
      return { object: "list", tenant: req.apiKey.tenant, keys, data: rows };
    });
    app.get("/v1/plinth/evaluations", async (req) => ({ object: "list", data: await registry.results.evaluations(req.apiKey.tenant) }));
    app.get("/v1/plinth/audits", async (req) => ({ object: "list", data: await registry.results.audits(req.apiKey.tenant) }));
    app.post("/v1/plinth/audits", async (req) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      await host.resolve(req.apiKey.tenant, model);  // the caller's own model (or a base)
      const result = b.result === undefined ? {} : bodyOf(b.result);
      await registry.results.addAudit(req.apiKey.tenant, model, str(b, "name", { required: true }), bool(b, "passed", false), result);
      return { object: "audit", model, recorded: true };
    });
    app.get("/v1/plinth/stats", async (req) => ({
      loaded: host.loaded().map((name) => ({ name, scheduler: host.loadedBase(name)?.scheduler?.stats() ?? null })),
      // Only the caller's own jobs: other tenants' job ids are theirs.
      running_jobs: await ownJobs(registry, runner.running(), req.apiKey.tenant),
      // The encoder queue's totals (pieces, their times, requests dropped); no tenant's requests by name.
      encoders: deps.encoders?.stats() ?? null,
    }));

    // Key management (admin): list, create, rotate (a new secret for the same key: its limits and
    // usage stay), revoke. Secrets are shown once, when created or rotated.
    app.get<{ Querystring: { tenant?: string } }>("/v1/plinth/keys", { config: { query: { tenant: q.str(64) } } }, async (req) => {
      gate.admin(req);
      const data = [];
      for (const k of await registry.keys.list(req.query.tenant)) data.push(await keyObject(registry, k));
      return { object: "list", data };
    });
    app.post("/v1/plinth/keys", async (req) => {
      gate.admin(req);
      const b = bodyOf(req.body);
      const tenant = str(b, "tenant", { required: true });
      const problem = tenantProblem(tenant);
      if (problem !== null) throw apiError("invalid_value", `Invalid value for 'tenant': ${problem}.`, "tenant");
      const rpm = b.rpm === undefined || b.rpm === null ? null : num(b, "rpm", { min: 1, max: 1e7, integer: true, fallback: 0 });
      const tokenQuota = b.token_quota === undefined || b.token_quota === null ? null : num(b, "token_quota", { min: 1, max: 1e15, integer: true, fallback: 0 });
      const name = str(b, "name") ?? "default";
      if (name.length === 0 || name.length > 64 || /[\x00-\x1f\x7f]/.test(name)) throw apiError("invalid_value", "Invalid value for 'name': 1-64 printable characters.", "name");
      const { key, secret } = await registry.keys.create(tenant, { name, rpm, tokenQuota });
      return { ...(await keyObject(registry, key)), key: secret };
    });
    app.post<{ Params: { id: string } }>("/v1/plinth/keys/:id/rotate", async (req) => {
      gate.admin(req);
      const rotated = await registry.keys.rotate(req.params.id);
      if (rotated === undefined) throw apiError("not_found", `No live key ${req.params.id} (unknown or revoked); list keys with GET /v1/plinth/keys.`, "id");
      return { ...(await keyObject(registry, rotated.key)), key: rotated.secret };
    });
    app.delete<{ Params: { id: string } }>("/v1/plinth/keys/:id", async (req) => {
      gate.admin(req);
      if (!(await registry.keys.revoke(req.params.id))) throw apiError("not_found", `No key ${req.params.id}; list keys with GET /v1/plinth/keys.`, "id");
      return { ...(await keyObject(registry, (await registry.keys.get(req.params.id))!)), deleted: true };
    });
    app.post("/v1/plinth/models", async (req) => {
      gate.admin(req);
      const b = bodyOf(req.body);
      const name = str(b, "name", { required: true });
      if (!NAME_PATTERN.test(name)) throw apiError("invalid_value", "Invalid value for 'name': 1-64 characters of letters, digits, _ . -", "name");
      try {
        const m = await registry.catalog.addModel(name, str(b, "dir", { required: true }));
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
      const problem = tenantProblem(tenant);
      if (problem !== null) throw apiError("invalid_value", `Invalid value for 'tenant': ${problem}.`, "tenant");
      try {
        const { entry, created } = await importAdapter(registry.catalog, { tenant, dir, name: str(b, "name"), base: str(b, "base"), artifacts });
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
