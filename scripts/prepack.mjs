#!/usr/bin/env node
// Before `npm pack` / `npm publish`: makes dist/src match src/. Compiles the TypeScript when
// an output is missing or older than its source, and removes outputs whose source is gone
// (a moved or deleted module must not ship). Quick when dist/ is already current.
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "src"), out = join(root, "dist", "src");
const walk = (dir, acc = []) => {
  if (!existsSync(dir)) return acc;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, acc);
    else acc.push(p);
  }
  return acc;
};
const sources = walk(src).filter((p) => p.endsWith(".ts") && !p.endsWith(".d.ts"));
const outputOf = (p) => join(out, relative(src, p)).replace(/\.ts$/, ".js");
const stale = sources.filter((p) => !existsSync(outputOf(p)) || statSync(outputOf(p)).mtimeMs < statSync(p).mtimeMs);
if (stale.length > 0) {
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  if (!existsSync(tsc)) {
    console.error("prepack: TypeScript is not installed; run `npm install` first");
    process.exit(1);
  }
  console.error(`prepack: compiling (${stale.length} of ${sources.length} modules changed since dist/ was built)`);
  const r = spawnSync(process.execPath, [tsc, "-p", root], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const expected = new Set(sources.map((p) => relative(src, p).replace(/\.ts$/, "")));
for (const p of walk(out)) {
  const stem = relative(out, p).replace(/(\.d\.ts|\.js\.map|\.js)$/, "");
  if (!expected.has(stem) && !existsSync(join(src, `${stem}.d.ts`))) {
    rmSync(p);
    console.error(`prepack: removed ${relative(root, p)} (its source is gone)`);
  }
}
