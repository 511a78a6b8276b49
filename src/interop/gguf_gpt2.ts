/**
 * GPT-2 in llama.cpp's `gpt2` architecture: tensor names and metadata keys as
 * llama.cpp's loader reads them, the byte-level BPE vocabulary as
 * `tokenizer.ggml.*` (model "gpt2", pre-tokenizer "gpt-2"), and optional Q8_0 weights.
 *
 * ggml matrices hold one output row per line (torch's [out, in]); GPT-2's Conv1D weights
 * are [in, out], so attention and MLP weights are transposed on the way out and back.
 */
import { BPETokenizer } from "../tokenizer/index.js";
import { GPT, gptConfig } from "../models/gpt/index.js";
import { GGMLType, bool, encodeTensor, f32v, int32s, saveGGUF, str, strings, u32, type GGUFTensor, type GGUFValue } from "./gguf.js";
import { decodeGGUF, tensorValues, type GGUFContents } from "./gguf_read.js";

export interface GGUFExportOptions {
  /** "q8_0": 2-D weights in Q8_0 (rows whose length is not a multiple of 32 stay F32). */
  quantize?: "q8_0";
  name?: string;
}

/** Token types of llama.cpp's vocabulary: 1 normal, 3 control (special tokens). */
const NORMAL = 1, CONTROL = 3;

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

export function gpt2GGUF(model: GPT, tokenizer: BPETokenizer, options: GGUFExportOptions = {}): { metadata: Record<string, GGUFValue>; tensors: GGUFTensor[] } {
  const cfg = model.config;
  if (tokenizer.vocabSize !== cfg.vocab_size) {
    throw new Error(`exportGGUF: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${cfg.vocab_size}; they must agree`);
  }
  const C = cfg.n_embd, inner = cfg.n_inner ?? 4 * C;
  const q8 = options.quantize === "q8_0";
  const mat = (name: string, dims: number[], v: Float32Array): GGUFTensor =>
    encodeTensor(name, dims, v, q8 && dims[0] % 32 === 0 ? GGMLType.Q8_0 : GGMLType.F32);
  const vec = (name: string, v: Float32Array): GGUFTensor => encodeTensor(name, [v.length], v, GGMLType.F32);
  const val = (t: { toArray(): Float32Array | Int32Array }): Float32Array => t.toArray() as Float32Array;

  const tr = model.transformer;
  const wte = val(tr.wte.weight);
  const tensors: GGUFTensor[] = [
    mat("token_embd.weight", [C, cfg.vocab_size], wte),
    encodeTensor("position_embd.weight", [C, cfg.n_positions], val(tr.wpe.weight), GGMLType.F32),
    vec("output_norm.weight", val(tr.ln_f.weight)),
    vec("output_norm.bias", val(tr.ln_f.bias)),
    // The tied head, written out: llama.cpp's gpt2 loader may require output.weight.
    mat("output.weight", [C, cfg.vocab_size], wte),
  ];
  tr.h.forEach((b, l) => {
    const p = `blk.${l}`;
    tensors.push(
      vec(`${p}.attn_norm.weight`, val(b.ln_1.weight)), vec(`${p}.attn_norm.bias`, val(b.ln_1.bias)),
      mat(`${p}.attn_qkv.weight`, [C, 3 * C], transpose(val(b.attn.c_attn.weight), C, 3 * C)), vec(`${p}.attn_qkv.bias`, val(b.attn.c_attn.bias!)),
      mat(`${p}.attn_output.weight`, [C, C], transpose(val(b.attn.c_proj.weight), C, C)), vec(`${p}.attn_output.bias`, val(b.attn.c_proj.bias!)),
      vec(`${p}.ffn_norm.weight`, val(b.ln_2.weight)), vec(`${p}.ffn_norm.bias`, val(b.ln_2.bias)),
      mat(`${p}.ffn_up.weight`, [C, inner], transpose(val(b.mlp.c_fc.weight), C, inner)), vec(`${p}.ffn_up.bias`, val(b.mlp.c_fc.bias!)),
      mat(`${p}.ffn_down.weight`, [inner, C], transpose(val(b.mlp.c_proj.weight), inner, C)), vec(`${p}.ffn_down.bias`, val(b.mlp.c_proj.bias!)),
    );
  });

  const spec = tokenizer.toJSON();
  const tokens = Array.from({ length: tokenizer.vocabSize }, (_, i) => tokenizer.idToToken(i) ?? "");
  const special = new Set(spec.added_tokens.filter((t) => t.special).map((t) => t.id));
  const eot = tokenizer.tokenToId("<|endoftext|>") ?? cfg.eos_token_id;
  const metadata: Record<string, GGUFValue> = {
    "general.architecture": str("gpt2"),
    "general.name": str(options.name ?? "plinth-gpt2"),
    "general.file_type": u32(q8 ? 7 : 0),
    "general.quantization_version": u32(2),
    "gpt2.context_length": u32(cfg.n_positions),
    "gpt2.embedding_length": u32(C),
    "gpt2.feed_forward_length": u32(inner),
    "gpt2.block_count": u32(cfg.n_layer),
    "gpt2.attention.head_count": u32(cfg.n_head),
    "gpt2.attention.layer_norm_epsilon": f32v(cfg.layer_norm_epsilon),
    "tokenizer.ggml.model": str("gpt2"),
    "tokenizer.ggml.pre": str("gpt-2"),
    "tokenizer.ggml.tokens": strings(tokens),
    "tokenizer.ggml.token_type": int32s(tokens.map((_, i) => (special.has(i) ? CONTROL : NORMAL))),
    "tokenizer.ggml.merges": strings(spec.model.merges.map(([a, b]) => `${a} ${b}`)),
    "tokenizer.ggml.bos_token_id": u32(eot),
    "tokenizer.ggml.eos_token_id": u32(eot),
    "tokenizer.ggml.add_bos_token": bool(false),
  };
  return { metadata, tensors };
}

