// Model-level parity with PyTorch: logits, loss, every gradient and 10 AdamW steps of a
// tiny BERT masked LM (two segments, 30% of positions scored, the rest labelled -100)
// match the float64 golden values of scripts/torch_parity.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BertForMaskedLM, bertConfig, type BertConfig } from "../src/models/bert/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { ids } from "../src/tensor/index.js";
import { closeTo, fixtureGroups, gradsMatch, loadFixture, unpack, type Packed } from "./helpers/fixtures.js";

interface BertFixture {
  config: BertConfig;
  params: Record<string, Packed>;
  input_ids: number[][];
  token_type_ids: number[][];
  targets: number[][];
  logits: Packed;
  loss: number;
  grads: Record<string, Packed>;
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; decay: string[]; clip: number };
  train_losses: number[];
  grad_norms: number[];
}

const fx = loadFixture<BertFixture>("bert_tiny.json");

function build(): BertForMaskedLM {
  const model = new BertForMaskedLM(bertConfig({ ...fx.config }));
  model.loadStateDict(Object.fromEntries(Object.entries(fx.params).map(([k, v]) => [k, unpack(v)])));
  return model;
}

test("tiny BERT logits, loss and every gradient match PyTorch", () => {
  const model = build();
  const x = ids(fx.input_ids), y = ids(fx.targets), types = ids(fx.token_type_ids);
  assert.ok(fx.targets.flat().some((t) => t === -100) && fx.targets.flat().some((t) => t >= 0));
  const { logits, loss } = model.forward(x, y, types);
  logits.retain();
  closeTo(logits.toArray(), unpack(fx.logits).data, 1e-4, 1e-5, "logits");
  assert.ok(Math.abs(loss!.item() - fx.loss) < 1e-5, `loss ${loss!.item()} vs ${fx.loss}`);
  loss!.backward();
  gradsMatch(model.namedParameters(), fx.grads);
});

test("tiny BERT first 10 AdamW steps (clipped) match PyTorch", () => {
  const model = build();
  const opt = new AdamW(
    fixtureGroups(model.namedParameters(), fx.adamw.decay, fx.adamw.weight_decay),
    { lr: fx.adamw.lr, betas: fx.adamw.betas, eps: fx.adamw.eps },
  );
  const x = ids(fx.input_ids), y = ids(fx.targets), types = ids(fx.token_type_ids);
  for (let step = 0; step < 10; step++) {
    opt.zeroGrad();
    const { loss } = model.forward(x, y, types);
    const value = loss!.item();
    loss!.backward();
    const norm = clipGradNorm(model.parameters(), fx.adamw.clip);
    opt.step();
    assert.ok(Math.abs(value - fx.train_losses[step]) < 2e-5 * Math.max(1, Math.abs(fx.train_losses[step])),
      `step ${step}: loss ${value} vs ${fx.train_losses[step]}`);
    assert.ok(Math.abs(norm - fx.grad_norms[step]) < 1e-4 * fx.grad_norms[step], `step ${step}: grad norm ${norm} vs ${fx.grad_norms[step]}`);
  }
});

test("the trainer's loss (head on the target rows only) equals forward's loss, gradients included", () => {
  const a = build(), b = build();
  const x = ids(fx.input_ids), y = ids(fx.targets);
  const full = a.forward(x, y).loss!;
  const rows = b.loss(x, y);
  assert.ok(Math.abs(full.item() - rows.item()) < 1e-6, `forward ${full.item()} vs loss ${rows.item()}`);
  full.backward();
  rows.backward();
  const gb = new Map(b.namedParameters());
  for (const [name, p] of a.namedParameters()) {
    const want = p.grad!.toArray() as Float32Array;
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    closeTo(gb.get(name)!.grad!.toArray(), want, 1e-5, Math.max(1e-6 * scale, 1e-10), `grad ${name}`);
  }
});
