// Small trained models for the interop tests: a byte-level BPE tokenizer and a GPT / BERT
// trained for a few hundred steps on Moby Dick, so that greedy continuations are
// confident enough to compare across runtimes (an untrained model's top logits tie).
import { BertForMaskedLM, bertConfig } from "../../src/models/bert/index.js";
import { GPT, gptConfig } from "../../src/models/gpt/index.js";
import { AdamW, clipGradNorm } from "../../src/optim/index.js";
import { ids, Rng, type Tensor } from "../../src/tensor/index.js";
import { loadSource } from "../../src/data/sources.js";
import { trainBPE, type BPETokenizer } from "../../src/tokenizer/index.js";

let text: string | null = null;
export function mobyText(): string {
  text ??= loadSource("moby-dick").docs.map((d) => d.text).join("\n").slice(20_000, 120_000);
  return text;
}

export function tinyTokenizer(vocabSize = 384): BPETokenizer {
  const t = mobyText();
  const parts = Array.from({ length: 50 }, (_, i) => t.slice(i * 2000, (i + 1) * 2000));
  return trainBPE(parts, { vocabSize });
}

interface Trainable {
  loss(x: Tensor, y: Tensor): Tensor;
  paramGroups(weightDecay: number): { params: Tensor[]; weightDecay: number }[];
  parameters(): Tensor[];
}

function train(model: Trainable, steps: number, batch: (rng: Rng) => { x: number[][]; y: number[][] }): void {
  const opt = new AdamW(model.paramGroups(0.01), { lr: 3e-3 });
  const rng = new Rng(7);
  for (let s = 0; s < steps; s++) {
    const b = batch(rng);
    const x = ids(b.x), y = ids(b.y);
    const loss = model.loss(x, y);
    loss.backward();
    clipGradNorm(model.parameters(), 1);
    opt.step();
    opt.zeroGrad();
    loss.release();
    x.release();
    y.release();
  }
}

/** A GPT (d 64, 2 layers, 4 heads, context 64) trained briefly with `tok`. */
export function tinyGPT(tok: BPETokenizer, steps = 400, seed = 1): GPT {
  const model = new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 64, n_layer: 2, n_head: 4, n_positions: 64, bos_token_id: 0, eos_token_id: 0 }), { seed });
  const tokens = tok.encode(mobyText(), { specialTokens: false });
  const T = 32;
  train(model, steps, (rng) => {
    const x: number[][] = [], y: number[][] = [];
    for (let b = 0; b < 8; b++) {
      const at = rng.int(tokens.length - T - 1);
      x.push(tokens.slice(at, at + T));
      y.push(tokens.slice(at + 1, at + T + 1));
    }
    return { x, y };
  });
  return model;
}

/** A BERT (d 64, 2 layers) trained briefly on masked tokens. */
export function tinyBert(tok: BPETokenizer, steps = 60): BertForMaskedLM {
  const mask = tok.tokenToId("[MASK]")!;
  const model = new BertForMaskedLM(bertConfig({ vocab_size: tok.vocabSize, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, max_position_embeddings: 64, pad_token_id: tok.tokenToId("[PAD]")! }), { seed: 2 });
  const tokens = tok.encode(mobyText(), { specialTokens: false });
  const T = 32;
  train(model, steps, (rng) => {
    const x: number[][] = [], y: number[][] = [];
    for (let b = 0; b < 8; b++) {
      const at = rng.int(tokens.length - T);
      const row = tokens.slice(at, at + T);
      const labels = row.map(() => -1);
      for (let i = 0; i < T; i++) if (rng.uniform() < 0.15) (labels[i] = row[i]), (row[i] = mask);
      if (labels.every((l) => l < 0)) (labels[0] = row[0]), (row[0] = mask);
      x.push(row);
      y.push(labels);
    }
    return { x, y };
  });
  return model;
}
