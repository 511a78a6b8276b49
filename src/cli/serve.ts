/** `plinth serve`: the OpenAI-compatible server over a registry (127.0.0.1 by default). */
import { parseArgs } from "node:util";
import { Registry } from "../registry/index.js";
import { createServer } from "../serve/index.js";
import { UsageError, parseIntArg } from "./args.js";

export const serveHelp = `plinth serve — OpenAI-compatible multi-adapter server with keys, metering, fine-tuning jobs and a dashboard

Usage: plinth serve [--registry runs/registry.db] [--model name=dir ...] [--port 8080] [--host 127.0.0.1]
                    [--admin-key SECRET] [--max-batch 32] [--workers 1]
       plinth serve --create-key <tenant> [--rpm N] [--token-quota N] [--registry ...]

  --registry     the SQLite registry (created if missing; default runs/registry.db)
  --model        register a base model folder under a name (repeatable), e.g. --model tiny=runs/default
  --port, --host where to listen (default 127.0.0.1:8080; 0 picks a free port)
  --admin-key    secret for admin routes (POST /v1/plinth/keys, /v1/plinth/models)
  --max-batch    sequences decoded together per base (1 = one request at a time)
  --workers      fine-tuning worker processes at once (default 1)
  --create-key   create an API key for a tenant, print it once, and exit
  --rpm          with --create-key: requests per minute allowed
  --token-quota  with --create-key: tokens allowed in all

Examples:
  plinth serve --model tiny=runs/default --create-key acme
  plinth serve --model tiny=runs/default --port 8080      # dashboard at http://127.0.0.1:8080/dashboard/`;

export async function runServe(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      registry: { type: "string" }, model: { type: "string", multiple: true }, port: { type: "string" }, host: { type: "string" },
      "admin-key": { type: "string" }, "max-batch": { type: "string" }, workers: { type: "string" },
      "create-key": { type: "string" }, rpm: { type: "string" }, "token-quota": { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(serveHelp);
    return;
  }
  const path = values.registry ?? "runs/registry.db";
  const reg = Registry.open(path);
  try {
    for (const spec of values.model ?? []) {
      const i = spec.indexOf("=");
      if (i <= 0) throw new UsageError(`--model ${JSON.stringify(spec)}: expected name=dir, e.g. tiny=runs/default`);
      const m = reg.catalog.addModel(spec.slice(0, i), spec.slice(i + 1));
      console.error(`registered ${m.name} (${m.modelType}, sha256 ${m.sha256.slice(0, 12)}…) from ${m.dir}`);
    }
    if (values["create-key"] !== undefined) {
      const rpm = values.rpm === undefined ? null : parseIntArg("rpm", values.rpm, 0, 1);
      const quota = values["token-quota"] === undefined ? null : parseIntArg("token-quota", values["token-quota"], 0, 1);
      const { key, secret } = reg.keys.create(values["create-key"], { rpm, tokenQuota: quota });
      console.error(`key ${key.id} for tenant ${key.tenant} (shown once; the registry keeps only its hash):`);
      console.log(secret);
      return;
    }
    if (reg.catalog.models().length === 0) console.error("warning: no base models registered yet; add one with --model name=dir");
  } finally {
    reg.close();
  }
  const server = await createServer({
    registry: path, adminKey: values["admin-key"] ?? null,
    maxBatch: parseIntArg("max-batch", values["max-batch"], 32, 1), maxWorkers: parseIntArg("workers", values.workers, 1, 1),
  });
  const url = await server.listen({ port: parseIntArg("port", values.port, 8080), host: values.host ?? "127.0.0.1" });
  console.error(`plinth serve: ${url}/v1 (OpenAI-compatible), dashboard ${url}/dashboard/`);
  const stop = () => {
    console.error("plinth serve: shutting down (running jobs are re-queued for the next start)");
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
