/**
 * CLIP's two towers as ONNX graphs, named as Optimum / transformers.js name them
 * (`onnx/text_model.onnx`, `onnx/vision_model.onnx`):
 *
 *   text    input_ids [batch_size, sequence_length] int64 -> text_embeds [batch_size, E]
 *           (the projected state at each row's first eos token; causal attention)
 *   vision  pixel_values [batch_size, C, S, S] float32  -> image_embeds [batch_size, E]
 *           (Conv patch embedding, class token, pre/post LayerNorms, projection)
 *
 * The embeddings are the projections before L2 normalisation, as in Hugging Face's
 * CLIPTextModelWithProjection / CLIPVisionModelWithProjection.
 */
import type { ClipModel } from "../../models/clip/index.js";
import type { Linear } from "../../nn/layers.js";
import { GraphBuilder, f32, transposed, type WeightOptions } from "./graph.js";
import type { OnnxGraph } from "./model.js";

type Tower = ClipModel["text_model"] | ClipModel["vision_model"];


const dense = (g: GraphBuilder, x: string, l: Linear, name: string): string =>
  g.linear(x, transposed(l), l.inFeatures, l.outFeatures, l.bias === null ? null : f32(l.bias), name);

function encoder(g: GraphBuilder, tower: Tower, x: string, allowed: string | null, prefix: string): string {
  const c = tower.config;
  const D = c.hidden_size, NH = c.num_attention_heads, HS = D / NH;
  tower.encoder.layers.forEach((layer, l) => {
    const p = `${prefix}.encoder.layers.${l}`;
    const a = layer.self_attn;
    const h = g.layerNorm(x, f32(layer.layer_norm1.weight), f32(layer.layer_norm1.bias), layer.layer_norm1.eps, `${p}.layer_norm1`);
    const heads = (lin: Linear, n: string): string => g.splitHeads(dense(g, h, lin, `${p}.self_attn.${n}`), NH, HS, `${p}.${n}`);
    const att = g.attention(heads(a.q_proj, "q_proj"), heads(a.k_proj, "k_proj"), heads(a.v_proj, "v_proj"), HS, allowed, `${p}.self_attn`);
    x = g.op("Add", [x, dense(g, g.mergeHeads(att, D, `${p}.self_attn`), a.out_proj, `${p}.self_attn.out_proj`)], undefined, p);
    const m = g.layerNorm(x, f32(layer.layer_norm2.weight), f32(layer.layer_norm2.bias), layer.layer_norm2.eps, `${p}.layer_norm2`);
    const up = dense(g, m, layer.mlp.fc1, `${p}.mlp.fc1`);
    const act = c.hidden_act === "quick_gelu"
      ? g.op("Mul", [up, g.op("Sigmoid", [g.op("Mul", [up, g.scalar("float32", 1.702)], undefined, p)], undefined, p)], undefined, p)
      : g.geluTanh(up, `${p}.mlp`);
    x = g.op("Add", [x, dense(g, act, layer.mlp.fc2, `${p}.mlp.fc2`)], undefined, p);
  });
  return x;
}

