/**
 * GPT-2 (causal LM) with Hugging Face's GPT2LMHeadModel parameter names and tied
 * input/output embeddings: logits = ln_f(h) @ wte^T (wte read in place as an [out, in] weight).
 *
 * Legend: B batch, T time, C n_embd, V vocab, NH n_head.
 */
import { Module, decayGroups } from "../../nn/module.js";
import { Block, Dropout, Embedding, LayerNorm, type BlockConfig } from "../../nn/layers.js";
import { Rng } from "../../tensor/rng.js";
import { ShapeError, fmt } from "../../tensor/shape.js";
import { Tensor, ids as idsTensor } from "../../tensor/tensor.js";
import { add } from "../../tensor/ops/elementwise.js";
import { linear } from "../../tensor/ops/matmul.js";
import { crossEntropy } from "../../tensor/ops/nn.js";
import { reshape, slice } from "../../tensor/ops/views.js";
import { type GPTConfig, validateConfig } from "./config.js";

export class GPT2Transformer extends Module {
  wte: Embedding;
  wpe: Embedding;
  drop: Dropout;
  h: Block[];
  ln_f: LayerNorm;
  constructor(readonly config: GPTConfig, rng: Rng) {
    super();
    const std = config.initializer_range;
    this.wte = new Embedding(config.vocab_size, config.n_embd, { std, rng });
    this.wpe = new Embedding(config.n_positions, config.n_embd, { std: std / 2, rng });
    this.drop = new Dropout(config.embd_pdrop, rng);
    const block: BlockConfig = { ...config, proj_std: std / Math.sqrt(2 * config.n_layer) };
    this.h = Array.from({ length: config.n_layer }, () => new Block(block, rng));
    this.ln_f = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
  }
}

export interface GPTOutput {
  logits: Tensor;
  loss: Tensor | null;
}

export class GPT extends Module {
  transformer: GPT2Transformer;
  /** Drives initialisation, then dropout masks; its state goes into checkpoints for exact resume. */
  readonly rng: Rng;
  private positions = new Map<number, Tensor>();

  constructor(readonly config: GPTConfig, { seed = 0 } = {}) {
    super();
    validateConfig(config);
    this.rng = new Rng(seed);
    this.transformer = new GPT2Transformer(config, this.rng);
  }

  private positionIds(T: number): Tensor {
    let p = this.positions.get(T);
    if (p === undefined || p.released) {
      p = idsTensor(Array.from({ length: T }, (_, i) => i), [T]).retain();
      this.positions.set(T, p);
    }
    return p;
  }

  /** Hidden states after ln_f: ids [B, T] -> [B, T, C]. */
  hidden(ids: Tensor): Tensor {
    if (ids.dtype !== "int32" || ids.ndim !== 2) {
      throw new ShapeError(`GPT.forward: ids must be int32 [B, T], got ${ids.dtype}${fmt(ids.shape)}`);
    }
    const T = ids.shape[1];
    if (T > this.config.n_positions || T < 1) {
      throw new ShapeError(`GPT.forward: sequence length ${T} must be in [1, n_positions=${this.config.n_positions}]`);
    }
    const t = this.transformer;
    let x = add(t.wte.forward(ids), t.wpe.forward(this.positionIds(T)));
    x = t.drop.forward(x);
    for (const block of t.h) x = block.forward(x);
    return t.ln_f.forward(x);
  }

  /** ids [B, T] (int32) -> logits [B, T, V]; with targets [B, T], also the mean cross-entropy. */
  forward(ids: Tensor, targets?: Tensor): GPTOutput {
    const h = this.hidden(ids);
    // wte is [V, C]: the LM head is a linear layer in nn.Linear's layout, so its gradient lands
    // in wte's own layout (no transposed copy of a [C, V] gradient).
    const logits = linear(h, this.transformer.wte.weight, null, "out_in");
    const loss = targets === undefined ? null : crossEntropy(logits, targets);
    return { logits, loss };
  }

  /** Mean next-token cross-entropy (the trainer's LossModel interface). */
  loss(ids: Tensor, targets: Tensor): Tensor {
    return this.forward(ids, targets).loss!;
  }

  /** Logits of the last position only: ids [B, T] -> [B, V] (for scoring and generation). */
  lastLogits(ids: Tensor): Tensor {
    const h = this.hidden(ids);
    const [B, T, C] = h.shape;
    const last = reshape(slice(h, 1, T - 1, T), [B, C]);
    return linear(last, this.transformer.wte.weight, null, "out_in");
  }

  /** Parameters split for AdamW: decay on matrices and embeddings, none on biases and LayerNorms. */
  paramGroups(weightDecay: number): { params: Tensor[]; weightDecay: number }[] {
    return decayGroups(this, weightDecay);
  }
}
