// The time-budget policy: a time budget gets warm-up–stable–decay on the fraction of the budget
// elapsed, so that on a machine whose speed changes mid-run (slow then fast, fast then slow) the
// run still ends at the budget within one step with the LR at minLr; the elapsed time survives
// resume; step and token budgets keep their cosine schedule.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryTokens } from "../src/data/tokens.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { cosineSchedule } from "../src/optim/index.js";
import { Rng } from "../src/tensor/index.js";
import { listCheckpoints, loadCheckpoint } from "../src/train/checkpoint.js";
import { clm, languageModeling, type TokenBatch } from "../src/train/language.js";
import { BudgetSchedule, wsdSchedule } from "../src/train/schedule.js";
import { Trainer, type Objective, type StepRecord, type TrainerOptions } from "../src/train/trainer.js";

const config = gptConfig({ vocab_size: 32, n_positions: 8, n_embd: 16, n_layer: 1, n_head: 2 });
const rng = new Rng(3);
const tokens = Int32Array.from({ length: 3000 }, () => rng.int(32));
const data = { train: new MemoryTokens(tokens.subarray(0, 2500)), val: new MemoryTokens(tokens.subarray(2500)) };
const LR = 1e-2, MIN_LR = 1e-3, WARMUP = 3;

/** A fake clock (ms) and an objective whose every batch takes `stepSeconds(i)` of it: the i-th step's time. */
function throttled(stepSeconds: (i: number) => number) {
  const clock = { ms: 0, steps: 0 };
  const model = new GPT(config, { seed: 1 });
  const inner = languageModeling(model, clm, { ...data, batch: 2, ctx: 8, evalWindows: 2 });
  const objective: Objective<TokenBatch> = {
    ...inner,
    loss(batch) {
      clock.ms += 1000 * stepSeconds(clock.steps++);
      return inner.loss(batch);
    },
  };
  return { clock, model, objective, now: () => clock.ms };
}

function run(t: ReturnType<typeof throttled>, extra: Partial<TrainerOptions<TokenBatch>>) {
  return new Trainer({ model: t.model, objective: t.objective, now: t.now, lr: LR, minLr: MIN_LR, warmup: WARMUP, evalEvery: 1e9, quiet: true, handleSignals: false, ...extra });
}

/**
 * The run ends at the budget within one step: every step but the last ended before the budget, the
 * run ended after it, and the last step's LR is minLr up to that step's share of the decay.
 */
function endsAtBudget(history: StepRecord[], end: number, budget: number): void {
  const last = history.at(-1)!, prev = history.at(-2)!;
  assert.ok(history.slice(0, -1).every((h) => h.seconds < budget), "a step after the budget was spent");
  assert.ok(end >= budget, `stopped at ${end}s of a ${budget}s budget`);
  const bound = (LR - MIN_LR) * ((end - prev.seconds) / budget) / 0.2;
  assert.ok(last.lr >= MIN_LR && last.lr - MIN_LR <= bound + 1e-15, `last LR ${last.lr}, minLr ${MIN_LR}, bound ${bound}`);
}

for (const [name, stepSeconds] of [
  ["slow then fast", (i: number) => (i < 5 ? 2 : 0.25)],
  ["fast then slow", (i: number) => (i < 40 ? 0.25 : 2)],
  ["changing every few steps", (i: number) => [0.1, 1.3, 0.4, 0.7][Math.floor(i / 7) % 4]],
] as const) {
  test(`a time budget spans the whole budget and ends at minLr: ${name}`, async () => {
    const budget = 30;
    const t = throttled(stepSeconds);
    const r = await run(t, { seconds: budget }).run();
    assert.equal(r.schedule, "wsd");
    assert.ok(r.history.every((h) => h.schedule === "wsd"));
    endsAtBudget(r.history, r.seconds, budget);
    assert.equal(r.seconds, r.history.at(-1)!.seconds, "the fake clock stands still outside the steps");
    r.history.forEach((h, i) => {
      // The LR is a function of the step and of the fraction of the budget elapsed when it updates the weights.
      assert.equal(h.lr, wsdSchedule(i, h.seconds / budget, { lr: LR, minLr: MIN_LR, warmup: WARMUP }), `step ${h.step}`);
      if (i >= WARMUP && h.seconds <= 0.8 * budget) assert.equal(h.lr, LR, `stable at step ${h.step}`);
      if (i > WARMUP) assert.ok(h.lr <= r.history[i - 1].lr, `the LR never rises after warm-up (step ${h.step})`);
    });
    assert.equal(r.history.at(-1)!.lr, MIN_LR);
  });
}

