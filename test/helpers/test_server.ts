// The server the serving tests talk to. By default the server runs in the test's process
// (createServer + listen). With PLINTH_TEST_SERVE=replicas the same tests run against
// `plinth serve --replicas 3`: three replica processes over the fixture's PostgreSQL registry and
// data folder, with HAProxy in front; the options map to the command's flags (the admin key
// travels in PLINTH_ADMIN_KEY, as in production). Either way the test gets the URL, a registry
// handle on the same database, and close().
import { type ChildProcess, execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { LIMIT_FLAGS } from "../../src/cli/serve_limits.js";
import { Registry } from "../../src/registry/index.js";
import { type PlinthServer, type ServerOptions, createServer } from "../../src/serve/index.js";
import { spawnServe } from "../../src/serve/spawn.js";
import type { ServeFixture } from "./serve_fixture.js";

/** PLINTH_TEST_SERVE=replicas: the server tests go through HAProxy over 3 replicas (the registry on PostgreSQL). */
export const replicaMode = process.env.PLINTH_TEST_SERVE === "replicas";
export const REPLICAS = 3;

export type TestServerOptions = Omit<ServerOptions, "registry" | "dataDir">;

export interface TestServer {
  url: string;
  /** The registry the server uses (the in-process server's own, or a connection to the grid's database). */
  registry: Registry;
  /** The in-process server; null through the replicas. */
  server: PlinthServer | null;
  close(): Promise<void>;
}

/**
 * The `plinth serve` flags for server options (the limit flags, --workers); what has no flag is an
 * error. runJobs has none: it only skips re-adopting running jobs at start, and a spawned server
 * always does that (a fresh registry has none).
 */
export function serveFlags(opts: TestServerOptions): string[] {
  const flags: string[] = [];
  const { adminKey: _a, runJobs: _r, maxWorkers, ...rest } = opts;
  if (maxWorkers !== undefined) flags.push("--workers", String(maxWorkers));
  const left = new Map<string, unknown>(Object.entries(rest).flatMap(([k, v]) =>
    v !== null && typeof v === "object" ? Object.entries(v).map(([kk, vv]) => [`${k}.${kk}`, vv] as [string, unknown]) : [[k, v] as [string, unknown]]));
  for (const f of LIMIT_FLAGS) {
    const at = f.section === "top" ? f.key : `${f.section}.${f.key}`;
    if (!left.has(at)) continue;
    const v = left.get(at) as number;
    flags.push(`--${f.flag}`, String(f.scale !== undefined ? v / f.scale : v));
    left.delete(at);
  }
  if (left.size > 0) throw new Error(`startTestServer: no plinth serve flag for ${[...left.keys()].join(", ")}`);
  return flags;
}

/** `plinth serve` on the fixture in its own process: one server, or the replica grid in replica mode. */
export function spawnTestServe(fx: Pick<ServeFixture, "dbPath" | "dataDir">, opts: TestServerOptions = {}): Promise<{ child: ChildProcess; url: string }> {
  const env = { ...process.env };
  delete env.PLINTH_ADMIN_KEY;
  if (opts.adminKey) env.PLINTH_ADMIN_KEY = opts.adminKey;
  return spawnServe(["--registry", fx.dbPath, "--data-dir", fx.dataDir, "--port", "0",
    ...(replicaMode ? ["--replicas", String(REPLICAS)] : []), ...serveFlags(opts)], { env });
}

/** Why tests through HAProxy are skipped here, or null when they can run. */
export function haproxySkipReason(): string | null {
  try {
    execFileSync(process.env.PLINTH_HAPROXY || "haproxy", ["-v"], { stdio: "ignore" });
    return null;
  } catch {
    return "haproxy not found: install it (apt-get install haproxy) or set PLINTH_HAPROXY; .ci/run installs it";
  }
}

/** Whether a process runs. */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The processes whose parent is pid (from /proc). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * kill -9 of what spawnTestServe started, as when its machine dies: the server, or the grid's
 * supervisor with its replicas and HAProxy. Job workers (the replicas' children) are left to the
 * test. Resolves once the server (or supervisor) has exited.
 */
export async function killServe(child: ChildProcess): Promise<void> {
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once("exit", () => r()));
  const direct = replicaMode ? childrenOf(child.pid!) : [];
  child.kill("SIGKILL");
  for (const pid of direct) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await exited;
}

/** Stops a spawned server (or grid) and waits for it. */
export async function stopServe(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

/** The server for a test file: in this process, or (PLINTH_TEST_SERVE=replicas) HAProxy over 3 replicas. */
export async function startTestServer(fx: ServeFixture, opts: TestServerOptions = {}): Promise<TestServer> {
  if (!replicaMode) {
    const server = await createServer({ registry: fx.dbPath, dataDir: fx.dataDir, ...opts });
    const url = await server.listen({ port: 0 });
    return { url, registry: server.registry, server, close: () => server.close() };
  }
  if (fx.engine !== "postgres") throw new Error("startTestServer: replica mode needs the fixture's registry on PostgreSQL");
  const { child, url } = await spawnTestServe(fx, opts);
  // The balancer answers, and a replica behind it (its name in /healthz).
  const health = await (await fetch(`${url}/healthz`)).json() as { replica: string | null };
  if (!/^r\d+$/.test(health.replica ?? "")) throw new Error(`startTestServer: ${url} is not the replicas' balancer: /healthz says ${JSON.stringify(health)}`);
  const registry = await Registry.open(fx.dbPath);
  return {
    url, registry, server: null,
    async close() {
      await registry.close();
      await stopServe(child);
    },
  };
}
