/**
 * BERT (bidirectional encoder, masked-LM head) with Hugging Face's BertForMaskedLM
 * parameter names: each module's field names are the checkpoint key path
 * (`bert.encoder.layer.0.attention.self.query.weight`). Linear weights use nn.Linear's
 * [out, in] layout; the decoder is tied to the word embeddings, its bias is
 * `cls.predictions.bias`. Blocks are post-LayerNorm: x = LN(x + sublayer(x)).
 *
 * Legend: B batch, T time, C hidden_size, I intermediate_size, V vocab, M masked rows.
 */
import { Module, decayGroups, parameter } from "../../nn/module.js";
import { Dropout, Embedding, LayerNorm, Linear } from "../../nn/layers.js";
import type { ForwardContext } from "../../nn/context.js";
import { noGrad } from "../../tensor/autograd.js";
import { Rng } from "../../tensor/rng.js";
import { ShapeError, fmt } from "../../tensor/shape.js";
import { Tensor, fromHost, ids as idsTensor } from "../../tensor/tensor.js";
import { add, gelu } from "../../tensor/ops/elementwise.js";
import { linear } from "../../tensor/ops/matmul.js";
import { attention, crossEntropy, embedding, softmax } from "../../tensor/ops/nn.js";
import { mean } from "../../tensor/ops/reduce.js";
import { reshape } from "../../tensor/ops/views.js";
import { type BertConfig, validateBertConfig } from "./config.js";
import { lengthBatches } from "../batching.js";

const dense = (inF: number, outF: number, config: BertConfig, rng: Rng): Linear =>
  new Linear(inF, outF, { layout: "out_in", std: config.initializer_range, rng });

export class BertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(config: BertConfig, rng: Rng) {
    super();
    const std = config.initializer_range;
    this.word_embeddings = new Embedding(config.vocab_size, config.hidden_size, { std, rng });
    // Like HF's init: the padding row starts at zero.
    this.word_embeddings.weight.data.fill(0, config.pad_token_id * config.hidden_size, (config.pad_token_id + 1) * config.hidden_size);
    this.position_embeddings = new Embedding(config.max_position_embeddings, config.hidden_size, { std, rng });
    this.token_type_embeddings = new Embedding(config.type_vocab_size, config.hidden_size, { std, rng });
    this.LayerNorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.dropout = new Dropout(config.hidden_dropout_prob, rng);
  }
}

export class BertSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;
  constructor(readonly config: BertConfig, rng: Rng) {
    super();
    const C = config.hidden_size;
    this.query = dense(C, C, config, rng);
    this.key = dense(C, C, config, rng);
    this.value = dense(C, C, config, rng);
  }
  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    return attention(this.query.forward(x, ctx), this.key.forward(x, ctx), this.value.forward(x, ctx), this.config.num_attention_heads);
  }
}

/** The projection after a sublayer, then dropout, the residual and the LayerNorm (HF's BertSelfOutput / BertOutput). */
export class BertResidualOutput extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(inF: number, config: BertConfig, rng: Rng) {
    super();
    this.dense = dense(inF, config.hidden_size, config, rng);
    this.LayerNorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.dropout = new Dropout(config.hidden_dropout_prob, rng);
  }
  forward(h: Tensor, residual: Tensor, ctx?: ForwardContext): Tensor {
    return this.LayerNorm.forward(add(this.dropout.forward(this.dense.forward(h, ctx)), residual));
  }
}

export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertResidualOutput;
  constructor(config: BertConfig, rng: Rng) {
    super();
    this.self = new BertSelfAttention(config, rng);
    this.output = new BertResidualOutput(config.hidden_size, config, rng);
  }
  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    return this.output.forward(this.self.forward(x, ctx), x, ctx);
  }
}

export class BertIntermediate extends Module {
  dense: Linear;
  constructor(config: BertConfig, rng: Rng) {
    super();
    this.dense = dense(config.hidden_size, config.intermediate_size, config, rng);
  }
  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    return gelu(this.dense.forward(x, ctx));
  }
}

/** One post-LayerNorm encoder block: [B, T, C] -> [B, T, C]. */
export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertResidualOutput;
  constructor(config: BertConfig, rng: Rng) {
    super();
    this.attention = new BertAttention(config, rng);
    this.intermediate = new BertIntermediate(config, rng);
    this.output = new BertResidualOutput(config.intermediate_size, config, rng);
  }
  /** With a context, the adapter groups' LoRA deltas join every Linear (multi-adapter inference). */
  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    const a = this.attention.forward(x, ctx);
    return this.output.forward(this.intermediate.forward(a, ctx), a, ctx);
  }
}

