#!/usr/bin/env node
// Makes `npm start` / `npm test` / `npm run bench` work straight after cloning:
// installs the pinned dependencies (which builds the native addon with node-gyp)
// when they are missing, then compiles the TypeScript.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`setup: \`${cmd} ${args.join(" ")}\` failed with exit code ${r.status}`);
    process.exit(r.status ?? 1);
  }
};
if (!existsSync(join(root, "node_modules", "typescript")) || !existsSync(join(root, "node_modules", "node-addon-api"))) {
  console.error("setup: installing dependencies (npm ci) and building the native addon…");
  run("npm", ["ci", "--no-audit", "--no-fund"]);
} else if (!existsSync(join(root, "build", "Release", "plinth_native.node"))) {
  console.error("setup: building the native addon…");
  run("npm", ["run", "install"]);
}
run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", root]);
