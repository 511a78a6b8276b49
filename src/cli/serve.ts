/** `plinth serve`: the OpenAI-compatible server over a registry (127.0.0.1 by default). */
import { existsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { AdapterImportError, NAME_PATTERN, Registry, adapterFolders, importAdapter } from "../registry/index.js";
import { createServer } from "../serve/index.js";
import { UsageError, checkWritableDir, parseIntArg } from "./args.js";

export const serveHelp = `plinth serve — OpenAI-compatible multi-adapter server with keys, metering, fine-tuning jobs and a dashboard

Usage: plinth serve [--registry runs/registry.db] [--model name=dir ...] [--adapters <dir> [--tenant default]]
                    [--port 8080] [--host 127.0.0.1] [--admin-key SECRET] [--max-batch 32] [--workers 1]
       plinth serve --create-key <tenant> [--rpm N] [--token-quota N] [--registry ...]

  --registry     the SQLite registry (created if missing; default runs/registry.db)
  --model        register a base model folder under a name (repeatable), e.g. --model tiny=runs/default
  --adapters     register the adapters plinth adapt wrote: every folder under <dir> with an adapter.json
                 (or <dir> itself), named after its folder and served as <base>:<folder>; each must match
                 a registered base by the sha256 of its weights. The files are copied beside the registry,
                 and a folder already registered with the same weights is skipped, so this can run at
                 every start.
  --tenant       the tenant that owns the --adapters (default "default"; give that tenant a key with
                 --create-key default, or name the tenant whose keys should see them)
  --port, --host where to listen (default 127.0.0.1:8080; 0 picks a free port)
  --admin-key    secret for admin routes (POST /v1/plinth/keys, /v1/plinth/models, /v1/plinth/adapters)
  --max-batch    sequences decoded together per base (1 = one request at a time)
  --workers      fine-tuning worker processes at once (default 1)
  --create-key   create an API key for a tenant, print it once, and exit
  --rpm          with --create-key: requests per minute allowed
  --token-quota  with --create-key: tokens allowed in all

Examples:
  plinth serve --model tiny=runs/default --create-key acme
  plinth serve --model tiny=runs/default --port 8080      # dashboard at http://127.0.0.1:8080/dashboard/
  plinth serve --model tiny=runs/default --adapters runs/adapters --tenant acme   # acme calls tiny:sentiment-lora`;

export async function runServe(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      registry: { type: "string" }, model: { type: "string", multiple: true }, adapters: { type: "string" }, tenant: { type: "string" },
      port: { type: "string" }, host: { type: "string" },
      "admin-key": { type: "string" }, "max-batch": { type: "string" }, workers: { type: "string" },
      "create-key": { type: "string" }, rpm: { type: "string" }, "token-quota": { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(serveHelp);
    return;
  }
  const path = values.registry ?? "runs/registry.db";
  // Every flag is checked before the registry is opened (or created).
  const maxBatch = parseIntArg("max-batch", values["max-batch"], 32, 1), maxWorkers = parseIntArg("workers", values.workers, 1, 1);
  const port = parseIntArg("port", values.port, 8080);
  if (port > 65535) throw new UsageError(`--port must be an integer from 0 to 65535, got "${values.port}"`);
  const rpm = values.rpm === undefined ? null : parseIntArg("rpm", values.rpm, 0, 1);
  const quota = values["token-quota"] === undefined ? null : parseIntArg("token-quota", values["token-quota"], 0, 1);
  const models = (values.model ?? []).map((spec) => {
    const i = spec.indexOf("=");
    if (i <= 0) throw new UsageError(`--model ${JSON.stringify(spec)}: expected name=dir, e.g. tiny=runs/default`);
    if (!existsSync(join(spec.slice(i + 1), "config.json"))) throw new UsageError(`--model ${spec}: ${spec.slice(i + 1)} is not a model folder (no config.json there)`);
    return { name: spec.slice(0, i), dir: spec.slice(i + 1) };
  });
  if (values.tenant !== undefined && values.adapters === undefined) throw new UsageError("--tenant names the owner of --adapters; give --adapters <dir> too");
  const tenant = values.tenant ?? "default";
  if (!NAME_PATTERN.test(tenant)) throw new UsageError(`--tenant ${JSON.stringify(tenant)} must be 1-64 characters of letters, digits, _ . -`);
  if (values.adapters !== undefined && !statSync(values.adapters, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--adapters ${values.adapters} is not a folder`);
  checkWritableDir("registry", dirname(resolve(path)));
  const reg = Registry.open(path);
  try {
    for (const { name, dir } of models) {
      const m = reg.catalog.addModel(name, dir);
      console.error(`registered ${m.name} (${m.modelType}, sha256 ${m.sha256.slice(0, 12)}…) from ${m.dir}`);
    }
    if (values.adapters !== undefined) registerAdapters(reg, values.adapters, tenant, dirname(path));
    if (values["create-key"] !== undefined) {
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
    maxBatch, maxWorkers,
  });
  const url = await server.listen({ port, host: values.host ?? "127.0.0.1" });
  console.error(`plinth serve: ${url}/v1 (OpenAI-compatible), dashboard ${url}/dashboard/`);
  const stop = () => {
    console.error("plinth serve: shutting down (running jobs are re-queued for the next start)");
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

/** `--adapters <dir>`: every adapter folder under dir, for one tenant; the first refused folder stops the start. */
function registerAdapters(reg: Registry, dir: string, tenant: string, dataDir: string): void {
  try {
    const folders = adapterFolders(dir);
    if (folders.length === 0) throw new UsageError(`--adapters ${dir}: no adapter folders (sub-folders with an adapter.json, as plinth adapt writes)`);
    for (const folder of folders) {
      const { entry, created } = importAdapter(reg.catalog, { tenant, dir: folder, dataDir });
      console.error(`${created ? "registered" : "already registered"} adapter ${entry.base}:${entry.name} for tenant ${tenant} (${entry.method}, task ${entry.task}) from ${folder}`);
    }
  } catch (e) {
    if (e instanceof AdapterImportError) throw new Error(`--adapters: ${e.message}`);
    throw e;
  }
}
