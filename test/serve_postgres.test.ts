// The server tests again, with the registry on PostgreSQL: the official openai client (models,
// completions, chat, embeddings, usage), tenancy and errors, fine-tuning jobs (a worker's
// registry writes, kill -9 of the server mid-job, cancel), quotas under concurrency. Each file
// runs in a child `node --test` with PLINTH_TEST_REGISTRY=postgres, which makes the serve
// fixture put its registry on a throwaway cluster (helpers/postgres.ts). Skipped, saying why,
// where the PostgreSQL server binaries are missing; CI installs them (.ci/run).
import { test } from "node:test";
import { pgSkipReason } from "./helpers/postgres.js";
import { rerunTestFile } from "./helpers/rerun.js";

const skip = pgSkipReason();
if (skip !== null && process.env.PLINTH_REQUIRE_POSTGRES) throw new Error(`PLINTH_REQUIRE_POSTGRES is set (CI): ${skip}`);

for (const file of ["serve", "serve_errors", "serve_jobs", "serve_limits"]) {
  test(`${file}.test on PostgreSQL`, { skip: skip ?? false }, () => {
    rerunTestFile(file, { PLINTH_TEST_REGISTRY: "postgres" }, "on PostgreSQL");
  });
}
