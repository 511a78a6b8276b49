// Re-runs a test file in a child `node --test` with some environment set (the server tests on
// PostgreSQL, through the replicas): the child must exit 0 with pass > 0 and fail 0. Returns how
// long it took, and its counts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";

export function rerunTestFile(file: string, env: NodeJS.ProcessEnv, what: string): { seconds: number; pass: number; skipped: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ["--test", join(import.meta.dirname, "..", `${file}.test.js`)], {
    // Without NODE_TEST_CONTEXT the child reports as a runner of its own (TAP on stdout), not into this one.
    env: { ...process.env, ...env, NODE_TEST_CONTEXT: undefined }, encoding: "utf8", timeout: 400_000,
  });
  const summary = /# pass (\d+)[\s\S]*# fail (\d+)[\s\S]*# skipped (\d+)/.exec(r.stdout);
  assert.equal(r.status, 0, `${file}.test failed ${what}:\n${r.stdout.split("\n").filter((l) => /^not ok|error|Error|expected|actual/.test(l)).slice(0, 40).join("\n")}\n${r.stderr.slice(-2000)}`);
  assert.ok(summary !== null && Number(summary[1]) > 0 && Number(summary[2]) === 0, r.stdout.slice(-500));
  return { seconds: (performance.now() - t0) / 1000, pass: Number(summary[1]), skipped: Number(summary[3]) };
}
