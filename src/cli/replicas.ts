/**
 * `plinth serve --replicas N`: N replica processes of `plinth serve` on this machine, over one
 * PostgreSQL registry and one data folder, with HAProxy in front (src/serve/balancer.ts) on
 * --host:--port; the replicas listen on 127.0.0.1 at the next N ports. A replica that exits is
 * started again after a second; stopping this process (SIGINT, SIGTERM) stops the balancer and
 * every replica. For trying the grid on one machine; docs/scaling.md says how to run it on several.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { haproxyConfig } from "../serve/balancer.js";
import { UsageError } from "./args.js";

const cli = fileURLToPath(new URL("./main.js", import.meta.url));

/** The haproxy binary: PLINTH_HAPROXY, else haproxy on PATH (Debian: apt-get install haproxy). */
export function haproxyBinary(env: NodeJS.ProcessEnv = process.env): string {
  const bin = env.PLINTH_HAPROXY !== undefined && env.PLINTH_HAPROXY !== "" ? env.PLINTH_HAPROXY : "haproxy";
  try {
    execFileSync(bin, ["-v"], { stdio: "ignore" });
  } catch {
    throw new UsageError(`--replicas needs HAProxy in front of the replicas, and ${JSON.stringify(bin)} does not run: install it (apt-get install -y haproxy) or set PLINTH_HAPROXY to its path`);
  }
  return bin;
}

/** A port free on 127.0.0.1 now (the system's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ReplicaSpec {
  count: number;
  /** Where HAProxy listens. */
  host: string;
  port: number;
  /** `plinth serve` arguments every replica gets (no --port, --host, --registry or secrets). */
  args: string[];
  /** The environment of the replicas (the registry URL and the admin key travel here, not in ps). */
  env: NodeJS.ProcessEnv;
  haproxy: string;
  adapterAware: boolean;
}

export async function runReplicas(spec: ReplicaSpec): Promise<void> {
  const ports: number[] = [];
  for (let i = 1; i <= spec.count; i++) ports.push(spec.port === 0 ? await freePort() : spec.port + i);
  const bindPort = spec.port === 0 ? await freePort() : spec.port;
  const names = ports.map((_, i) => `r${i + 1}`);
  const dir = mkdtempSync(join(tmpdir(), "plinth-haproxy-"));
  const cfg = join(dir, "haproxy.cfg");
  writeFileSync(cfg, haproxyConfig({
    bind: { host: spec.host, port: bindPort }, adapterAware: spec.adapterAware,
    replicas: names.map((name, i) => ({ name, host: "127.0.0.1", port: ports[i] })),
  }));

  let stopping = false;
  const children = new Map<string, ChildProcess>();
  const log = (m: string) => console.error(`plinth serve --replicas: ${m}`);
  // A replica that exits before it listens, three times in a row, will not start (a port taken, a
  // bad flag): everything stops instead of restarting it forever.
  const failedStarts = names.map(() => 0);
  let giveUp: ((code: number) => Promise<void>) | null = null;
  let gaveUp = false;
  let startFailed: () => void = () => {};
  const failed = new Promise<"failed">((r) => { startFailed = () => r("failed"); });
  const readyAt = names.map(() => (): void => {});
  const ready = names.map((_, i) => new Promise<void>((r) => { readyAt[i] = r; }));

  const startReplica = (i: number): void => {
    const name = names[i];
    const child = spawn(process.execPath, [cli, "serve", ...spec.args, "--port", String(ports[i]), "--host", "127.0.0.1"], {
      stdio: ["ignore", "inherit", "pipe"], env: { ...spec.env, PLINTH_REPLICA: name },
    });
    children.set(name, child);
    let seen = "", listening = false;
    child.stderr!.on("data", (d: Buffer) => {
      const text = d.toString();
      seen += text;
      if (!listening && /plinth serve: http:\/\//.test(seen)) {
        listening = true;
        failedStarts[i] = 0;
        readyAt[i]();
      }
      for (const line of text.split("\n")) if (line !== "") process.stderr.write(`[${name}] ${line.replace(/^plinth serve: /, "listening on ")}\n`);
    });
    child.on("exit", (code, signal) => {
      if (children.get(name) === child) children.delete(name);
      if (stopping) return;
      if (!listening && ++failedStarts[i] >= 3) {
        log(`replica ${name} exited (${signal ?? `code ${code}`}) before listening, 3 times in a row; stopping`);
        gaveUp = true;
        startFailed();
        void giveUp?.(1);
        return;
      }
      log(`replica ${name} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); starting it again`);
      setTimeout(() => (stopping ? undefined : startReplica(i)), 1000);
    });
  };

  // Stopped while starting: the replicas started so far stop too.
  const early = (): void => {
    stopping = true;
    for (const c of children.values()) c.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.once("SIGINT", early);
  process.once("SIGTERM", early);
  names.forEach((_, i) => startReplica(i));
  // HAProxy starts once every replica listens (its health checks would otherwise mark them down).
  if ((await Promise.race([Promise.all(ready), failed])) === "failed") {
    stopping = true;
    for (const c of children.values()) c.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  }
  const balancer = spawn(spec.haproxy, ["-W", "-db", "-f", cfg], { stdio: ["ignore", "inherit", "inherit"] });
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    log("stopping the balancer and every replica (running jobs are re-queued for the next start)");
    const exits = [...children.values(), ...(balancer.exitCode === null ? [balancer] : [])]
      .filter((c) => c.exitCode === null && c.signalCode === null)
      .map((c) => new Promise((r) => c.once("exit", r)));
    for (const c of children.values()) c.kill("SIGTERM");
    balancer.kill("SIGTERM");
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 15_000))]);
    for (const c of children.values()) if (c.exitCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  balancer.on("exit", (code, signal) => {
    if (stopping) return;
    log(`haproxy exited (${signal ?? `code ${code}`}); stopping`);
    void stop(1);
  });
  giveUp = stop;
  if (gaveUp) return void stop(1);
  process.off("SIGINT", early);
  process.off("SIGTERM", early);
  process.once("SIGINT", () => void stop(0));
  process.once("SIGTERM", () => void stop(0));
  // Listening once HAProxy has bound its port (it says nothing on success: the port answers).
  const url = `http://${spec.host.includes(":") ? `[${spec.host}]` : spec.host}:${bindPort}`;
  for (let t = 0; ; t++) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not bound yet
    }
    if (balancer.exitCode !== null || t > 200) return void stop(1);
    await new Promise((r) => setTimeout(r, 50));
  }
  console.error(`plinth serve: ${url}/v1 (HAProxy over ${spec.count} replicas: ${names.map((n, i) => `${n} 127.0.0.1:${ports[i]}`).join(", ")}; ${spec.adapterAware ? "adapter-aware routing" : "round robin"})`);
}
