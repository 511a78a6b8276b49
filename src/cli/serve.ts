/** `plinth serve`: the OpenAI-compatible server over a registry (127.0.0.1 by default); `plinth keys`: its API keys. */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { AdapterImportError, Registry, adapterFolders, importAdapter, openArtifactStore, parseLocation, redact, tenantProblem } from "../registry/index.js";
import { createServer } from "../serve/index.js";
import { UsageError, checkWritableDir, oneOf, parseIntArg } from "./args.js";
import { WEIGHT_FORMATS } from "../models/inference_weights.js";
import { limitOptions, limitParseOptions, limitsHelp } from "./serve_limits.js";
import { haproxyBinary, runReplicas } from "./replicas.js";

export const serveHelp = `plinth serve — OpenAI-compatible multi-adapter server with keys, metering, fine-tuning jobs and a dashboard

Usage: plinth serve [--registry runs/registry.db | postgres://...] [--data-dir DIR] [--model name=dir ...] [--adapters <dir> [--tenant default]]
                    [--port 8080] [--host 127.0.0.1] [--admin-key-file FILE] [--max-batch 32] [--workers 1]
                    [--replicas N [--route adapter|roundrobin]] [--max-adapters 256]
                    [limits: --max-inputs N --slice-seconds X ... (below)]
       plinth serve --create-key <tenant> [--rpm N] [--token-quota N] [--registry ...]
       (plinth keys list|create|rotate|revoke manages keys without a running server)

  --registry       the registry: a SQLite file (created if missing; default runs/registry.db, or
                   PLINTH_REGISTRY_URL) or a postgres://user@host:5432/db URL (many replicas over one
                   registry; see docs/scaling.md)
  --data-dir       uploads, adapters and checkpoints (default: the registry file's folder; required
                   with PostgreSQL: a folder every replica reaches)
  --model          register a base model folder under a name (repeatable), e.g. --model tiny=runs/default
  --adapters       register the adapters plinth adapt wrote: every folder under <dir> with an adapter.json
                   (or <dir> itself), named after its folder and served as <base>:<folder>; each must match
                   a registered base by the sha256 of its weights. The files are copied beside the registry,
                   and a folder already registered with the same weights is skipped, so this can run at
                   every start.
  --tenant         the tenant that owns the --adapters (default "default"; give that tenant a key with
                   plinth keys create default, or name the tenant whose keys should see them)
  --port, --host   where to listen (default 127.0.0.1:8080; 0 picks a free port)
  --admin-key-file a file holding the secret for the admin routes (/v1/plinth/keys: list, create, rotate,
                   revoke; /v1/plinth/models; /v1/plinth/adapters); or set PLINTH_ADMIN_KEY. Without either,
                   admin routes are off. (--admin-key SECRET still works but is deprecated: a secret on the
                   command line is visible to every user of the machine in ps and /proc.)
  --max-batch      sequences decoded together per base (1 = one request at a time)
  --weights        fp32 (default), bf16 or int8: the bases' matrices for inference (generation, scoring,
                   embeddings; fine-tuning jobs train on float32)
  --workers        fine-tuning worker processes at once (default 1)
  --max-adapters   adapters kept loaded (default 256; the least recently used leave first)
  --replicas       N replica processes over one PostgreSQL registry and --data-dir, with HAProxy
                   (apt-get install haproxy, or PLINTH_HAPROXY) in front on --host:--port and the
                   replicas on 127.0.0.1 at the next N ports; a replica that exits is started again;
                   stopping this process stops them all (docs/scaling.md)
  --route          with --replicas: adapter (default: requests for base:adapter go to the replica
                   that caches the adapter, by consistent hashing with spill-over under load) or
                   roundrobin
  --create-key     create an API key for a tenant, print it once, and exit (as plinth keys create)
  --rpm            with --create-key: requests per minute allowed
  --token-quota    with --create-key: tokens allowed in all (a hard limit: work reserves its worst case)

${limitsHelp()}

Fairness: encoder work (embeddings, classifications, zero-shot, CLIP images) runs in pieces of
--encoder-piece-ms on the event loop, tenants taking turns, chats first; fine-tuning jobs go to
the tenant served least recently, under --jobs-per-tenant, and a job that has trained
--slice-seconds while another tenant's job waits checkpoints and goes back to the queue.

Examples:
  plinth keys create acme --registry runs/registry.db
  PLINTH_ADMIN_KEY=$(cat admin.secret) plinth serve --model tiny=runs/default --port 8080   # dashboard at http://127.0.0.1:8080/dashboard/
  plinth serve --model tiny=runs/default --adapters runs/adapters --tenant acme   # acme calls tiny:sentiment-lora
  plinth serve --max-inputs 64 --encoder-per-tenant 4 --slice-seconds 30 --default-token-quota 1000000`;

