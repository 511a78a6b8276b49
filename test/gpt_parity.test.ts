// Model-level parity with PyTorch: logits, loss, every gradient and 10 AdamW steps of a
// tiny GPT-2 match the float64 golden values of scripts/torch_parity.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GPT, gptConfig, type GPTConfig } from "../src/models/gpt/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { ids } from "../src/tensor/index.js";
import { closeTo, fixtureGroups, gradsMatch, loadFixture, unpack, type Packed } from "./helpers/fixtures.js";

interface GptFixture {
  config: GPTConfig;
  params: Record<string, Packed>;
  input_ids: number[][];
  targets: number[][];
  logits: Packed;
  loss: number;
  grads: Record<string, Packed>;
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; decay: string[]; clip: number };
  train_losses: number[];
  grad_norms: number[];
}

const fx = loadFixture<GptFixture>("gpt_tiny.json");

function build(): GPT {
  const model = new GPT(gptConfig({ ...fx.config }));
  model.loadStateDict(Object.fromEntries(Object.entries(fx.params).map(([k, v]) => [k, unpack(v)])));
  return model;
}

test("tiny GPT-2 logits, loss and every gradient match PyTorch", () => {
  const model = build();
  const x = ids(fx.input_ids), y = ids(fx.targets);
  const { logits, loss } = model.forward(x, y);
  logits.retain();
  closeTo(logits.toArray(), unpack(fx.logits).data, 1e-4, 1e-5, "logits");
  assert.ok(Math.abs(loss!.item() - fx.loss) < 1e-5, `loss ${loss!.item()} vs ${fx.loss}`);
  loss!.backward();
  gradsMatch(model.namedParameters(), fx.grads);
});

test("tiny GPT-2 first 10 AdamW steps (clipped) match PyTorch", () => {
  const model = build();
  const opt = new AdamW(
    fixtureGroups(model.namedParameters(), fx.adamw.decay, fx.adamw.weight_decay),
    { lr: fx.adamw.lr, betas: fx.adamw.betas, eps: fx.adamw.eps },
  );
  const x = ids(fx.input_ids), y = ids(fx.targets);
  for (let step = 0; step < 10; step++) {
    opt.zeroGrad();
    const { loss } = model.forward(x, y);
    const value = loss!.item();
    loss!.backward();
    const norm = clipGradNorm(model.parameters(), fx.adamw.clip);
    opt.step();
    assert.ok(Math.abs(value - fx.train_losses[step]) < 2e-5 * Math.max(1, Math.abs(fx.train_losses[step])),
      `step ${step}: loss ${value} vs ${fx.train_losses[step]}`);
    assert.ok(Math.abs(norm - fx.grad_norms[step]) < 1e-4 * fx.grad_norms[step], `step ${step}: grad norm ${norm} vs ${fx.grad_norms[step]}`);
  }
});