export function exportGGUF(path: string, model: GPT, tokenizer: BPETokenizer, options: GGUFExportOptions = {}): void {
  const { metadata, tensors } = gpt2GGUF(model, tokenizer, options);
  saveGGUF(path, metadata, tensors);
}

/** A GPT-2 GGUF back into Plinth (quantized weights are dequantized): for checking an export, or measuring what Q8_0 costs. */
export function gptFromGGUF(file: GGUFContents | Uint8Array, source = "<buffer>"): GPT {
  const g = file instanceof Uint8Array ? decodeGGUF(file, source) : file;
  const m = g.metadata;
  if (m["general.architecture"] !== "gpt2") throw new Error(`gguf: ${source}: general.architecture is ${JSON.stringify(m["general.architecture"])}; only "gpt2" loads into Plinth's GPT`);
  const num = (k: string): number => {
    const v = m[k];
    if (typeof v !== "number") throw new Error(`gguf: ${source}: metadata ${k} is missing or not a number`);
    return v;
  };
  const byName = new Map(g.tensors.map((t) => [t.name, t]));
  const get = (name: string): Float32Array => {
    const t = byName.get(name);
    if (t === undefined) throw new Error(`gguf: ${source}: tensor ${name} is missing`);
    return tensorValues(t);
  };
  const C = num("gpt2.embedding_length"), inner = num("gpt2.feed_forward_length");
  const embd = byName.get("token_embd.weight");
  if (embd === undefined) throw new Error(`gguf: ${source}: tensor token_embd.weight is missing`);
  const model = new GPT(gptConfig({
    vocab_size: embd.dims[1], n_embd: C, n_layer: num("gpt2.block_count"), n_head: num("gpt2.attention.head_count"),
    n_positions: num("gpt2.context_length"), n_inner: inner === 4 * C ? null : inner, layer_norm_epsilon: num("gpt2.attention.layer_norm_epsilon"),
  }));
  const dict: Record<string, { shape: number[]; data: Float32Array }> = {};
  const put = (name: string, shape: number[], data: Float32Array): void => void (dict[name] = { shape, data });
  const V = embd.dims[1];
  put("transformer.wte.weight", [V, C], get("token_embd.weight"));
  put("transformer.wpe.weight", [model.config.n_positions, C], get("position_embd.weight"));
  put("transformer.ln_f.weight", [C], get("output_norm.weight"));
  put("transformer.ln_f.bias", [C], get("output_norm.bias"));
  for (let l = 0; l < model.config.n_layer; l++) {
    const p = `transformer.h.${l}`, b = `blk.${l}`;
    put(`${p}.ln_1.weight`, [C], get(`${b}.attn_norm.weight`));
    put(`${p}.ln_1.bias`, [C], get(`${b}.attn_norm.bias`));
    put(`${p}.attn.c_attn.weight`, [C, 3 * C], transpose(get(`${b}.attn_qkv.weight`), 3 * C, C));
    put(`${p}.attn.c_attn.bias`, [3 * C], get(`${b}.attn_qkv.bias`));
    put(`${p}.attn.c_proj.weight`, [C, C], transpose(get(`${b}.attn_output.weight`), C, C));
    put(`${p}.attn.c_proj.bias`, [C], get(`${b}.attn_output.bias`));
    put(`${p}.ln_2.weight`, [C], get(`${b}.ffn_norm.weight`));
    put(`${p}.ln_2.bias`, [C], get(`${b}.ffn_norm.bias`));
    put(`${p}.mlp.c_fc.weight`, [C, inner], transpose(get(`${b}.ffn_up.weight`), inner, C));
    put(`${p}.mlp.c_fc.bias`, [inner], get(`${b}.ffn_up.bias`));
    put(`${p}.mlp.c_proj.weight`, [inner, C], transpose(get(`${b}.ffn_down.weight`), C, inner));
    put(`${p}.mlp.c_proj.bias`, [C], get(`${b}.ffn_down.bias`));
  }
  model.loadStateDict(dict);
  return model;
}

/** The byte-level BPE a gpt2-model GGUF carries (`tokenizer.ggml.*`), as Plinth's tokenizer. */
export function tokenizerFromGGUF(g: GGUFContents, source = "<buffer>"): BPETokenizer {
  const m = g.metadata;
  if (m["tokenizer.ggml.model"] !== "gpt2") throw new Error(`gguf: ${source}: tokenizer.ggml.model is ${JSON.stringify(m["tokenizer.ggml.model"])}; only the byte-level BPE "gpt2" tokenizer is read`);
  const tokens = m["tokenizer.ggml.tokens"], merges = m["tokenizer.ggml.merges"], types = m["tokenizer.ggml.token_type"];
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string")) throw new Error(`gguf: ${source}: tokenizer.ggml.tokens is missing or not a string array`);
  if (!Array.isArray(merges) || !merges.every((t) => typeof t === "string" && t.split(" ").length === 2)) throw new Error(`gguf: ${source}: tokenizer.ggml.merges is missing or not an array of "a b" strings`);
  const added = Array.isArray(types) ? tokens.flatMap((content, id) => (types[id] === CONTROL || types[id] === 4 ? [{ id, content, special: types[id] === CONTROL }] : [])) : [];
  try {
    return new BPETokenizer({ vocab: tokens as string[], merges: (merges as string[]).map((s) => s.split(" ") as [string, string]), added });
  } catch (e) {
    throw new Error(`gguf: ${source}: the tokenizer does not load: ${(e as Error).message}`);
  }
}
