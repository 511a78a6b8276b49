/**
 * GPT-2 (causal LM) with Hugging Face's GPT2LMHeadModel parameter names and tied
 * input/output embeddings: logits = ln_f(h) @ wte^T (wte read in place as an [out, in] weight).
 *
 * Legend: B batch, T time, C n_embd, V vocab, NH n_head.
 */
import { Module, decayGroups } from "../../nn/module.js";
import { Block, Dropout, Embedding, LayerNorm, type BlockConfig } from "../../nn/layers.js";
import { type ForwardContext, type KVCache, type RowAdapter, advanceCaches, kvPositions } from "../../nn/context.js";
import { needsGrad, noGrad, to } from "../../tensor/autograd.js";
import { type PackedWeight, packedLinear } from "../../tensor/ops/packed.js";
import { type DecodeBlockWeights, decodeBlocks, streamLinear } from "../../tensor/ops/decode.js";
import { cpu } from "../../tensor/device.js";
import { Rng } from "../../tensor/rng.js";
import { ShapeError, fmt } from "../../tensor/shape.js";
import { Tensor, ids as idsTensor, tensor as fromData } from "../../tensor/tensor.js";
import { add } from "../../tensor/ops/elementwise.js";
import { linear } from "../../tensor/ops/matmul.js";
import { crossEntropy } from "../../tensor/ops/nn.js";
import { embedding } from "../../tensor/ops/nn.js";
import { cat, reshape, slice } from "../../tensor/ops/views.js";
import { type GPTConfig, validateConfig } from "./config.js";

export class GPT2Transformer extends Module {
  wte: Embedding;
  wpe: Embedding;
  drop: Dropout;
  h: Block[];
  ln_f: LayerNorm;
  /**
   * Rows for tokens added to the base's vocabulary (a chat template's role markers), ids
   * vocab_size.. on; tied to the head like wte. Null for a base as pretrained.
   */
  wte_added: Embedding | null = null;
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

/** One sequence in a decoding step: its next tokens (a prompt, or the last sampled token), its cache and adapter. */
export interface DecodeRow {
  tokens: number[];
  cache: KVCache;
  adapter: RowAdapter | null;
}

export class GPT extends Module {
  transformer: GPT2Transformer;
  /** Drives initialisation, then dropout masks; its state goes into checkpoints for exact resume. */
  readonly rng: Rng;
  private positions = new Map<number, Tensor>();
  /** The tied LM head (wte) packed for inference (models/inference_weights.ts), used when no gradient is needed. */
  headPacked: PackedWeight | null = null;

  constructor(readonly config: GPTConfig, { seed = 0 } = {}) {
    super();
    validateConfig(config);
    this.rng = new Rng(seed);
    this.transformer = new GPT2Transformer(config, this.rng);
  }

  private positionIds(T: number): Tensor {
    let p = this.positions.get(T);
    const on = this.transformer.wpe.weight.device;
    if (p !== undefined && !p.released && p.device !== on) p.release();
    if (p === undefined || p.released) {
      p = to(idsTensor(Array.from({ length: T }, (_, i) => i), [T]), on).retain();
      this.positions.set(T, p);
    }
    return p;
  }

  /**
   * Hidden states after ln_f: ids [B, T] -> [B, T, C]. With a decoding context (`ctx.kv`), ids
   * is [1, N]: the packed rows of several sequences, each continuing its own KV cache.
   */
  hidden(ids: Tensor, ctx?: ForwardContext): Tensor {
    if (ids.dtype !== "int32" || ids.ndim !== 2) {
      throw new ShapeError(`GPT.forward: ids must be int32 [B, T], got ${ids.dtype}${fmt(ids.shape)}`);
    }
    const T = ids.shape[1];
    const t = this.transformer;
    let x: Tensor;
    if (ctx?.kv !== undefined) {
      const positions = kvPositions(ctx.kv);
      if (ids.shape[0] !== 1 || positions.length !== T) {
        throw new ShapeError(`GPT.forward: a decoding context packs ${positions.length} rows into ids [1, N], got ids${fmt(ids.shape)}`);
      }
      for (const s of ctx.kv) {
        if (s.cache.length + s.count > this.config.n_positions) {
          throw new RangeError(`GPT.forward: positions up to ${s.cache.length + s.count} exceed n_positions=${this.config.n_positions}`);
        }
      }
      x = add(this.embedTokens(ids, ctx), embedding(idsTensor(positions, [1, T]), t.wpe.weight));
    } else {
      if (T > this.config.n_positions || T < 1) {
        throw new ShapeError(`GPT.forward: sequence length ${T} must be in [1, n_positions=${this.config.n_positions}]`);
      }
      x = t.drop.forward(add(this.embedTokens(ids), t.wpe.forward(this.positionIds(T))));
    }
    // A decoding step without adapters runs the blocks as one native call each on one buffer.
    const fused = ctx?.kv !== undefined ? t.h.map((b) => b.decodeWeights(x, ctx)) : [];
    if (ctx?.kv !== undefined && fused.length > 0 && fused.every((w) => w !== null)) {
      let start = 0;
      x = decodeBlocks(x, fused as DecodeBlockWeights[], ctx.kv.map((s) => {
        const seg = { start, count: s.count, past: s.cache.length, keys: s.cache.k, values: s.cache.v };
        start += s.count;
        return seg;
      }));
    } else {
      t.h.forEach((block, l) => (x = block.forward(x, ctx, l)));
    }
    if (ctx?.kv !== undefined) advanceCaches(ctx.kv);
    return t.ln_f.forward(x);
  }

