/**
 * GPT-2 as an ONNX decoder with past key/values, in the layout transformers.js and
 * Optimum use for `onnx/model.onnx`:
 *
 *   inputs   input_ids [batch_size, sequence_length] int64
 *            attention_mask [batch_size, total_sequence_length] int64 (1 = attend, 0 = padding)
 *            position_ids [batch_size, sequence_length] int64
 *            past_key_values.{i}.key / .value [batch_size, NH, past_sequence_length, HS] float32
 *   outputs  logits [batch_size, sequence_length, V]
 *            present.{i}.key / .value [batch_size, NH, total_sequence_length, HS]
 *
 * The first call passes past tensors with past_sequence_length 0. Query i (of S new
 * tokens) sees key j (of L = past + S) when j <= i + L - S and attention_mask[j] is 1.
 */
import type { GPT } from "../../models/gpt/index.js";
import { GraphBuilder, f32, transpose, type WeightOptions } from "./graph.js";
import type { OnnxGraph } from "./model.js";

export function gptGraph(model: GPT, options: WeightOptions = {}): OnnxGraph {
  const cfg = model.config;
  const C = cfg.n_embd, NH = cfg.n_head, HS = C / NH, V = cfg.vocab_size;
  const inner = cfg.n_inner ?? 4 * C;
  const g = new GraphBuilder("plinth_gpt2", options);
  const tr = model.transformer;

  const ids = g.input("input_ids", "int64", ["batch_size", "sequence_length"]);
  const mask = g.input("attention_mask", "int64", ["batch_size", "total_sequence_length"]);
  const positions = g.input("position_ids", "int64", ["batch_size", "sequence_length"]);
  const past: [string, string][] = [];
  for (let l = 0; l < cfg.n_layer; l++) {
    past.push([
      g.input(`past_key_values.${l}.key`, "float32", ["batch_size", NH, "past_sequence_length", HS]),
      g.input(`past_key_values.${l}.value`, "float32", ["batch_size", NH, "past_sequence_length", HS]),
    ]);
  }

  // The mask [B, 1, S, L]: causal over absolute positions, and the padding mask over keys.
  const S = g.op("Gather", [g.op("Shape", [ids]), g.scalar("int64", 1)], { axis: { i: 0 } }, "mask");
  const L = g.op("Gather", [g.op("Shape", [mask]), g.scalar("int64", 1)], { axis: { i: 0 } }, "mask");
  const one = g.scalar("int64", 1);
  const keyPos = g.op("Range", [g.scalar("int64", 0), L, one], undefined, "mask");
  const queryPos = g.op("Range", [g.op("Sub", [L, S], undefined, "mask"), L, one], undefined, "mask");
  const causal = g.op("LessOrEqual", [
    g.op("Unsqueeze", [keyPos, g.const("int64", [0])], undefined, "mask"),
    g.op("Unsqueeze", [queryPos, g.const("int64", [1])], undefined, "mask"),
  ], undefined, "mask"); // [S, L]
  const padding = g.op("Unsqueeze", [g.op("Cast", [mask], { to: { i: 9 } }, "mask"), g.const("int64", [1, 2])], undefined, "mask"); // [B, 1, 1, L]
  const allowed = g.op("And", [g.op("Unsqueeze", [causal, g.const("int64", [0, 1])], undefined, "mask"), padding], undefined, "mask");

  const wte = f32(tr.wte.weight);
  // Float32: one table for the embedding and the tied head (onnxruntime folds the transpose
  // once, at load). Int8: the embedding dequantizes only the rows it picks, and the head
  // gets its own int8 copy of wteᵀ with per-vocabulary-row scales.
  const table = options.int8 ? null : g.init("transformer.wte.weight", "float32", [V, C], wte);
  const wpe = g.init("transformer.wpe.weight", "float32", [cfg.n_positions, C], f32(tr.wpe.weight));
  let x = g.op("Add", [
    table === null ? g.embedding("transformer.wte.weight", V, C, wte, ids) : g.op("Gather", [table, ids], { axis: { i: 0 } }, "embed"),
    g.op("Gather", [wpe, positions], { axis: { i: 0 } }, "embed"),
  ], undefined, "embed");

  tr.h.forEach((block, l) => {
    const p = `transformer.h.${l}`;
    const h = g.layerNorm(x, f32(block.ln_1.weight), f32(block.ln_1.bias), block.ln_1.eps, `${p}.ln_1`);
    const a = block.attn;
    const qkv = g.linear(h, f32(a.c_attn.weight), C, 3 * C, f32(a.c_attn.bias!), `${p}.attn.c_attn`);
    const [q, k, v] = g.ops("Split", [qkv, g.const("int64", [C, C, C])], 3, { axis: { i: 2 } }, `${p}.attn`);
    const presentK = g.op("Concat", [past[l][0], g.splitHeads(k, NH, HS, `${p}.attn.k`)], { axis: { i: 2 } }, `${p}.attn`);
    const presentV = g.op("Concat", [past[l][1], g.splitHeads(v, NH, HS, `${p}.attn.v`)], { axis: { i: 2 } }, `${p}.attn`);
    g.output(presentK, `present.${l}.key`, "float32", ["batch_size", NH, "total_sequence_length", HS]);
    g.output(presentV, `present.${l}.value`, "float32", ["batch_size", NH, "total_sequence_length", HS]);
    const att = g.attention(g.splitHeads(q, NH, HS, `${p}.attn.q`), presentK, presentV, HS, allowed, `${p}.attn`);
    const proj = g.linear(g.mergeHeads(att, C, `${p}.attn`), f32(a.c_proj.weight), C, C, f32(a.c_proj.bias!), `${p}.attn.c_proj`);
    x = g.op("Add", [x, proj], undefined, `${p}`);
    const h2 = g.layerNorm(x, f32(block.ln_2.weight), f32(block.ln_2.bias), block.ln_2.eps, `${p}.ln_2`);
    const m = block.mlp;
    const up = g.geluTanh(g.linear(h2, f32(m.c_fc.weight), C, inner, f32(m.c_fc.bias!), `${p}.mlp.c_fc`), `${p}.mlp`);
    x = g.op("Add", [x, g.linear(up, f32(m.c_proj.weight), inner, C, f32(m.c_proj.bias!), `${p}.mlp.c_proj`)], undefined, `${p}`);
  });

  const hN = g.layerNorm(x, f32(tr.ln_f.weight), f32(tr.ln_f.bias), tr.ln_f.eps, "transformer.ln_f");
  const logits = table === null
    ? g.linear(hN, transpose(wte, V, C), C, V, null, "lm_head")
    : g.op("MatMul", [hN, g.op("Transpose", [table], { perm: { ints: [1, 0] } }, "lm_head")], undefined, "lm_head");
  g.output(logits, "logits", "float32", ["batch_size", "sequence_length", V]);
  return g.build();
}