export function clipTextGraph(model: ClipModel, options: WeightOptions = {}): OnnxGraph {
  const tm = model.text_model, c = tm.config;
  const D = c.hidden_size, E = model.config.projection_dim;
  const g = new GraphBuilder("plinth_clip_text", options);
  const ids = g.input("input_ids", "int64", ["batch_size", "sequence_length"]);
  const shape = g.op("Shape", [ids]);
  const B = g.op("Gather", [shape, g.scalar("int64", 0)], { axis: { i: 0 } }, "shape");
  const T = g.op("Gather", [shape, g.scalar("int64", 1)], { axis: { i: 0 } }, "shape");
  const one = g.scalar("int64", 1), zero = g.scalar("int64", 0);
  const pos = g.op("Range", [zero, T, one], undefined, "positions");
  const positions = g.init("text_model.embeddings.position_embedding.weight", "float32", [c.max_position_embeddings, D], f32(tm.embeddings.position_embedding.weight));
  let x = g.op("Add", [g.embedding("text_model.embeddings.token_embedding.weight", c.vocab_size, D, f32(tm.embeddings.token_embedding.weight), ids), g.op("Gather", [positions, pos], { axis: { i: 0 } }, "embeddings")], undefined, "embeddings");
  const causal = g.op("LessOrEqual", [g.op("Unsqueeze", [pos, g.const("int64", [0])], undefined, "mask"), g.op("Unsqueeze", [pos, g.const("int64", [1])], undefined, "mask")], undefined, "mask");
  x = encoder(g, tm, x, causal, "text_model");
  x = g.layerNorm(x, f32(tm.final_layer_norm.weight), f32(tm.final_layer_norm.bias), tm.final_layer_norm.eps, "text_model.final_layer_norm");
  // The first eos of each row: ArgMax returns the first index of the maximum.
  const isEos = g.op("Cast", [g.op("Equal", [ids, g.scalar("int64", c.eos_token_id)], undefined, "pool")], { to: { i: 1 } }, "pool");
  const at = g.op("ArgMax", [isEos], { axis: { i: 1 }, keepdims: { i: 0 } }, "pool"); // [B]
  const flatIndex = g.op("Add", [g.op("Mul", [g.op("Range", [zero, B, one], undefined, "pool"), T], undefined, "pool"), at], undefined, "pool");
  const rows = g.op("Reshape", [x, g.const("int64", [-1, D])], undefined, "pool");
  const pooled = g.op("Gather", [rows, flatIndex], { axis: { i: 0 } }, "pool");
  const embeds = g.op("MatMul", [pooled, g.weight("text_projection.weight", [D, E], transposed(model.text_projection))], undefined, "text_projection");
  g.output(embeds, "text_embeds", "float32", ["batch_size", E]);
  return g.build();
}

export function clipVisionGraph(model: ClipModel, options: WeightOptions = {}): OnnxGraph {
  const vm = model.vision_model, c = vm.config;
  const D = c.hidden_size, E = model.config.projection_dim, P = c.patch_size, S = c.image_size, C = c.num_channels;
  const N = (S / P) ** 2;
  const g = new GraphBuilder("plinth_clip_vision", options);
  const pixels = g.input("pixel_values", "float32", ["batch_size", C, S, S]);
  const e = vm.embeddings;
  const conv = g.op("Conv", [pixels, g.init("vision_model.embeddings.patch_embedding.weight", "float32", [D, C, P, P], f32(e.patch_embedding.weight))],
    { kernel_shape: { ints: [P, P] }, strides: { ints: [P, P] } }, "patch_embedding"); // [B, D, G, G]
  const patches = g.op("Transpose", [g.op("Reshape", [conv, g.const("int64", [0, D, N])], undefined, "patch_embedding")], { perm: { ints: [0, 2, 1] } }, "patch_embedding");
  const B = g.op("Slice", [g.op("Shape", [pixels]), g.const("int64", [0]), g.const("int64", [1])], undefined, "shape");
  const clsShape = g.op("Concat", [B, g.const("int64", [1, D])], { axis: { i: 0 } }, "class_embedding");
  const cls = g.op("Expand", [g.init("vision_model.embeddings.class_embedding", "float32", [1, 1, D], f32(e.class_embedding)), clsShape], undefined, "class_embedding");
  let x = g.op("Add", [g.op("Concat", [cls, patches], { axis: { i: 1 } }, "embeddings"), g.init("vision_model.embeddings.position_embedding.weight", "float32", [N + 1, D], f32(e.position_embedding.weight))], undefined, "embeddings");
  x = g.layerNorm(x, f32(vm.pre_layrnorm.weight), f32(vm.pre_layrnorm.bias), vm.pre_layrnorm.eps, "vision_model.pre_layrnorm");
  x = encoder(g, vm, x, null, "vision_model");
  const first = g.op("Gather", [x, g.scalar("int64", 0)], { axis: { i: 1 } }, "pool"); // [B, D]
  const pooled = g.layerNorm(first, f32(vm.post_layernorm.weight), f32(vm.post_layernorm.bias), vm.post_layernorm.eps, "vision_model.post_layernorm");
  const embeds = g.op("MatMul", [pooled, g.weight("visual_projection.weight", [D, E], transposed(model.visual_projection))], undefined, "visual_projection");
  g.output(embeds, "image_embeds", "float32", ["batch_size", E]);
  return g.build();
}