  /** Token ids the model reads and predicts: the base's vocabulary and any added rows. */
  get vocabSize(): number {
    return this.config.vocab_size + (this.transformer.wte_added?.num ?? 0);
  }

  /**
   * Adds `count` token rows after the vocabulary (ids vocab_size..), trainable, each the mean of
   * the existing rows (a start that changes no prediction much), or the given [count, C] values.
   */
  addTokens(count: number, values?: Float32Array): Tensor {
    const C = this.config.n_embd;
    if (this.transformer.wte_added !== null) throw new RangeError(`GPT.addTokens: the model has ${this.transformer.wte_added.num} added tokens already`);
    if (!(Number.isInteger(count) && count > 0)) throw new RangeError(`GPT.addTokens: count must be a positive integer, got ${count}`);
    if (values !== undefined && values.length !== count * C) throw new RangeError(`GPT.addTokens: values hold ${values.length} numbers, expected [${count}, ${C}]`);
    let init = values;
    if (init === undefined) {
      const wte = this.transformer.wte.weight.toArray() as Float32Array, V = this.config.vocab_size;
      const mean = new Float32Array(C);
      for (let v = 0; v < V; v++) for (let c = 0; c < C; c++) mean[c] += wte[v * C + c] / V;
      init = new Float32Array(count * C);
      for (let k = 0; k < count; k++) init.set(mean, k * C);
    }
    const e = new Embedding(count, C);
    e.weight.data.set(init);
    this.transformer.wte_added = e;
    return e.weight;
  }

  /** wte with the added rows below it (the table embeddings and the tied head read). */
  private table(): Tensor {
    const t = this.transformer;
    return t.wte_added === null ? t.wte.weight : cat([t.wte.weight, t.wte_added.weight], 0);
  }

  /**
   * Token embeddings of ids [B, T]. In a decoding context, rows of an adapter that brings added
   * tokens (RowAdapter.added, ids vocab_size..) read those from the adapter's rows.
   */
  private embedTokens(ids: Tensor, ctx?: ForwardContext): Tensor {
    const t = this.transformer;
    const V = this.config.vocab_size;
    const withRows = ctx?.adapters?.filter((g) => g.adapter.added !== undefined) ?? [];
    if (withRows.length === 0 || t.wte_added !== null) return t.wte_added === null ? t.wte.forward(ids) : embedding(ids, this.table());
    const raw = Int32Array.from(ids.ids);
    const own: [number, number, Float32Array][] = [];
    for (const g of withRows) {
      const added = g.adapter.added!;
      const k = added.shape[0], C = this.config.n_embd, rows = added.toArray() as Float32Array;
      for (let i = g.start; i < g.start + (g.count < 0 ? raw.length : g.count); i++) {
        if (raw[i] < V) continue;
        if (raw[i] >= V + k) throw new RangeError(`GPT.forward: token ${raw[i]} is outside the vocabulary of ${V} and the adapter's ${k} added tokens`);
        own.push([i, raw[i] - V, rows.subarray((raw[i] - V) * C, (raw[i] - V + 1) * C)]);
        raw[i] = 0;
      }
    }
    const x = t.wte.forward(own.length === 0 ? ids : idsTensor(Array.from(raw), [...ids.shape]));
    if (own.length === 0) return x;
    const data = x.toArray() as Float32Array, C = this.config.n_embd;
    for (const [i, , row] of own) data.set(row, i * C);
    return fromData(data, [...x.shape]);
  }

  /** Logits of hidden states [..., C] -> [..., V]: the tied LM head (with the added rows, when the model has them). */
  private head(h: Tensor): Tensor {
    const added = this.transformer.wte_added;
    if (added !== null) {
      if (this.headPacked !== null && !needsGrad(h, added.weight)) return cat([packedLinear(h, this.headPacked), linear(h, added.weight, null, "out_in")], -1);
      return linear(h, this.table(), null, "out_in");
    }
    const wte = this.transformer.wte.weight;
    if (this.headPacked !== null && !needsGrad(h, wte)) return packedLinear(h, this.headPacked);
    // A few rows (decoding) stream wte once in place rather than packing it for a GEMM.
    if (!needsGrad(h, wte) && h.device === cpu && wte.device === cpu && h.isContiguous() && h.size / h.shape[h.ndim - 1] <= 8) return streamLinear(h, wte, null, "out_in");
    // wte is [V, C]: the LM head is a linear layer in nn.Linear's layout, so its gradient lands
    // in wte's own layout (no transposed copy of a [C, V] gradient).
    return linear(h, wte, null, "out_in");
  }

