// The dashboard end to end in Debian's headless Chromium (playwright-core): connect with a
// key; the lineage graph links the base to the tenant's adapters (and not another tenant's);
// a fine-tuning job's loss curve grows while it trains; evaluation and audit tables; the
// playground streams the same text the API gives; usage meters count the tokens.
// Without Chromium the test is skipped with one line saying what to install, unless
// PLINTH_REQUIRE_BROWSER=1 (CI), where that is a failure (test/helpers/browser.ts).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { Registry } from "../src/registry/index.js";
import { createServer, type PlinthServer } from "../src/serve/index.js";
import { makeFixture, writeDataset, type ServeFixture } from "./helpers/serve_fixture.js";
import { CHROMIUM_PATHS, findChromium, INSTALL_HINT } from "./helpers/browser.js";

const browser = findChromium();
let fx: ServeFixture, server: PlinthServer, url: string, profile: string, context: BrowserContext, page: Page;

test("the browser decision: present runs, absent skips with what to install, absent and required fails", () => {
  const at = (path: string | null) => (p: string) => p === path;
  assert.deepEqual(findChromium({ env: {}, exists: at("/usr/bin/chromium") }), { action: "run", executablePath: "/usr/bin/chromium" });
  assert.deepEqual(findChromium({ env: {}, exists: at("/usr/bin/chromium-browser") }), { action: "run", executablePath: "/usr/bin/chromium-browser" });
  assert.deepEqual(findChromium({ env: { PLINTH_CHROMIUM: "/opt/c/chrome" }, exists: at("/opt/c/chrome") }), { action: "run", executablePath: "/opt/c/chrome" });
  const skip = findChromium({ env: {}, exists: at(null) });
  assert.equal(skip.action, "skip");
  assert.ok(skip.action === "skip" && skip.message.includes(INSTALL_HINT) && CHROMIUM_PATHS.every((p) => skip.message.includes(p)) && !skip.message.includes("\n"));
  const fail = findChromium({ env: { PLINTH_REQUIRE_BROWSER: "1" }, exists: at(null) });
  assert.ok(fail.action === "fail" && fail.message.includes(INSTALL_HINT) && fail.message.includes("PLINTH_REQUIRE_BROWSER=1"));
  assert.equal(findChromium({ env: { PLINTH_REQUIRE_BROWSER: "1" }, exists: at("/usr/bin/chromium") }).action, "run");
});

if (browser.action === "run") before(async () => {
  fx = await makeFixture();
  writeDataset(join(fx.root, "train.jsonl"), 40);
  const reg = await Registry.open(fx.dbPath);
  await reg.results.addEvaluation("acme", "tiny:style", "toy", { accuracy: 0.75, macro_f1: 0.7 });
  await reg.results.addAudit("acme", "tiny:style", "inherited-bias", false, { gap: 0.31 });
  await reg.results.addAudit("globex", "tiny:secret", "globex-only-audit", true, {});
  await reg.close();
  server = await createServer({ registry: fx.dbPath });
  url = await server.listen({ port: 0 });
  profile = mkdtempSync(join(tmpdir(), "plinth-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: browser.executablePath, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
  page = await context.newPage();
});
after(async () => {
  await context?.close();
  await server?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await fx?.cleanup();
});

test("the dashboard shows lineage, live loss curves, evaluations, audits, a playground and usage", { skip: browser.action === "skip" ? browser.message : false }, async () => {
  if (browser.action === "fail") assert.fail(browser.message);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
  await page.goto(`${url}/dashboard/`);
  await page.fill("#key", fx.keyA);
  await page.click("#connect button");
  await page.waitForSelector("#app:not([hidden])");
  assert.match(await page.textContent("#whoami") ?? "", /tenant acme/);

  // Lineage: base and adapter nodes joined by an edge; nothing of the other tenant.
  await page.waitForSelector('#lineage g.node[data-id="tiny:style"]');
  assert.equal(await page.locator('#lineage path.edge[data-from="tiny"][data-to="tiny:style"]').count(), 1);
  assert.equal(await page.locator('#lineage g.node[data-id="tiny:secret"]').count(), 0);

  // Evaluations and audits (the tenant's own).
  assert.match(await page.textContent("#eval-rows") ?? "", /tiny:style.*toy.*accuracy 0\.750/s);
  const audits = await page.textContent("#audit-rows") ?? "";
  assert.match(audits, /inherited-bias.*fail/s);
  assert.ok(!audits.includes("globex-only-audit"));

  // A job trains; its loss curve in the page gains points while it runs.
  const file = await client.files.create({ file: await toFile(readFileSync(join(fx.root, "train.jsonl")), "train.jsonl"), purpose: "fine-tune" });
  const job = await client.fineTuning.jobs.create({
    model: "tiny", training_file: file.id, suffix: "dash",
    method: { type: "lora", lora: { hyperparameters: { steps: 400, batch_size: 8, rank: 2, max_test: 8 } } } as unknown as OpenAI.FineTuning.JobCreateParams["method"],
  });
  await page.click(`#job-rows tr[data-job="${job.id}"]`, { timeout: 10_000 });
  await page.waitForFunction(() => Number(document.querySelector("#loss-path")?.getAttribute("data-points") ?? 0) >= 2, undefined, { timeout: 60_000 });
  const early = Number(await page.getAttribute("#loss-path", "data-points"));
  const earlyStatus = await page.textContent("#job-detail-status");
  await page.waitForFunction((n) => Number(document.querySelector("#loss-path")?.getAttribute("data-points") ?? 0) > n, early, { timeout: 60_000 });
  assert.equal(earlyStatus, "running");
  await page.waitForFunction(() => document.querySelector("#job-detail-status")?.textContent === "succeeded", undefined, { timeout: 90_000 });
  await page.waitForSelector('#lineage g.node[data-id="tiny:dash"]', { timeout: 10_000 }).catch(async () => {
    await page.click("#connect button");  // models refresh on connect
    await page.waitForSelector('#lineage g.node[data-id="tiny:dash"]', { timeout: 10_000 });
  });

  // Playground: streamed greedy text equals the API's.
  const expected = (await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 8, temperature: 0 })).choices[0].message.content;
  await page.selectOption("#play-model", "tiny");
  await page.fill("#play-max", "8");
  await page.fill("#play-temp", "0");
  await page.fill("#play-prompt", "hello");
  await page.click("#play-go");
  await page.waitForSelector('#play-out[data-done="true"]', { timeout: 20_000 });
  assert.equal(await page.textContent("#play-out"), expected);

  // Usage meters count this key's tokens (the API call and the playground's).
  await page.waitForFunction(() => Number(document.querySelector("#meters .used")?.textContent ?? 0) > 0);
  const used = Number(await page.textContent("#meters .used"));
  const usage = await (await fetch(`${url}/v1/usage`, { headers: { authorization: `Bearer ${fx.keyA}` } })).json() as { keys: { tokens_used: number }[] };
  assert.ok(used > 0 && used <= usage.keys[0].tokens_used);
  assert.match(await page.textContent("#usage-rows") ?? "", /fine_tuning/);
});