export const keysHelp = `plinth keys — list, create, rotate and revoke API keys in a registry (the server need not run)

Usage: plinth keys list [--tenant T] [--registry runs/registry.db] [--json]
       plinth keys create <tenant> [--name N] [--rpm N] [--token-quota N] [--registry ...]
       plinth keys rotate <key id> [--registry ...]
       plinth keys revoke <key id> [--registry ...]

  list      every key (or a tenant's): id, tenant, name, prefix, limits, tokens used and reserved, revoked
  create    a new key for a tenant; the secret is printed once (stdout), the registry keeps its hash.
            Tenant names: 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit.
  rotate    a new secret for a live key: same id, limits and usage; the old secret stops working at once
  revoke    the key stops working at once, for good; its usage stays on record

A running server sees the change at its next request. The same operations are admin routes of the
server: GET /v1/plinth/keys, POST /v1/plinth/keys, POST /v1/plinth/keys/<id>/rotate, DELETE /v1/plinth/keys/<id>.

Examples:
  plinth keys create acme --token-quota 1000000 --rpm 600
  plinth keys list --tenant acme
  plinth keys rotate key_0123456789abcdef
  plinth keys revoke key_0123456789abcdef`;

export async function runKeys(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      registry: { type: "string" }, tenant: { type: "string" }, name: { type: "string" }, rpm: { type: "string" }, "token-quota": { type: "string" },
      json: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(keysHelp);
    return;
  }
  const [action, arg, ...extra] = positionals;
  if (action === undefined || !["list", "create", "rotate", "revoke"].includes(action)) throw new UsageError(`expected list, create, rotate or revoke, got ${action === undefined ? "nothing" : JSON.stringify(action)}`);
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  if (action === "list" ? arg !== undefined : arg === undefined) throw new UsageError(action === "list" ? `list takes no argument (use --tenant), got ${arg}` : `${action} needs a ${action === "create" ? "tenant" : "key id"}`);
  const rpm = values.rpm === undefined ? null : parseIntArg("rpm", values.rpm, 0, 1);
  const quota = values["token-quota"] === undefined ? null : parseIntArg("token-quota", values["token-quota"], 0, 1);
  if (action !== "create" && (values.rpm !== undefined || values["token-quota"] !== undefined || values.name !== undefined)) throw new UsageError("--name, --rpm and --token-quota go with create");
  if (action === "create") checkTenant("tenant", arg!);
  const { path, where } = registryArg(values.registry);
  if (where.kind === "sqlite") {
    if (action !== "create" && !existsSync(where.path)) throw new UsageError(`--registry ${where.path} does not exist`);
    checkWritableDir("registry", dirname(resolve(where.path)));
  }
  const reg = await Registry.open(path);
  try {
    if (action === "list") {
      const keys = [];
      for (const k of await reg.keys.list(values.tenant)) keys.push({ ...k, ...(await reg.keys.quota(k.id)) });
      if (values.json) return console.log(JSON.stringify(keys, null, 2));
      if (keys.length === 0) return console.error(`no keys${values.tenant === undefined ? "" : ` for tenant ${values.tenant}`} in ${path}`);
      console.log(["id", "tenant", "name", "prefix", "rpm", "quota", "used", "reserved", "status"].join("\t"));
      for (const k of keys) console.log([k.id, k.tenant, k.name, `${k.prefix}…`, k.rpm ?? "-", k.tokenQuota ?? "-", k.used, k.reserved, k.revoked ? "revoked" : "live"].join("\t"));
    } else if (action === "create") {
      const { key, secret } = await reg.keys.create(arg!, { name: values.name, rpm, tokenQuota: quota });
      console.error(`key ${key.id} for tenant ${key.tenant} (shown once; the registry keeps only its hash):`);
      console.log(secret);
    } else if (action === "rotate") {
      const rotated = await reg.keys.rotate(arg!);
      if (rotated === undefined) throw new UsageError(`no live key ${arg} in ${path} (unknown or revoked); see plinth keys list`);
      console.error(`key ${rotated.key.id} of tenant ${rotated.key.tenant} rotated: the old secret no longer works; the new one (shown once):`);
      console.log(rotated.secret);
    } else {
      if (!(await reg.keys.revoke(arg!))) throw new UsageError(`no key ${arg} in ${path}; see plinth keys list`);
      console.error(`key ${arg} revoked`);
    }
  } finally {
    await reg.close();
  }
}

/**
 * The registry a command works on: --registry, else PLINTH_REGISTRY_URL, else runs/registry.db;
 * a file path (SQLite, the default engine) or a postgres:// URL. `path` is what to open, and
 * what messages show (a URL without its password).
 */
