// The server tests again, with the registry on PostgreSQL: the official openai client (models,
// completions, chat, embeddings, usage), tenancy and errors, fine-tuning jobs (a worker's
// registry writes, kill -9 of the server mid-job, cancel), quotas under concurrency. Each file
// runs in a child `node --test` with PLINTH_TEST_REGISTRY=postgres, which makes the serve
// fixture put its registry on a throwaway cluster (helpers/postgres.ts). Skipped, saying why,
// where the PostgreSQL server binaries are missing; CI installs them (.ci/run).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pgSkipReason } from "./helpers/postgres.js";

const skip = pgSkipReason();
if (skip !== null && process.env.PLINTH_REQUIRE_POSTGRES) throw new Error(`PLINTH_REQUIRE_POSTGRES is set (CI): ${skip}`);

for (const file of ["serve", "serve_errors", "serve_jobs", "serve_limits"]) {
  test(`${file}.test on PostgreSQL`, { skip: skip ?? false }, () => {
    const r = spawnSync(process.execPath, ["--test", join(import.meta.dirname, `${file}.test.js`)], {
      // Without NODE_TEST_CONTEXT the child reports as a runner of its own (TAP on stdout), not into this one.
      env: { ...process.env, PLINTH_TEST_REGISTRY: "postgres", NODE_TEST_CONTEXT: undefined }, encoding: "utf8", timeout: 300_000,
    });
    const summary = /# pass (\d+)[\s\S]*# fail (\d+)/.exec(r.stdout);
    assert.equal(r.status, 0, `${file}.test failed on PostgreSQL:\n${r.stdout.split("\n").filter((l) => /^not ok|error|Error|expected|actual/.test(l)).slice(0, 40).join("\n")}\n${r.stderr.slice(-2000)}`);
    assert.ok(summary !== null && Number(summary[1]) > 0 && Number(summary[2]) === 0, r.stdout.slice(-500));
  });
}