export class BertEncoder extends Module {
  layer: BertLayer[];
  constructor(config: BertConfig, rng: Rng) {
    super();
    this.layer = Array.from({ length: config.num_hidden_layers }, () => new BertLayer(config, rng));
  }
}

export class BertModel extends Module {
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  constructor(config: BertConfig, rng: Rng) {
    super();
    this.embeddings = new BertEmbeddings(config, rng);
    this.encoder = new BertEncoder(config, rng);
  }
}

export class BertPredictionHeadTransform extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  constructor(config: BertConfig, rng: Rng) {
    super();
    this.dense = dense(config.hidden_size, config.hidden_size, config, rng);
    this.LayerNorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
  }
  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(gelu(this.dense.forward(x)));
  }
}

export class BertLMPredictionHead extends Module {
  transform: BertPredictionHeadTransform;
  /** The decoder's bias; its weight is the word-embedding table, passed in (tied, not stored twice). */
  bias: Tensor;
  constructor(config: BertConfig, rng: Rng) {
    super();
    this.transform = new BertPredictionHeadTransform(config, rng);
    this.bias = parameter([config.vocab_size], (t) => t.data.fill(0, 0, t.size));
  }
  /** [..., C] -> logits [..., V]. */
  forward(h: Tensor, wordEmbeddings: Tensor): Tensor {
    return linear(this.transform.forward(h), wordEmbeddings, this.bias, "out_in");
  }
}

export class BertOnlyMLMHead extends Module {
  predictions: BertLMPredictionHead;
  constructor(config: BertConfig, rng: Rng) {
    super();
    this.predictions = new BertLMPredictionHead(config, rng);
  }
}

export interface BertOutput {
  logits: Tensor;
  loss: Tensor | null;
}

export interface FillMaskPrediction {
  position: number;
  /** The topK most likely token ids, most likely first, and their probabilities. */
  ids: number[];
  probs: number[];
}

/** Index tensors read by a node's backward must outlive it: the node releases them after its backward runs. */
function ownedBy(out: Tensor, ...ts: Tensor[]): Tensor {
  if (out.node !== null) out.node.saved.push(...ts);
  else for (const t of ts) t.release();
  return out;
}

export class BertForMaskedLM extends Module {
  bert: BertModel;
  cls: BertOnlyMLMHead;
  /** Drives initialisation, then dropout masks; its state goes into trainer checkpoints for exact resume. */
  readonly rng: Rng;
  private constants = new Map<string, Tensor>();

  constructor(readonly config: BertConfig, { seed = 0 } = {}) {
    super();
    validateBertConfig(config);
    this.rng = new Rng(seed);
    this.bert = new BertModel(config, this.rng);
    this.cls = new BertOnlyMLMHead(config, this.rng);
  }

  /** Position ids 0..T-1, or the default token types (all 0), kept across calls. */
  private constantIds(kind: "positions" | "types", T: number): Tensor {
    const key = `${kind}:${T}`;
    let t = this.constants.get(key);
    const on = this.cls.predictions.bias.device;
    if (t !== undefined && !t.released && t.device !== on) t.release();
    if (t === undefined || t.released) {
      t = fromHost(Int32Array.from({ length: T }, (_, i) => (kind === "positions" ? i : 0)), [T], on).retain();
      this.constants.set(key, t);
    }
    return t;
  }

  /** Last hidden states: ids [B, T] (int32), optional token types [B, T] in ctx (default 0) -> [B, T, C]. */
  hidden(ids: Tensor, ctx?: ForwardContext): Tensor {
    const tokenTypeIds = ctx?.tokenTypeIds;
    if (!(ids instanceof Tensor) || ids.dtype !== "int32" || ids.ndim !== 2) {
      throw new ShapeError(`BertForMaskedLM: ids must be int32 [B, T], got ${ids instanceof Tensor ? `${ids.dtype}${fmt(ids.shape)}` : typeof ids}`);
    }
    const T = ids.shape[1];
    const P = this.config.max_position_embeddings;
    if (T < 1 || T > P) throw new ShapeError(`BertForMaskedLM: sequence length ${T} must be in [1, max_position_embeddings=${P}]`);
    if (tokenTypeIds !== undefined && (tokenTypeIds.dtype !== "int32" || tokenTypeIds.ndim !== 2 || tokenTypeIds.shape[0] !== ids.shape[0] || tokenTypeIds.shape[1] !== T)) {
      throw new ShapeError(`BertForMaskedLM: tokenTypeIds ${tokenTypeIds.dtype}${fmt(tokenTypeIds.shape)} must be int32 of the ids' shape ${fmt(ids.shape)}`);
    }
    const e = this.bert.embeddings;
    const types = e.token_type_embeddings.forward(tokenTypeIds ?? this.constantIds("types", T));
    let x = add(add(e.word_embeddings.forward(ids), types), e.position_embeddings.forward(this.constantIds("positions", T)));
    x = e.dropout.forward(e.LayerNorm.forward(x));
    if (ctx?.kv !== undefined) throw new Error("BertForMaskedLM: a bidirectional encoder has no KV-cache decoding");
    for (const layer of this.bert.encoder.layer) x = layer.forward(x, ctx);
    return x;
  }

