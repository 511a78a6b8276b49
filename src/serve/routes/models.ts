/**
 * GET /v1/models and /v1/models/:id: the bases and the caller's own adapters, with parent and
 * root. DELETE /v1/models/:id deletes one of the caller's own adapters (from the catalog and the
 * host's cache): a base is 403, another tenant's adapter 404 (as if it did not exist).
 */
import type { FastifyInstance } from "fastify";
import type { AdapterEntry, ModelEntry, Registry } from "../../registry/index.js";
import { apiError } from "../errors.js";
import { fineTunedAdapter, type ModelHost, modelIdOf } from "../host.js";

const baseObject = (m: ModelEntry) => ({ id: m.name, object: "model", created: m.created, owned_by: "plinth", parent: null, root: m.name, model_type: m.modelType, sha256: m.sha256 });
const adapterObject = (a: AdapterEntry, chain: string[], id = `${a.base}:${a.name}`) => ({
  id, object: "model", created: a.created, owned_by: a.tenant, parent: a.parent, root: chain[chain.length - 1],
  method: a.method, task: a.task, labels: a.labels, sha256: a.sha256, base_sha256: a.baseSha256, lineage: chain,
});

export function modelRoutes(registry: Registry, host?: ModelHost) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get("/v1/models", async (req) => {
      const adapters = [];
      for (const a of await registry.catalog.adapters(req.apiKey.tenant)) adapters.push(adapterObject(a, await registry.catalog.lineage(a), await modelIdOf(registry, a)));
      return { object: "list", data: [...(await registry.catalog.models()).map(baseObject), ...adapters] };
    });
    app.get<{ Params: { id: string } }>("/v1/models/:id", async (req) => {
      const id = req.params.id;
      const i = id.indexOf(":");
      const ft = id.startsWith("ft:") ? await fineTunedAdapter(registry, req.apiKey.tenant, id) : undefined;
      if (ft !== undefined) return adapterObject(ft, await registry.catalog.lineage(ft), id);
      if (i < 0) {
        const m = await registry.catalog.model(id);
        if (m !== undefined) return baseObject(m);
      } else {
        const a = await registry.catalog.adapter(req.apiKey.tenant, id.slice(0, i), id.slice(i + 1));
        if (a !== undefined) return adapterObject(a, await registry.catalog.lineage(a));
      }
      throw apiError("model_not_found", `The model '${id}' does not exist or you do not have access to it.`, "model");
    });
    app.delete<{ Params: { id: string } }>("/v1/models/:id", async (req) => {
      const id = req.params.id;
      const tenant = req.apiKey.tenant;
      const i = id.indexOf(":");
      const adapter = id.startsWith("ft:") ? await fineTunedAdapter(registry, tenant, id) : i < 0 ? undefined : await registry.catalog.adapter(tenant, id.slice(0, i), id.slice(i + 1));
      if (adapter === undefined) {
        if (i < 0 && (await registry.catalog.model(id)) !== undefined) throw apiError("permission_denied", `The model '${id}' is a base model; only your own fine-tuned models can be deleted.`, "model");
        throw apiError("model_not_found", `The model '${id}' does not exist or you do not have access to it.`, "model");
      }
      await registry.catalog.removeAdapter(adapter.id);
      host?.forget(adapter.id);
      return { id, object: "model", deleted: true };
    });
  };
}
