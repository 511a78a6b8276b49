// A throwaway PostgreSQL cluster for tests: initdb into a temp folder, postgres on a unix socket
// only (no TCP port), fsync off, the C locale (so text sorts byte-wise, as SQLite sorts it), a
// fresh database per call of database(). Run as root, the server runs as the `postgres` user
// (PostgreSQL refuses root). Binaries: PLINTH_PG_BIN, else the newest /usr/lib/postgresql/*/bin,
// else initdb on PATH; none: pgBinaries() is null and the tests that need it skip, saying so
// (in CI, .ci/run installs them).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";

export function pgBinaries(): string | null {
  const env = process.env.PLINTH_PG_BIN;
  if (env !== undefined && env !== "") return existsSync(join(env, "initdb")) ? env : null;
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(root, versions[0], "bin");
  }
  try {
    const p = execFileSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" }).trim();
    return p === "" ? null : p.replace(/\/initdb$/, "");
  } catch {
    return null;
  }
}

/** Why PostgreSQL tests are skipped here, or null when they can run. */
export function pgSkipReason(): string | null {
  if (pgBinaries() !== null) return null;
  return "PostgreSQL server binaries (initdb, postgres) not found: install postgresql (apt-get install postgresql) or set PLINTH_PG_BIN; .ci/run installs them";
}

export interface PgCluster {
  /** A new empty database on the cluster: its postgres:// URL (unix socket). */
  database(name?: string): Promise<string>;
  /** The URL of the cluster's maintenance database. */
  readonly adminUrl: string;
  /** Stops the server (fast) and starts it again on the same data: a database restart. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

let counter = 0;

export async function startPostgres(): Promise<PgCluster> {
  const bin = pgBinaries();
  if (bin === null) throw new Error(pgSkipReason()!);
  const dir = mkdtempSync(join(tmpdir(), "plinth-pg-"));
  const data = join(dir, "data"), sock = dir;
  const asRoot = userInfo().uid === 0;
  // As root, everything runs as the postgres user (created by Debian's package), which must own the folder.
  const run = (cmd: string, args: string[]) => asRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] as const : [cmd, args] as const;
  if (asRoot) {
    const ids = execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim();
    const gid = execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim();
    chownSync(dir, Number(ids), Number(gid));
    chmodSync(dir, 0o700);
  }
  const [initCmd, initArgs] = run(join(bin, "initdb"), ["-D", data, "-U", "plinth", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"]);
  execFileSync(initCmd, initArgs, { stdio: ["ignore", "ignore", "pipe"] });
  const port = 5432;  // unix socket only: the port just names the socket file
  let child: ChildProcess | null = null;
  const startServer = async (): Promise<void> => {
    const [cmd, args] = run(join(bin, "postgres"), ["-D", data, "-k", sock, "-p", String(port), "-c", "listen_addresses=", "-c", "fsync=off",
      "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"]);
    child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.stderr!.on("data", (d: Buffer) => { log = (log + d.toString()).slice(-4000); });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const c = new pg.Client({ connectionString: url("postgres") });
      try {
        await c.connect();
        await c.end();
        return;
      } catch {
        await c.end().catch(() => {});
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`postgres did not start: ${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const url = (db: string) => `postgresql://plinth@localhost:${port}/${db}?host=${encodeURIComponent(sock)}`;
  const stopServer = async (): Promise<void> => {
    const c = child;
    if (c === null || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    // Fast shutdown (running transactions are rolled back), signalled to the postmaster itself:
    // runuser, in between as root, does not pass signals on.
    let pid = c.pid!;
    try {
      pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
    } catch {
      // not written yet: the process we started is the server
    }
    process.kill(pid, "SIGINT");
    await exited;
  };
  await startServer();
  return {
    adminUrl: url("postgres"),
    async database(name = `t${process.pid}_${++counter}`) {
      const c = new pg.Client({ connectionString: url("postgres") });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${name}"`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    async restart(downMs = 0) {
      await stopServer();
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await startServer();
    },
    async stop() {
      await stopServer();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
