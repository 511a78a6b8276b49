// The layering check (npm run check:layers, .dependency-cruiser.cjs): the real tree passes, and
// a copy of it with imports planted against the layer order fails, naming each offending import.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));  // from dist/test
const cruiser = join(root, "node_modules", "dependency-cruiser", "bin", "dependency-cruise.mjs");

/** The same command as `npm run check:layers`, in a given tree. */
function checkLayers(cwd: string) {
  const r = spawnSync(process.execPath, [cruiser, "src", "bench", "web", "--config", ".dependency-cruiser.cjs"], { cwd, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test("the source tree keeps its layers: no import runs back up, no cycle between folders", () => {
  const r = checkLayers(root);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /no dependency violations found/);
});

test("a planted back-import fails the check, naming the rule and the import", () => {
  const copy = mkdtempSync(join(tmpdir(), "plinth-layers-"));
  try {
    for (const entry of ["src", "bench", "web", "tsconfig.json", "package.json", ".dependency-cruiser.cjs"]) cpSync(join(root, entry), join(copy, entry), { recursive: true });
    symlinkSync(join(root, "node_modules"), join(copy, "node_modules"), "dir");
    // tensor reaching up to the server (a type-only import counts too), adaptation reaching into
    // evaluation, and the job worker importing a route module.
    writeFileSync(join(copy, "src", "tensor", "planted.ts"), 'import type { PlinthServer } from "../serve/index.js";\nexport type Planted = PlinthServer;\n');
    writeFileSync(join(copy, "src", "adapt", "planted.ts"), 'export { perplexity } from "../eval/perplexity.js";\n');
    writeFileSync(join(copy, "src", "serve", "planted.ts"), 'export const load = () => import("./routes/jobs.js");\n');
    const r = checkLayers(copy);
    assert.notEqual(r.status, 0, r.output);
    assert.match(r.output, /layer-tensor-tokenizer: src\/tensor\/planted\.ts → src\/serve\/index\.ts/);
    assert.match(r.output, /adapt-below-eval: src\/adapt\/planted\.ts → src\/eval\/perplexity\.ts/);
    assert.match(r.output, /routes-on-top-of-serve: src\/serve\/planted\.ts → src\/serve\/routes\/jobs\.ts/);
    // tensor → serve → … → tensor is also a cycle between folders.
    assert.match(r.output, /no-folder-cycles: src\/tensor →\s+src\/serve →\s+src\/tensor/);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});
