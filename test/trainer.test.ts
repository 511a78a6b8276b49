// The trainer: exact resume, kill -9 safety, clean shutdown on SIGTERM, and clear errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MemoryTokens } from "../src/data/tokens.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { clm, languageModeling } from "../src/train/language.js";
import { Trainer, type StepRecord, type TrainerOptions } from "../src/train/trainer.js";
import { listCheckpoints, loadCheckpoint } from "../src/train/checkpoint.js";
import { Rng } from "../src/tensor/index.js";

const config = gptConfig({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2, resid_pdrop: 0.1, embd_pdrop: 0.1 });
const rng = new Rng(11);
const tokens = Int32Array.from({ length: 12000 }, (_, i) => (i % 7 === 0 ? rng.int(64) : (i * 13) % 64));
const data = { train: new MemoryTokens(tokens.subarray(0, 10000)), val: new MemoryTokens(tokens.subarray(10000)) };
const tmp = () => mkdtempSync(join(tmpdir(), "plinth-trainer-"));
const child = join(dirname(fileURLToPath(import.meta.url)), "helpers", "train_child.js");

function trainer(outDir: string, extra: Partial<TrainerOptions<unknown>> = {}) {
  const model = new GPT(config, { seed: 5 });
  return new Trainer({
    model, objective: languageModeling(model, clm, { ...data, batch: 4, ctx: 32, evalWindows: 4 }), outDir, steps: 30, lr: 3e-3, warmup: 5,
    evalEvery: 10, checkpointEvery: 10, keepLast: 2, gradAccum: 2, quiet: true, handleSignals: false, ...extra,
  });
}

test("resuming from a checkpoint continues the exact loss trajectory of an uninterrupted run", async () => {
  const a = tmp(), b = tmp();
  try {
    const full = await trainer(a).run();
    assert.equal(full.steps, 30);
    const first = trainer(b, { onStep: (r: StepRecord) => r.step === 15 && first.requestStop("test") });
    const part = await first.run();
    assert.equal(part.stoppedBy, "signal");
    assert.equal(part.steps, 15);
    const second = trainer(b);
    assert.equal(second.resume(), 15);
    const rest = await second.run();
    assert.equal(rest.resumedFrom, 15);
    const want = full.history.slice(15).map((r) => r.loss);
    assert.deepEqual(rest.history.map((r) => r.loss), want);
    assert.equal(rest.valLoss, full.valLoss);
    const metrics = readFileSync(join(b, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as StepRecord);
    assert.deepEqual(metrics.map((m) => m.step), Array.from({ length: 30 }, (_, i) => i + 1));
    assert.deepEqual(listCheckpoints(b).map((c) => c.step), [20, 30]);
    assert.ok(existsSync(join(b, "loss.svg")));
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

function waitFor(pred: () => boolean, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => (pred() ? resolve() : Date.now() - t0 > ms ? reject(new Error("timed out waiting")) : setTimeout(tick, 20));
    tick();
  });
}

function lastLoggedStep(dir: string): number {
  const lines = readFileSync(join(dir, "metrics.jsonl"), "utf8").split("\n").filter((l) => l.trim() !== "");
  const last = lines[lines.length - 1];
  try {
    return (JSON.parse(last) as StepRecord).step;
  } catch {
    return (JSON.parse(lines[lines.length - 2]) as StepRecord).step;  // a line cut by the kill
  }
}

test("kill -9 mid-training loses at most one checkpoint interval and never leaves a corrupt checkpoint", async () => {
  const dir = tmp();
  try {
    for (let round = 0; round < 3; round++) {
      const proc = spawn(process.execPath, [child, dir], { stdio: ["ignore", "pipe", "inherit"] });
      const before = listCheckpoints(dir).at(-1)?.step ?? 0;
      await waitFor(() => (listCheckpoints(dir).at(-1)?.step ?? 0) >= before + 10, 60000);
      await new Promise((r) => setTimeout(r, 37 * (round + 1)));
      proc.kill("SIGKILL");
      await new Promise((r) => proc.on("exit", r));
      const ckpts = listCheckpoints(dir);
      const latest = ckpts[ckpts.length - 1];
      const state = loadCheckpoint(latest.path, new GPT(gptConfig({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 })), null);
      assert.equal(state.step, latest.step);
      assert.ok(lastLoggedStep(dir) - latest.step <= 5, `lost ${lastLoggedStep(dir) - latest.step} steps; the interval is 5`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SIGTERM saves a checkpoint and exits cleanly; the next run resumes from it", async () => {
  const dir = tmp();
  try {
    const run = () => {
      const proc = spawn(process.execPath, [child, dir], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      proc.stdout.on("data", (d) => (out += d));
      return { proc, out: () => out };
    };
    const first = run();
    await waitFor(() => listCheckpoints(dir).length > 0, 60000);
    first.proc.kill("SIGTERM");
    const code = await new Promise((r) => first.proc.on("exit", r));
    assert.equal(code, 0);
    const m = /stopped signal at (\d+)/.exec(first.out());
    assert.ok(m, first.out());
    assert.equal(listCheckpoints(dir).at(-1)!.step, Number(m[1]));
    const second = run();
    await waitFor(() => /ready \d+/.test(second.out()), 30000);
    second.proc.kill("SIGINT");
    await new Promise((r) => second.proc.on("exit", r));
    assert.match(second.out(), new RegExp(`ready ${m[1]}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("resuming with another model config or a damaged checkpoint fails with a clear error", async () => {
  const dir = tmp();
  try {
    await trainer(dir, { steps: 10 }).run();
    const model = new GPT(gptConfig({ ...config, n_embd: 48, n_head: 2 }));
    const other = new Trainer({ model, objective: languageModeling(model, clm, { ...data, batch: 4, ctx: 32 }), outDir: dir, steps: 10, quiet: true, handleSignals: false });
    assert.throws(() => other.resume(), /another model config/);
    const latest = listCheckpoints(dir).at(-1)!;
    writeFileSync(join(latest.path, "state.json"), "{ torn");
    assert.throws(() => trainer(dir).resume(), /state\.json is not valid JSON/);
    assert.throws(() => languageModeling(new GPT(config), clm, { ...data, train: new MemoryTokens(new Int32Array(10)), batch: 4, ctx: 32 }), /fewer than one window/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
