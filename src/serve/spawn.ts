/**
 * `plinth serve` in its own process (the real CLI), resolved once it prints the URL it
 * listens on: for load tests and crash tests that must kill and restart the server.
 *
 *     const { child, url } = await spawnServe(["--registry", db, "--port", "0"]);
 *
 * `env`: the server's environment (default this process's), e.g. PLINTH_ADMIN_KEY.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));

export function spawnServe(args: string[], { env = process.env }: { env?: NodeJS.ProcessEnv } = {}): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [cli, "serve", ...args], { stdio: ["ignore", "ignore", "pipe"], env });
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /plinth serve: (http:\/\/[^/\s]+)\/v1/.exec(err);
      if (m) resolve({ child, url: m[1] });
    });
    child.on("exit", (code) => reject(new Error(`plinth serve exited with ${code} before listening:\n${err}`)));
  });
}