export function registryArg(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): { path: string; shown: string; where: ReturnType<typeof parseLocation> } {
  const path = flag ?? (env.PLINTH_REGISTRY_URL !== undefined && env.PLINTH_REGISTRY_URL !== "" ? env.PLINTH_REGISTRY_URL : "runs/registry.db");
  try {
    return { path, shown: redact(path), where: parseLocation(path) };
  } catch (e) {
    throw new UsageError(`--registry: ${(e as Error).message.replace(/^registry: /, "")}`);
  }
}

function checkTenant(flag: string, tenant: string): void {
  const problem = tenantProblem(tenant);
  if (problem !== null) throw new UsageError(`--${flag}: ${problem}`);
}

/**
 * The admin secret, kept off the command line: PLINTH_ADMIN_KEY, or the first line of
 * --admin-key-file. The old --admin-key flag still works, with a warning that says why not.
 */
export function adminKeyFrom(values: { "admin-key"?: string; "admin-key-file"?: string }, env: NodeJS.ProcessEnv = process.env, warn: (m: string) => void = console.error): string | null {
  const sources = [values["admin-key"] !== undefined, values["admin-key-file"] !== undefined, env.PLINTH_ADMIN_KEY !== undefined && env.PLINTH_ADMIN_KEY !== ""].filter(Boolean).length;
  if (sources > 1) throw new UsageError("give the admin key one way: PLINTH_ADMIN_KEY, --admin-key-file or (deprecated) --admin-key");
  let secret: string | null = null;
  if (values["admin-key-file"] !== undefined) {
    const file = values["admin-key-file"];
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`--admin-key-file ${file} is not a file`);
    secret = readFileSync(file, "utf8").split(/\r?\n/)[0].trim();
    if (secret === "") throw new UsageError(`--admin-key-file ${file}: the first line is empty`);
    if ((statSync(file).mode & 0o077) !== 0) warn(`plinth serve: warning: ${file} can be read by other users (chmod 600 it)`);
  } else if (env.PLINTH_ADMIN_KEY !== undefined && env.PLINTH_ADMIN_KEY !== "") {
    secret = env.PLINTH_ADMIN_KEY.trim();
  } else if (values["admin-key"] !== undefined) {
    warn("plinth serve: warning: --admin-key is deprecated: a secret on the command line can be read by every user of this machine (ps, /proc/<pid>/cmdline). Use PLINTH_ADMIN_KEY=... or --admin-key-file <file>.");
    secret = values["admin-key"];
  }
  if (secret !== null && secret.length < 16) warn("plinth serve: warning: the admin key is shorter than 16 characters; it can create keys for any tenant, so make it long and random");
  return secret;
}

