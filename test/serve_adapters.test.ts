// Registering adapters made by `plinth adapt` with the server: the admin route and
// `plinth serve --adapters <dir> --tenant`. Each adapter is checked against its registered base
// by the hash of the base's weights, copied into the server's data folder (the server keeps
// serving it after the source folder is gone), owned by one tenant, and then called through the
// API like an adapter a fine-tuning job made.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadGPT } from "../src/models/gpt/index.js";
import { Registry } from "../src/registry/index.js";
import { sha256File } from "../src/adapt/artifact.js";
import { createServer, type PlinthServer } from "../src/serve/index.js";
import { makeBase, makeFixture, makeLoRAAdapter, type ServeFixture } from "./helpers/serve_fixture.js";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const ADMIN = "admin-secret";

let fx: ServeFixture;
/** An adapter made for a base that is not the registered "tiny". */
let foreignAdapter: string;
let foreignBase: string;

before(async () => {
  fx = await makeFixture();
  foreignBase = join(fx.root, "foreign-base");
  makeBase(foreignBase, { seed: 7, trainSteps: 0 });
  foreignAdapter = join(fx.root, "foreign-lora");
  makeLoRAAdapter(foreignBase, loadGPT(foreignBase), foreignAdapter, 3);
});
after(() => fx.cleanup());

const completion = { prompt: "the movie was", max_tokens: 6, temperature: 0, logprobs: 1 };

async function complete(server: PlinthServer, key: string, model: string) {
  const r = await server.app.inject({ method: "POST", url: "/v1/completions", headers: { authorization: `Bearer ${key}` }, payload: { ...completion, model } });
  return { status: r.statusCode, body: r.json() as { choices: { text: string; logprobs: { token_logprobs: number[] } }[]; error?: { code: string } } };
}

test("POST /v1/plinth/adapters registers a plinth adapt folder for a tenant, by base hash, as a server-owned copy", async () => {
  const dataDir = join(fx.root, "data");
  const server = await createServer({ registry: fx.dbPath, dataDir, adminKey: ADMIN, runJobs: false });
  try {
    const register = async (body: Record<string, unknown>, key: string | null = ADMIN) => {
      const r = await server.app.inject({ method: "POST", url: "/v1/plinth/adapters", headers: key === null ? {} : { authorization: `Bearer ${key}` }, payload: body });
      return { status: r.statusCode, body: r.json() as Record<string, unknown> & { error?: { code: string; param: string; message: string } } };
    };
    // A folder as plinth adapt leaves it, which goes away once registered.
    const made = join(fx.root, "made", "sentiment-lora");
    cpSync(fx.adapterDirs[0], made, { recursive: true });

    assert.equal((await register({ tenant: "acme", dir: made }, null)).status, 401, "no key at all");
    assert.equal((await register({ tenant: "acme", dir: made }, fx.keyA)).body.error?.code, "admin_only", "a tenant's key is not the admin key");

    const ok = await register({ tenant: "acme", dir: made });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.id, "tiny:sentiment-lora");  // named after the folder, bound to the base with its hash
    assert.equal(ok.body.tenant, "acme");
    assert.equal(ok.body.created, true);
    const entry = (await server.registry.catalog.adapter("acme", "tiny", "sentiment-lora"))!;
    // Stored by content: the registered folder is the checkout of a tree in the data folder's artifact store.
    assert.equal(dirname(entry.dir), join(dataDir, "trees"), entry.dir);
    assert.equal(server.artifacts.treeOf(entry.dir)?.length, 64);
    assert.equal(sha256File(join(entry.dir, "adapter.safetensors")), sha256File(join(made, "adapter.safetensors")));
    assert.equal(entry.baseSha256, (await server.registry.catalog.model("tiny"))!.sha256);

    // The same folder again is a no-op; the same name with other weights is refused.
    assert.equal((await register({ tenant: "acme", dir: made })).body.created, false);
    const taken = await register({ tenant: "acme", dir: fx.adapterDirs[1], name: "sentiment-lora" });
    assert.equal(taken.status, 400);
    assert.equal(taken.body.error?.param, "name");

    // Another tenant, an explicit name and base.
    const other = await register({ tenant: "globex", dir: fx.adapterDirs[1], name: "second", base: "tiny" });
    assert.equal(other.status, 200, JSON.stringify(other.body));
    assert.equal(other.body.id, "tiny:second");

    // Base checks: none registered with the adapter's base hash; a named base with other weights; no such base.
    const unknown = await register({ tenant: "acme", dir: foreignAdapter });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error?.code, "model_not_found");
    assert.match(unknown.body.error!.message, /no registered base has those weights/);
    const mismatch = await register({ tenant: "acme", dir: foreignAdapter, base: "tiny" });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.body.error?.param, "base");
    assert.match(mismatch.body.error!.message, /was made for base sha256 [0-9a-f]{64} \(gpt2\), but 'tiny' has sha256 [0-9a-f]{64}/);
    assert.equal((await register({ tenant: "acme", dir: made, base: "nope" })).body.error?.code, "model_not_found");
    const notAdapter = await register({ tenant: "acme", dir: fx.root });
    assert.equal(notAdapter.status, 400);
    assert.equal(notAdapter.body.error?.param, "dir");
    assert.equal((await register({ tenant: "bad tenant!", dir: made })).body.error?.param, "tenant");
    assert.equal((await register({ dir: made })).body.error?.code, "missing_required_parameter");

    // Served from the copy: the source folder is gone, and the adapter answers as the fixture's
    // "tiny:style" (the same weights) does, not as the bare base.
    rmSync(join(fx.root, "made"), { recursive: true, force: true });
    const imported = await complete(server, fx.keyA, "tiny:sentiment-lora");
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    const style = await complete(server, fx.keyA, "tiny:style");
    const base = await complete(server, fx.keyA, "tiny");
    assert.deepEqual(imported.body.choices[0].logprobs.token_logprobs, style.body.choices[0].logprobs.token_logprobs);
    assert.notDeepEqual(imported.body.choices[0].logprobs.token_logprobs, base.body.choices[0].logprobs.token_logprobs);
    // Owned by acme only.
    assert.equal((await complete(server, fx.keyB, "tiny:sentiment-lora")).status, 404);
    assert.equal((await complete(server, fx.keyB, "tiny:second")).status, 200);
  } finally {
    await server.close();
  }
});