  /** ids [B, T] (int32) -> logits [B, T, V]; with targets [B, T], also the mean cross-entropy. */
  forward(ids: Tensor, targets?: Tensor): GPTOutput {
    const h = this.hidden(ids);
    const logits = this.head(h);
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
    return this.head(last);
  }

  /**
   * One decoding step for several sequences at once (generation and the server's scheduler):
   * every row's tokens run at positions [cache.length, cache.length + tokens.length) in one
   * packed forward, rows grouped by adapter so each adapter's LoRA deltas cover contiguous rows.
   * Returns each row's last-position logits ([V] each, in the order given); the caches grow.
   */
  decode(rows: readonly DecodeRow[]): Float32Array[] {
    if (rows.length === 0) return [];
    for (const r of rows) {
      if (r.tokens.length === 0) throw new RangeError("GPT.decode: a row with no tokens");
      if (r.cache.layers !== this.config.n_layer || r.cache.channels !== this.config.n_embd) {
        throw new RangeError(`GPT.decode: a cache of ${r.cache.layers} layers x ${r.cache.channels} channels for a model of ${this.config.n_layer} x ${this.config.n_embd}`);
      }
      if (r.cache.length + r.tokens.length > r.cache.capacity) {
        throw new RangeError(`GPT.decode: ${r.cache.length + r.tokens.length} positions exceed the cache capacity ${r.cache.capacity}`);
      }
    }
    const V = this.vocabSize, C = this.config.n_embd;
    // Rows without an adapter run as one packed forward whose blocks are fused native calls
    // (decodeBlock); rows with adapters run op by op in another, grouped by adapter so each
    // adapter's LoRA deltas cover contiguous rows. Every row has its own cache, so the two
    // forwards are independent.
    const key = (i: number) => rows[i].adapter?.id ?? "";
    const order = rows.map((_, i) => i).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : a - b));
    const plain = order.filter((i) => rows[i].adapter === null), adapted = order.filter((i) => rows[i].adapter !== null);
    return noGrad(() => {
      const lastRows: Tensor[] = [];
      const forward = (group: number[]): void => {
        if (group.length === 0) return;
        const tokens: number[] = [], last: number[] = [];
        const adapters: { start: number; count: number; adapter: RowAdapter }[] = [];
        for (const i of group) {
          const { adapter, tokens: t } = rows[i];
          const g = adapters[adapters.length - 1];
          if (adapter !== null && g?.adapter === adapter && g.start + g.count === tokens.length) g.count += t.length;
          else if (adapter !== null) adapters.push({ start: tokens.length, count: t.length, adapter });
          tokens.push(...t);
          last.push(tokens.length - 1);
        }
        const ctx: ForwardContext = { kv: group.map((i) => ({ cache: rows[i].cache, count: rows[i].tokens.length })), adapters };
        const h = reshape(this.hidden(idsTensor(tokens, [1, tokens.length]), ctx), [tokens.length, C]);
        lastRows.push(embedding(idsTensor(last, [last.length]), h));
      };
      forward(plain);
      forward(adapted);
      const h = lastRows.length === 1 ? lastRows[0] : cat(lastRows, 0);
      const logits = this.head(h).toArray() as Float32Array;
      const out = new Array<Float32Array>(rows.length);
      // Views of the one fresh logits buffer (a copy per row costs as much as the head on small models).
      [...plain, ...adapted].forEach((i, k) => (out[i] = rows.length === 1 ? logits : logits.subarray(k * V, (k + 1) * V)));
      // An adapter's added tokens (RowAdapter.added): their logits follow the base's, tied like wte.
      const extra = [...plain, ...adapted].map((i, k) => [i, k] as const).filter(([i]) => rows[i].adapter?.added !== undefined);
      if (extra.length > 0) {
        const hk = h.toArray() as Float32Array;
        for (const [i, k] of extra) {
          const added = rows[i].adapter!.added!;
          const more = linear(fromData(hk.slice(k * C, (k + 1) * C), [1, C]), added, null, "out_in").toArray() as Float32Array;
          const row = new Float32Array(V + more.length);
          row.set(out[i]);
          row.set(more, V);
          out[i] = row;
        }
      }
      return out;
    });
  }

  /** Parameters split for AdamW: decay on matrices and embeddings, none on biases and LayerNorms. */
  paramGroups(weightDecay: number): { params: Tensor[]; weightDecay: number }[] {
    return decayGroups(this, weightDecay);
  }
}