export async function runServe(argv: string[]): Promise<void> {
  const { values, tokens } = parseArgs({
    args: argv,
    options: {
      registry: { type: "string" }, "data-dir": { type: "string" }, model: { type: "string", multiple: true }, adapters: { type: "string" }, tenant: { type: "string" },
      port: { type: "string" }, host: { type: "string" },
      "admin-key": { type: "string" }, "admin-key-file": { type: "string" }, "max-batch": { type: "string" }, workers: { type: "string" }, weights: { type: "string" },
      "create-key": { type: "string" }, rpm: { type: "string" }, "token-quota": { type: "string" }, help: { type: "boolean", short: "h" },
      replicas: { type: "string" }, route: { type: "string" }, "max-adapters": { type: "string" },
      ...limitParseOptions,
    },
    tokens: true,
  });
  if (values.help) {
    console.log(serveHelp);
    return;
  }
  const { path, where } = registryArg(values.registry);
  // Uploads, adapters and checkpoints: beside a SQLite registry; with PostgreSQL, a folder every replica shares.
  if (where.kind === "postgres" && values["data-dir"] === undefined) throw new UsageError("--registry postgres://... needs --data-dir <folder> (uploads, adapters and checkpoints: a folder every replica reaches, such as a network file system)");
  const dataDir = values["data-dir"] ?? dirname(where.kind === "sqlite" ? where.path : ".");
  // Every flag is checked before the registry is opened (or created).
  const maxBatch = parseIntArg("max-batch", values["max-batch"], 32, 1), maxWorkers = parseIntArg("workers", values.workers, 1, 1);
  const maxAdapters = parseIntArg("max-adapters", values["max-adapters"], 256, 1);
  const replicas = values.replicas === undefined ? null : parseIntArg("replicas", values.replicas, 1, 1);
  if (replicas !== null && replicas > 64) throw new UsageError(`--replicas ${replicas}: at most 64 on one machine`);
  if (values.route !== undefined && replicas === null) throw new UsageError("--route goes with --replicas N");
  const route = oneOf("route", values.route ?? "adapter", ["adapter", "roundrobin"] as const);
  if (replicas !== null && where.kind !== "postgres") throw new UsageError("--replicas N runs replicas over one registry in PostgreSQL: give --registry postgres://... (or PLINTH_REGISTRY_URL) and --data-dir (see docs/scaling.md)");
  if (replicas !== null && values["create-key"] !== undefined) throw new UsageError("--create-key creates a key and exits; it does not go with --replicas");
  const haproxy = replicas === null ? null : haproxyBinary();
  const limits = limitOptions(values);
  const weights = oneOf("weights", values.weights ?? "fp32", WEIGHT_FORMATS);
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
  checkTenant("tenant", tenant);
  if (values["create-key"] !== undefined) checkTenant("create-key", values["create-key"]);
  const adminKey = adminKeyFrom(values);
  if (values.adapters !== undefined && !statSync(values.adapters, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--adapters ${values.adapters} is not a folder`);
  if (where.kind === "sqlite") checkWritableDir("registry", dirname(resolve(where.path)));
  if (values["data-dir"] !== undefined) checkWritableDir("data-dir", resolve(values["data-dir"]));
  const reg = await Registry.open(path);
  try {
    for (const { name, dir } of models) {
      const m = await reg.catalog.addModel(name, dir);
      console.error(`registered ${m.name} (${m.modelType}, sha256 ${m.sha256.slice(0, 12)}…) from ${m.dir}`);
    }
    if (values.adapters !== undefined) await registerAdapters(reg, values.adapters, tenant, dataDir);
    if (values["create-key"] !== undefined) {
      const { key, secret } = await reg.keys.create(values["create-key"], { rpm, tokenQuota: quota });
      console.error(`key ${key.id} for tenant ${key.tenant} (shown once; the registry keeps only its hash):`);
      console.log(secret);
      return;
    }
    if ((await reg.catalog.models()).length === 0) console.error("warning: no base models registered yet; add one with --model name=dir");
  } finally {
    await reg.close();
  }
  if (replicas !== null) {
    // What every replica gets: the flags that shape a server; registration was done here, once.
    const own = new Set(["replicas", "route", "model", "adapters", "tenant", "port", "host", "registry", "admin-key", "admin-key-file", "create-key", "rpm", "token-quota"]);
    const args: string[] = [];
    for (const t of tokens ?? []) {
      if (t.kind !== "option" || own.has(t.name)) continue;
      args.push(`--${t.name}`, ...(t.value === undefined ? [] : [t.value]));
    }
    const env: NodeJS.ProcessEnv = { ...process.env, PLINTH_REGISTRY_URL: path };
    delete env.PLINTH_ADMIN_KEY;
    if (adminKey !== null) env.PLINTH_ADMIN_KEY = adminKey;
    await runReplicas({ count: replicas, host: values.host ?? "127.0.0.1", port, args, env, haproxy: haproxy!, adapterAware: route === "adapter" });
    return;
  }
  const server = await createServer({
    registry: path, dataDir, adminKey,
    maxBatch, maxAdapters, maxWorkers, weights, ...limits,
    ...(process.env.PLINTH_REPLICA !== undefined && process.env.PLINTH_REPLICA !== "" ? { replica: process.env.PLINTH_REPLICA } : {}),
  });
  let url: string;
  try {
    url = await server.listen({ port, host: values.host ?? "127.0.0.1" });
  } catch (e) {
    await server.close();  // the port is taken: nothing may keep the process alive (a supervisor waits for it to exit)
    throw e;
  }
  console.error(`plinth serve: ${url}/v1 (OpenAI-compatible), dashboard ${url}/dashboard/`);
  const stop = () => {
    console.error("plinth serve: shutting down (running jobs are re-queued for the next start)");
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

/** `--adapters <dir>`: every adapter folder under dir, for one tenant; the first refused folder stops the start. */
async function registerAdapters(reg: Registry, dir: string, tenant: string, dataDir: string): Promise<void> {
  try {
    const folders = adapterFolders(dir);
    if (folders.length === 0) throw new UsageError(`--adapters ${dir}: no adapter folders (sub-folders with an adapter.json, as plinth adapt writes)`);
    for (const folder of folders) {
      const { entry, created } = await importAdapter(reg.catalog, { tenant, dir: folder, artifacts: openArtifactStore(dataDir) });
      console.error(`${created ? "registered" : "already registered"} adapter ${entry.base}:${entry.name} for tenant ${tenant} (${entry.method}, task ${entry.task}) from ${folder}`);
    }
  } catch (e) {
    if (e instanceof AdapterImportError) throw new Error(`--adapters: ${e.message}`);
    throw e;
  }
}