test("the elapsed training time survives resume: the schedule and the stop continue from the checkpoint", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-budget-"));
  try {
    const budget = 20.2, stepSeconds = (i: number) => (i < 30 ? 0.3 : 0.5);
    const a = throttled(stepSeconds);
    const first = run(a, { seconds: budget, outDir: dir, checkpointEvery: 1e9, onStep: (r) => r.seconds >= 12 && first.requestStop("test") });
    const part = await first.run();
    assert.equal(part.stoppedBy, "signal");
    const saved = loadCheckpoint(listCheckpoints(dir).at(-1)!.path, a.model, null);
    assert.equal(saved.elapsedSeconds, part.history.at(-1)!.seconds);
    assert.equal(saved.extra?.schedule, "wsd");

    const b = throttled((i) => stepSeconds(i + part.steps));
    b.clock.ms = 5e6;  // another process: its clock starts anywhere
    const second = run(b, { seconds: budget, outDir: dir, checkpointEvery: 1e9 });
    assert.equal(second.resume(), part.steps);
    const rest = await second.run();
    assert.ok(rest.history[0].seconds > saved.elapsedSeconds && rest.history[0].seconds < saved.elapsedSeconds + 1);
    const all = [...part.history, ...rest.history];
    endsAtBudget(all, rest.seconds, budget);
    assert.equal(all.at(-1)!.lr, MIN_LR);
    const lines = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; schedule: string; tokens: number });
    assert.deepEqual(lines.map((l) => l.step), all.map((h) => h.step));
    assert.ok(lines.every((l) => l.schedule === "wsd" && l.tokens > 0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("step and token budgets keep the cosine schedule over their steps; a time cap only stops them", async () => {
  const t = throttled(() => 1);
  const r = await run(t, { steps: 12, seconds: 1e6 }).run();
  assert.equal(r.schedule, "cosine");
  r.history.forEach((h, i) => assert.equal(h.lr, cosineSchedule(i, { lr: LR, warmup: WARMUP, totalSteps: 12, minLr: MIN_LR })));
  const capped = await run(throttled(() => 1), { steps: 100, seconds: 5 }).run();
  assert.equal(capped.steps, 5);
  assert.equal(capped.history[4].lr, cosineSchedule(4, { lr: LR, warmup: WARMUP, totalSteps: 100, minLr: MIN_LR }));
  const byTokens = await run(throttled(() => 1), { tokens: 2 * 8 * 7 + 1 }).run();
  assert.equal(byTokens.steps, 8);
  assert.equal(byTokens.seen, 2 * 8 * 8);
});

test("warm-up–stable–decay: ramp, plateau, linear decay to minLr; a budget shorter than the warm-up still ends at minLr", () => {
  const o = { lr: 1, minLr: 0.1, warmup: 10 };
  assert.equal(wsdSchedule(0, 0, o), 0.1);
  assert.equal(wsdSchedule(9, 0.01, o), 1);
  assert.equal(wsdSchedule(50, 0.8, o), 1);
  assert.ok(Math.abs(wsdSchedule(50, 0.9, o) - 0.55) < 1e-12);
  assert.equal(wsdSchedule(50, 1, o), 0.1);
  assert.equal(wsdSchedule(50, 1.7, o), 0.1);
  assert.equal(wsdSchedule(2, 1, o), 0.1);
  assert.equal(wsdSchedule(0, 0.99, o), 0.1, "the lower of the ramp and the time curve");
  assert.throws(() => new BudgetSchedule({}, 1, o), /give a budget/);
  assert.throws(() => new BudgetSchedule({ tokens: 100 }, undefined, o), /fixed number of units/);
  assert.equal(new BudgetSchedule({ seconds: 60 }, 16, o).kind, "wsd");
  assert.equal(new BudgetSchedule({ seconds: 60, tokens: 1000 }, 16, o).kind, "cosine");
});

test("real time: a throttled run (slow steps, then fast) stops at its budget within one step", async () => {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const t = throttled(() => 0);
  let calls = 0;
  const objective: Objective<TokenBatch> = { ...t.objective, loss: (b) => (Atomics.wait(pause, 0, 0, calls++ < 5 ? 60 : 8), t.objective.loss(b)) };
  const budget = 0.6;
  const r = await new Trainer({ model: t.model, objective, lr: LR, minLr: MIN_LR, warmup: WARMUP, seconds: budget, evalEvery: 1e9, quiet: true }).run();
  assert.ok(r.steps > 8, `${r.steps} steps`);
  endsAtBudget(r.history, r.seconds, budget);
  assert.ok(r.seconds - budget < 0.5, `stopped ${r.seconds - budget}s after the budget (steps take ~10 ms)`);
});