test("plinth serve --adapters <dir> --tenant registers every adapter folder at start, and refuses one without its base", async () => {
  const dir = join(fx.root, "runs-adapters");
  mkdirSync(dir, { recursive: true });
  cpSync(fx.adapterDirs[0], join(dir, "news-lora"), { recursive: true });
  cpSync(fx.adapterDirs[1], join(dir, "spam-lora"), { recursive: true });
  mkdirSync(join(dir, "notes"));  // not an adapter: skipped

  const child = spawn(process.execPath, [main, "serve", "--registry", fx.dbPath, "--adapters", dir, "--tenant", "globex", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /plinth serve: (http:\/\/\S+)\/v1/.exec(stderr);
        if (m !== null) resolve(m[1]);
      });
      child.once("exit", (code) => reject(new Error(`plinth serve exited with ${code}: ${stderr}`)));
    });
    assert.match(stderr, /registered adapter tiny:news-lora for tenant globex \(lora, task toy\)/);
    assert.match(stderr, /registered adapter tiny:spam-lora for tenant globex/);
    const call = (key: string, model: string) => fetch(`${url}/v1/completions`, {
      method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify({ ...completion, model }),
    });
    const r = await call(fx.keyB, "tiny:news-lora");
    assert.equal(r.status, 200, await r.clone().text());
    const body = await r.json() as { choices: { text: string }[] };
    assert.ok(body.choices[0].text.length > 0);
    assert.equal((await call(fx.keyA, "tiny:news-lora")).status, 404, "another tenant's adapter");
  } finally {
    child.kill("SIGTERM");
    if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
  }
  const reg = await Registry.open(fx.dbPath);
  try {
    const names = (await reg.catalog.adapters("globex")).map((a) => a.name);
    assert.ok(names.includes("news-lora") && names.includes("spam-lora"), names.join(","));
    assert.ok((await reg.catalog.adapters("globex")).every((a) => !a.dir.startsWith(dir)), "the server keeps its own copies");
  } finally {
    await reg.close();
  }

  // Again at the next start: already registered (--create-key makes the call return once registered).
  const again = spawnSync(process.execPath, [main, "serve", "--registry", fx.dbPath, "--adapters", dir, "--tenant", "globex", "--create-key", "globex"], { encoding: "utf8" });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /already registered adapter tiny:news-lora/);

  // An adapter whose base is not registered stops the start with the hashes explained.
  const bad = join(fx.root, "bad-adapters");
  cpSync(foreignAdapter, join(bad, "foreign"), { recursive: true });
  const refused = spawnSync(process.execPath, [main, "serve", "--registry", fx.dbPath, "--adapters", bad, "--create-key", "x"], { encoding: "utf8" });
  assert.equal(refused.status, 1, refused.stderr);
  assert.match(refused.stderr, /--adapters: Adapter .*foreign was made for a gpt2 base with sha256 [0-9a-f]{64}, and no registered base has those weights/);
  const usage = spawnSync(process.execPath, [main, "serve", "--registry", fx.dbPath, "--tenant", "acme"], { encoding: "utf8" });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--tenant names the owner of --adapters/);
  assert.ok(!existsSync(join(fx.root, "adapters", "default")), "nothing is copied for a refused adapter");
});
