/**
 * BERT (encoder + masked-LM head) as an ONNX graph, in the input/output names
 * transformers.js and Optimum use for `onnx/model.onnx`:
 *
 *   inputs   input_ids, attention_mask, token_type_ids [batch_size, sequence_length] int64
 *   outputs  logits [batch_size, sequence_length, V], last_hidden_state [batch_size, sequence_length, C]
 *
 * Padding keys (attention_mask 0) are masked out of every query's attention. BERT's
 * torch-layout [out, in] weights are stored transposed for MatMul.
 */
import type { BertForMaskedLM } from "../../models/bert/index.js";
import type { Linear } from "../../nn/layers.js";
import { GraphBuilder, f32, transposed, type WeightOptions } from "./graph.js";
import type { OnnxGraph } from "./model.js";


function transposeRows(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

export function bertGraph(model: BertForMaskedLM, options: WeightOptions = {}): OnnxGraph {
  const cfg = model.config;
  const C = cfg.hidden_size, NH = cfg.num_attention_heads, HS = C / NH, V = cfg.vocab_size, eps = cfg.layer_norm_eps;
  const g = new GraphBuilder("plinth_bert", options);
  const ids = g.input("input_ids", "int64", ["batch_size", "sequence_length"]);
  const mask = g.input("attention_mask", "int64", ["batch_size", "sequence_length"]);
  const types = g.input("token_type_ids", "int64", ["batch_size", "sequence_length"]);
  const dense = (x: string, l: Linear, name: string): string => g.linear(x, transposed(l), l.inFeatures, l.outFeatures, f32(l.bias!), name);

  const e = model.bert.embeddings;
  const T = g.op("Gather", [g.op("Shape", [ids]), g.scalar("int64", 1)], { axis: { i: 0 } }, "positions");
  const positions = g.op("Range", [g.scalar("int64", 0), T, g.scalar("int64", 1)], undefined, "positions");
  const wordValues = f32(e.word_embeddings.weight);
  // Float32: one word table for the embedding and the tied decoder; int8: see gpt.ts.
  const words = options.int8 ? null : g.init("bert.embeddings.word_embeddings.weight", "float32", [V, C], wordValues);
  const embed = (table: string, index: string): string => g.op("Gather", [table, index], { axis: { i: 0 } }, "embeddings");
  const wordVectors = words === null ? g.embedding("bert.embeddings.word_embeddings.weight", V, C, wordValues, ids) : embed(words, ids);
  let x = g.op("Add", [
    g.op("Add", [wordVectors, embed(g.init("bert.embeddings.token_type_embeddings.weight", "float32", [cfg.type_vocab_size, C], f32(e.token_type_embeddings.weight)), types)], undefined, "embeddings"),
    embed(g.init("bert.embeddings.position_embeddings.weight", "float32", [cfg.max_position_embeddings, C], f32(e.position_embeddings.weight)), positions),
  ], undefined, "embeddings");
  x = g.layerNorm(x, f32(e.LayerNorm.weight), f32(e.LayerNorm.bias), eps, "bert.embeddings.LayerNorm");
  const allowed = g.op("Unsqueeze", [g.op("Cast", [mask], { to: { i: 9 } }, "mask"), g.const("int64", [1, 2])], undefined, "mask"); // [B, 1, 1, T]

  model.bert.encoder.layer.forEach((layer, l) => {
    const p = `bert.encoder.layer.${l}`;
    const s = layer.attention.self;
    const q = g.splitHeads(dense(x, s.query, `${p}.attention.self.query`), NH, HS, `${p}.q`);
    const k = g.splitHeads(dense(x, s.key, `${p}.attention.self.key`), NH, HS, `${p}.k`);
    const v = g.splitHeads(dense(x, s.value, `${p}.attention.self.value`), NH, HS, `${p}.v`);
    const att = g.mergeHeads(g.attention(q, k, v, HS, allowed, `${p}.attention`), C, `${p}.attention`);
    const o = layer.attention.output;
    const a = g.layerNorm(g.op("Add", [dense(att, o.dense, `${p}.attention.output.dense`), x], undefined, p), f32(o.LayerNorm.weight), f32(o.LayerNorm.bias), eps, `${p}.attention.output.LayerNorm`);
    const up = g.geluTanh(dense(a, layer.intermediate.dense, `${p}.intermediate.dense`), `${p}.intermediate`);
    const out = layer.output;
    x = g.layerNorm(g.op("Add", [dense(up, out.dense, `${p}.output.dense`), a], undefined, p), f32(out.LayerNorm.weight), f32(out.LayerNorm.bias), eps, `${p}.output.LayerNorm`);
  });
  g.output(x, "last_hidden_state", "float32", ["batch_size", "sequence_length", C]);

  const head = model.cls.predictions;
  const tr = head.transform;
  const h = g.layerNorm(g.geluTanh(dense(x, tr.dense, "cls.predictions.transform.dense"), "cls.predictions.transform"), f32(tr.LayerNorm.weight), f32(tr.LayerNorm.bias), eps, "cls.predictions.transform.LayerNorm");
  const logits = words === null
    ? g.linear(h, transposeRows(wordValues, V, C), C, V, f32(head.bias), "cls.predictions.decoder")
    : g.op("Add", [
      g.op("MatMul", [h, g.op("Transpose", [words], { perm: { ints: [1, 0] } }, "cls.predictions.decoder")], undefined, "cls.predictions.decoder"),
      g.init("cls.predictions.bias", "float32", [V], f32(head.bias)),
    ], undefined, "cls.predictions");
  g.output(logits, "logits", "float32", ["batch_size", "sequence_length", V]);
  return g.build();
}
