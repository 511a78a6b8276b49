// The server tests again, through `plinth serve --replicas 3`: HAProxy in front (adapter-aware
// routing), three replica processes over one PostgreSQL registry and one data folder. The
// official openai client (models, completions, chat, embeddings, files, usage), tenancy and
// errors, fine-tuning jobs (kill -9 of the whole grid mid-job, then a new grid adopts or resumes
// the job; cancel), quotas and rate limits under concurrency, kill -9 mid-stream billing, and every
// OpenAI parameter honoured or refused (serve_openai_params). Each file
// runs in a child `node --test` with PLINTH_TEST_SERVE=replicas (helpers/test_server.ts starts
// the grid instead of an in-process server). Skipped, saying why, without PostgreSQL's server
// binaries or haproxy; CI installs both (.ci/run).
import { test } from "node:test";
import { pgSkipReason } from "./helpers/postgres.js";
import { rerunTestFile } from "./helpers/rerun.js";
import { haproxySkipReason } from "./helpers/test_server.js";

const skip = pgSkipReason() ?? haproxySkipReason();
if (skip !== null && process.env.PLINTH_REQUIRE_POSTGRES) throw new Error(`PLINTH_REQUIRE_POSTGRES is set (CI): ${skip}`);

for (const file of ["serve", "serve_errors", "serve_jobs", "serve_limits", "serve_openai_params"]) {
  test(`${file}.test through HAProxy over 3 replicas`, { skip: skip ?? false }, (t) => {
    const r = rerunTestFile(file, { PLINTH_TEST_SERVE: "replicas" }, "through 3 replicas");
    t.diagnostic(`${file}.test: ${r.pass} passed, ${r.skipped} skipped, ${r.seconds.toFixed(1)} s`);
  });
}