  /** Logits of the MLM head for hidden states [..., C] -> [..., V]. */
  head(h: Tensor): Tensor {
    return this.cls.predictions.forward(h, this.bert.embeddings.word_embeddings.weight);
  }

  /** ids [B, T] -> logits [B, T, V]; with labels [B, T] (< 0: not a target) also their mean cross-entropy. */
  forward(ids: Tensor, labels?: Tensor, tokenTypeIds?: Tensor): BertOutput {
    const logits = this.head(this.hidden(ids, { tokenTypeIds }));
    const loss = labels === undefined ? null : crossEntropy(logits, labels);
    return { logits, loss };
  }

  /**
   * The masked-LM loss for the trainer: the same value as forward(inputs, targets).loss, but the
   * head runs on the M target rows only (about 15% of them), not on all B x T.
   */
  loss(inputs: Tensor, targets: Tensor): Tensor {
    const h = this.hidden(inputs);
    const [B, T, C] = h.shape;
    if (targets.dtype !== "int32" || targets.ndim !== 2 || targets.shape[0] !== B || targets.shape[1] !== T) {
      throw new ShapeError(`BertForMaskedLM.loss: targets ${targets.dtype}${fmt(targets.shape)} must be int32 [${B}, ${T}] like the inputs`);
    }
    const t = targets.toArray();
    const rows: number[] = [], wanted: number[] = [];
    for (let i = 0; i < t.length; i++) {
      if (t[i] >= 0) {
        rows.push(i);
        wanted.push(t[i]);
      }
    }
    if (rows.length === 0) throw new ShapeError(`BertForMaskedLM.loss: every one of the ${t.length} targets is ignored (< 0); nothing to average`);
    const rowIds = fromHost(Int32Array.from(rows), [rows.length], h.device), targetIds = fromHost(Int32Array.from(wanted), [wanted.length], h.device);
    const picked = ownedBy(embedding(rowIds, reshape(h, [B * T, C])), rowIds);  // [M, C]
    return ownedBy(crossEntropy(this.head(picked), targetIds), targetIds);
  }

  /** Mean-pooled sentence embeddings: ids [B, T] -> [B, C]. Rows are unpadded (there is no attention mask). */
  embed(ids: Tensor, tokenTypeIds?: Tensor): Tensor {
    return mean(this.hidden(ids, { tokenTypeIds }), 1);
  }

  /** Embeddings of token sequences of any lengths (batched by length, no padding), in input order. */
  embedSequences(seqs: readonly (readonly number[])[]): Float32Array[] {
    const out = new Array<Float32Array>(seqs.length);
    // Batches of at most 32, each in its own noGrad scope (a scope frees what it made when it ends).
    for (const batch of lengthBatches(seqs.map((s) => s.length), 32)) {
      noGrad(() => {
        const e = this.embed(idsTensor(batch.map((i) => [...seqs[i]])));
        const C = e.shape[1];
        batch.forEach((i, r) => (out[i] = e.data.slice(r * C, (r + 1) * C)));
      });
    }
    return out;
  }

  /** The topK most likely tokens (with probabilities) at the given positions of one sequence, e.g. its [MASK]s. */
  fillMask(ids: readonly number[], positions: number | readonly number[], { topK = 5 } = {}): FillMaskPrediction[] {
    const at = typeof positions === "number" ? [positions] : [...positions];
    for (const p of at) {
      if (!Number.isInteger(p) || p < 0 || p >= ids.length) throw new RangeError(`fillMask: position ${p} is outside the ${ids.length} tokens`);
    }
    const V = this.config.vocab_size;
    const k = Math.max(1, Math.min(V, Math.floor(topK)));
    const probs = noGrad(() => {
      const h = this.hidden(idsTensor([[...ids]]));
      const C = h.shape[2];
      const picked = embedding(idsTensor(at, [at.length]), reshape(h, [ids.length, C]));
      return softmax(this.head(picked)).toArray();
    });
    return at.map((position, r) => {
      const row = probs.subarray(r * V, (r + 1) * V);
      const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
      return { position, ids: order, probs: order.map((i) => row[i]) };
    });
  }

  /** Parameters split for AdamW: decay on matrices and embeddings, none on biases and LayerNorms. */
  paramGroups(weightDecay: number): { params: Tensor[]; weightDecay: number }[] {
    return decayGroups(this, weightDecay);
  }
}
